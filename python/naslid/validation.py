"""Field checks shared by the config classes (only naslid.errors imported: cheap for config and CLI).

Each check raises ``InputError("<where>: ...")`` (a ValueError, ``naslid.errors``), ``where`` being the field's full name as the
caller knows it (``config.split.k`` inside a ``SearchConfig``, ``SplitConfig.k`` on its own).
"""
from __future__ import annotations

from .errors import InputError


def choice(where: str, val, options) -> None:
    if not isinstance(val, str) or val not in options:
        raise InputError(f"{where}: unknown value {val!r} (choose one of {', '.join(options)})")


def integer(where: str, val, lo: int | None = None) -> None:
    if isinstance(val, bool) or not isinstance(val, int):
        raise InputError(f"{where}: expected an integer, got {val!r}")
    if lo is not None and val < lo:
        raise InputError(f"{where}: must be >= {lo}, got {val}")


def auto_or_integer(where: str, val, lo: int | None = None) -> None:
    """``val`` is the string ``"auto"`` or an integer >= ``lo``."""
    if val == "auto":
        return
    if isinstance(val, bool) or not isinstance(val, int) or (lo is not None and val < lo):
        bound = "" if lo is None else f" >= {lo}"
        raise InputError(f"{where}: expected 'auto' or an integer{bound}, got {val!r}")


def number(where: str, val, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> None:
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise InputError(f"{where}: expected a number, got {val!r}")
    if lo is not None and (val < lo or (lo_open and val == lo)):
        raise InputError(f"{where}: must be {'>' if lo_open else '>='} {lo}, got {val}")
    if hi is not None and val > hi:
        raise InputError(f"{where}: must be <= {hi}, got {val}")


def boolean(where: str, val) -> None:
    if not isinstance(val, bool):
        raise InputError(f"{where}: expected true or false, got {val!r}")
