"""The package root: ``naslid.search`` is a plain function, ``import naslid`` is cheap, and the
evolution module does not shadow the function."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import naslid


def test_search_is_a_function_that_submodule_imports_do_not_shadow():
    import naslid.blocks.evolutionary_search  # noqa: F401  (binding a submodule must not replace naslid.search)
    import naslid.run.pipeline

    assert inspect.isfunction(naslid.search)
    assert naslid.SearchResult is naslid.run.pipeline.SearchResult
    assert not hasattr(naslid.blocks.evolutionary_search, "SearchResult")  # one SearchResult: the run's


def test_search_rejects_a_bad_config_type():
    with pytest.raises(TypeError, match="naslid.search: config must be"):
        naslid.search(42)


def test_import_naslid_is_cheap():
    code = ("import sys, naslid; naslid.search; "
            "print(sorted(m for m in ('torch', 'naslid.run.pipeline', 'naslid.blocks.evolutionary_search') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_the_config_and_cli_do_not_import_torch():
    """``naslid.config`` holds ``SplitConfig`` and ``EvolutionConfig`` themselves; they live in
    light modules, so reading and validating a config stays cheap."""
    code = ("import sys; from naslid.config import SearchConfig; import naslid.cli; "
            "from naslid.split import SplitConfig; from naslid.blocks.evolution_settings import EvolutionConfig; "
            "SearchConfig.preset_config('paper').validate(num_decisions=6); "
            "print(sorted(m for m in ('torch', 'numpy', 'naslid.blocks.evolutionary_search', 'naslid.split.step') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_split_package_names_resolve_lazily():
    import naslid.split as split

    for name in split.__all__:
        assert getattr(split, name) is not None
    from naslid.split import split_step
    from naslid.split.step import split_step as direct

    assert split_step is direct
    with pytest.raises(AttributeError):
        split.no_such_name
