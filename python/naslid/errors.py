"""``InputError``: a bad value in what the user gave a run (config field, CLI flag, file, folder).

The configuration checks (``naslid.config``, ``naslid.validation``), the run preparation
(``naslid.run.prepare``), the output-folder and checkpoint checks (``naslid.run.checkpoint``) and the
warm-start checks (``naslid.run.warm_start``) raise it, each message naming the argument or file.
``naslid search`` / ``naslid bench-memory`` print an ``InputError`` as one line and exit with
status 2; every other exception is a bug (or a failure of the machine) and keeps its traceback
(exit status 1). It subclasses ``ValueError`` so code that caught the ValueError these checks
raised before keeps working.

``CheckpointError`` (a corrupt, foreign or unusable run folder / checkpoint file the user pointed
the run at) and ``WarmStartNotReady`` (the warm-start source has not finished its warm-up) are
``InputError``s: both are about a folder the user named, and the fix is the user's (another
``--out``, wait, or a fresh run), not the code's.
"""
from __future__ import annotations

from contextlib import contextmanager


class InputError(ValueError):
    """Bad user input: the message names the argument (config field, flag or file) and the value."""


@contextmanager
def input_errors(prefix: str = "", types: tuple[type[BaseException], ...] = (ValueError,)):
    """Re-raise an exception of ``types`` from a block that only checks user input as an
    ``InputError`` (``prefix`` prepended to its message); an ``InputError`` passes unchanged."""
    try:
        yield
    except InputError:
        raise
    except types as e:
        raise InputError(f"{prefix}{e}") from e
