"""The package root: ``naslid.search`` is a plain function, ``import naslid`` is cheap, and the
evolution module does not shadow the function."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import naslid


def test_search_is_a_function_that_submodule_imports_do_not_shadow():
    import naslid.evolution  # noqa: F401  (binding a submodule must not replace naslid.search)
    import naslid.pipeline

    assert inspect.isfunction(naslid.search)
    assert naslid.SearchResult is naslid.pipeline.SearchResult
    assert not hasattr(naslid.evolution, "SearchResult")  # one SearchResult: the run's


def test_search_rejects_a_bad_config_type():
    with pytest.raises(TypeError, match="naslid.search: config must be"):
        naslid.search(42)


def test_import_naslid_is_cheap():
    code = ("import sys, naslid; naslid.search; "
            "print(sorted(m for m in ('torch', 'naslid.pipeline', 'naslid.evolution') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
