"""The ops install without the search's weight (issue 19): setup.py's requirements, what importing
and running naslid_ext loads, and the CLI's message where the search's packages are missing."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH_ONLY = ("scipy", "sklearn", "tqdm", "yaml", "matplotlib", "tensorboard")


def _setup_call() -> dict:
    """The keyword arguments of setup(...) in setup.py, as literals where they are literals."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    consts = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name)}
    call = next(n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                and getattr(n.value.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        node = kw.value
        try:
            out[kw.arg] = ast.literal_eval(node)
        except ValueError:
            if isinstance(node, ast.Dict):  # extras: values may name SEARCH_REQUIRES
                d = {}
                for k, v in zip(node.keys, node.values):
                    if isinstance(v, ast.Name):
                        d[ast.literal_eval(k)] = ast.literal_eval(consts[v.id])
                    elif isinstance(v, ast.BinOp):
                        d[ast.literal_eval(k)] = ast.literal_eval(consts[v.left.id]) + ast.literal_eval(v.right)
                    else:
                        d[ast.literal_eval(k)] = ast.literal_eval(v)
                out[kw.arg] = d
    return out


def test_setup_requires_only_torch_and_numpy():
    s = _setup_call()
    assert [r.split(">")[0].split("=")[0] for r in s["install_requires"]] == ["torch", "numpy"]
    search = s["extras_require"]["search"]
    for dist in ("scipy", "scikit-learn", "tqdm", "pyyaml", "matplotlib", "tensorboard"):
        assert dist in search
        assert dist in s["extras_require"]["test"]  # the tests need the search
    assert s["extras_require"]["faiss"] == ["faiss-gpu"]


def test_ops_import_and_run_without_the_search_packages():
    """A fresh interpreter that imports naslid_ext and computes k-NN and LID loads none of the
    search's packages beyond what ``import torch`` loads (they are installed here; what matters is
    that the ops never import them; docs/install.md records the check in a fresh venv)."""
    code = ("import sys, torch\n"
            "before = set(sys.modules)  # torch itself imports tqdm where it is installed\n"
            "import naslid_ext\n"
            "x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))\n"
            "naslid_ext.knn(x, 5); naslid_ext.lid(x, k=10); naslid_ext.lid_profile([x, x * 2], k=10)\n"
            f"print(sorted(m for m in {SEARCH_ONLY!r} if m in sys.modules and m not in before))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'python'}"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_search_without_its_packages_is_one_line(capsys, monkeypatch):
    import naslid.cli as cli

    monkeypatch.setattr(cli, "missing_search_packages", lambda: ["scipy", "tqdm"])
    assert cli.main(["search", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("naslid search: error:")
    assert "scipy, tqdm" in err[0] and "naslid[search]" in err[0]
