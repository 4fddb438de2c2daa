"""The package version, in a module of its own so that low-level modules (``checkpoint``) can
record it without importing the package root. Written once, in ``naslid_ext/_version.py``; read
from that file here (as ``setup.py`` does) without importing ``naslid_ext``, whose import loads
torch and the compiled ops (``import naslid`` stays cheap)."""
import importlib.util
import os
import re


def _read_version() -> str:
    spec = importlib.util.find_spec("naslid_ext")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("naslid: the naslid_ext package (installed with naslid) is missing")
    path = os.path.join(list(spec.submodule_search_locations)[0], "_version.py")
    with open(path, encoding="utf-8") as fh:
        m = re.search(r'^__version__ = "([^"]+)"', fh.read(), re.M)
    if m is None:
        raise ImportError(f"naslid: no __version__ line in {path}")
    return m.group(1)


__version__ = _read_version()
