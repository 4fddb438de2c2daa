"""Search spaces: NB201, ProxylessNAS, OFA. ``get_space(name, **options)`` builds one."""
from __future__ import annotations

import inspect

from .base import Arch, Mask, SearchSpace, Supernet

SPACE_NAMES = ("nb201", "proxyless", "ofa")


def get_space(name: str, **options) -> SearchSpace:
    """Return the search space ``name`` (nb201 | proxyless | ofa) built with ``options``
    (num_classes, in_channels, input_size, width; NB201 also C and N)."""
    if not isinstance(name, str) or name.lower() not in SPACE_NAMES:
        raise ValueError(f"unknown search space {name!r}: choose one of {', '.join(SPACE_NAMES)}")
    name = name.lower()
    if name == "nb201":
        from .nb201 import NB201Space as cls
    elif name == "proxyless":
        from .proxyless import ProxylessSpace as cls
    else:
        from .ofa import OFASpace as cls
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [p for p in params if p != "self"]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"get_space({name!r}): unknown option(s) {unknown} (known: {', '.join(known)})")
    return cls(**options)


__all__ = ["Arch", "Mask", "SearchSpace", "Supernet", "get_space", "SPACE_NAMES"]
