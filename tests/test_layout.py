"""The layout rules (issue 19): no module over 500 lines, no two modules whose names
differ by a suffix alone, docs/layout.md's module table and README's headline table generated from the
current tree and result files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "python" / "naslid", ROOT / "naslid_ext")


def _modules():
    return [f for pkg in PACKAGES for f in sorted(pkg.rglob("*.py"))]


def test_no_module_over_500_lines():
    long = {str(f.relative_to(ROOT)): n for f in _modules() if (n := len(f.read_text().splitlines())) > 500}
    assert long == {}


def test_no_names_that_differ_by_a_suffix_alone():
    """Within each package (naslid, naslid_ext), e.g. not ``split/`` beside a ``split_memory.py``."""
    for pkg in PACKAGES:
        names = {f.parent.name if f.name == "__init__.py" else f.stem for f in sorted(pkg.rglob("*.py"))}
        names -= {"__init__", pkg.name}
        clashes = sorted((a, b) for a in names for b in names if a != b and b.startswith(a + "_")
                         and not a.startswith("_"))
        assert clashes == [], pkg.name


def test_layout_table_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "layout_table.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_readme_headline_table_is_current():
    """README's headline table is what scripts/headline_table.py makes of results/headline.json and
    the result files it cites (so every number in it is found in its source file)."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "headline_table.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
