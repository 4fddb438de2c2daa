"""The compiled extension is part of what the suite tests: a build whose ``naslid_ext._C`` does not
import (ABI mismatch, missing library) must fail the run, naming the extension and the import error,
instead of letting the plain-torch fallback turn the kernel tests into skips.

Users who want the fallback on purpose set ``NASLID_ALLOW_TORCH_FALLBACK=1`` (CI never does)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from naslid_ext import _ops

ALLOW = "NASLID_ALLOW_TORCH_FALLBACK"


def test_compiled_extension_is_loaded():
    if os.environ.get(ALLOW) == "1":
        pytest.skip(f"{ALLOW}=1: the plain-torch fallback is allowed, naslid_ext._C not required")
    err = _ops.load_error()
    if not _ops.ext_loaded():
        pytest.fail(
            f"the compiled extension naslid_ext._C failed to import ({type(err).__name__}: {err}); "
            "rebuild with `pip install --no-build-isolation -e .` (scripts/setup.sh), or set "
            f"{ALLOW}=1 to test the plain-torch fallback on purpose", pytrace=False)


def test_unimportable_extension_is_reported_by_name(tmp_path):
    """A child process whose ``naslid_ext._C`` cannot import (a meta-path hook refuses it): the
    package still imports, ``ext_loaded()`` is False and ``load_error()`` holds the import error
    the check above prints."""
    code = (
        "import sys, importlib.abc\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'naslid_ext._C':\n"
        "            raise ImportError('simulated: undefined symbol _ZN3c10')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import logging; logging.disable(logging.WARNING)\n"
        "from naslid_ext import _ops\n"
        "print(_ops.ext_loaded(), type(_ops.load_error()).__name__, _ops.load_error())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, ALLOW: ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False ImportError simulated: undefined symbol _ZN3c10"
