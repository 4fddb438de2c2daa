"""The package version, in a module of its own so that low-level modules (``checkpoint``) can
record it without importing the package root. Written once, in ``naslid_ext/_version.py``."""
from naslid_ext._version import __version__  # noqa: F401
