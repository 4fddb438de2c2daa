"""naslid.search() as a library call: no side effects on the calling process (thread count,
matplotlib backend), and the thread count as part of a run's identity (resume / warm start)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from helpers import MICRO, micro_config
from naslid.run.checkpoint import RunFolder
from naslid.errors import InputError


def test_search_leaves_threads_and_matplotlib_backend_alone(tmp_path):
    """A notebook-like process (backend 'svg' chosen, 2 threads) runs the micro search (threads
    1, plots on): afterwards the thread count and the backend are the caller's, the plots exist,
    and pyplot's figure registry is empty. A fresh interpreter, so no other test's state counts."""
    code = textwrap.dedent(f"""
        import json, sys
        import matplotlib
        matplotlib.use("svg")
        import torch
        torch.set_num_threads(2)
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from helpers import MICRO
        import naslid
        cfg = dict(MICRO, plots=True, tensorboard=False, out={str(tmp_path / 'run')!r})
        res = naslid.search(cfg)
        import matplotlib.pyplot as plt
        print(json.dumps({{"threads": torch.get_num_threads(), "backend": matplotlib.get_backend(),
                          "figures": plt.get_fignums(), "arch": res.best_arch}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["threads"] == 2 and got["backend"] == "svg" and got["figures"] == []
    assert (tmp_path / "run" / "plots" / "split_tree.png").stat().st_size > 0
    man = json.loads((tmp_path / "run" / "run.json").read_text())
    assert man["threads"] == 1 and man["status"] == "complete"


def test_threads_restored_when_the_run_fails(tmp_path, monkeypatch):
    import torch

    from naslid.run import pipeline

    def boom(*a, **k):
        raise RuntimeError("stage failed")

    monkeypatch.setattr(pipeline, "_run_prepared", boom)
    n = torch.get_num_threads()
    cfg = micro_config(tmp_path / "run", {"threads": 1 if n != 1 else 2})
    with pytest.raises(RuntimeError, match="stage failed"):
        pipeline.run_search(cfg)
    assert torch.get_num_threads() == n


def test_warm_start_from_a_run_with_another_thread_count_is_refused(tmp_path):
    src = tmp_path / "src"
    cfg = micro_config(src, {"threads": 1})
    RunFolder.open(src, cfg.config_hash(), resume=False, threads=1)
    (src / "config.yaml").write_text(cfg.to_yaml())
    from naslid.run.warm_start import load_warm_start

    other = micro_config(tmp_path / "dst", {"threads": 2, "warm_start": str(src)})
    with pytest.raises(InputError, match=r"warmed up with 1 intra-op CPU threads, this run uses 2.*--set threads=1"):
        load_warm_start(other, 2)
    assert MICRO["threads"] == 1
