"""naslid: the NAS-LID search driver (search spaces, splitting, training, search, evaluation).

Python API::

    import naslid
    cfg = naslid.SearchConfig.preset_config("quick")      # or naslid.load_config(...)
    cfg.split.criterion = "grad"
    result = naslid.search(cfg)                            # a naslid.SearchResult
    print(result.best_arch, result.out_dir)

``import naslid`` is cheap: the pipeline (and torch) are imported on first use. The evolutionary
and random search over the leaves' masks live in ``naslid.blocks.evolutionary_search``.
"""
from ._version import __version__  # noqa: F401


def search(config=None, **overrides):
    """Run a search and return its ``SearchResult`` (see ``naslid.run.pipeline``).

    ``config``: a ``SearchConfig``, a nested dict of fields, a YAML file path, or None (the quick
    preset); ``overrides``: top-level fields or sections, e.g. ``out="runs/x"``,
    ``split={"criterion": "grad"}``.
    """
    import os

    from .config import SearchConfig, load_config
    from .run.pipeline import run_search

    if config is None:
        cfg = load_config()
    elif isinstance(config, SearchConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = SearchConfig.from_dict(config, base=load_config(preset=config.get("preset")))
    elif isinstance(config, (str, os.PathLike)):
        cfg = load_config(config_file=str(config))
    else:
        raise TypeError(f"naslid.search: config must be a SearchConfig, dict, YAML path or None, "
                        f"got {type(config).__name__}")
    if overrides:
        cfg = SearchConfig.from_dict(overrides, base=cfg)
    return run_search(cfg)


def __getattr__(name):  # lazy: importing naslid stays cheap
    if name in ("SearchConfig", "load_config"):
        from . import config

        return getattr(config, name)
    if name == "SearchResult":
        from .run.pipeline import SearchResult

        return SearchResult
    raise AttributeError(f"module 'naslid' has no attribute {name!r}")
