"""Scale-out: `torchrun --nproc-per-node 2 naslid search` (gloo, CPU) equals a 1-process run in
content (split tree, leaves, best architecture; losses to rounding), and the building blocks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import micro_config
from naslid.config import SearchConfig
from naslid.run.distributed import DistContext, ShardedForward
from naslid.run.pipeline import run_search
from naslid.spaces import get_space

# bn_shards 2: the global batch of 32 is two BatchNorm shards of 16, in one process or on two ranks
DIST = {"train": {"bn_shards": 2}, "plots": False, "tensorboard": False}


def micro(out: Path) -> SearchConfig:
    return micro_config(out, DIST)


def tree_content(tree: dict) -> dict:
    return {nid: (json.dumps(n["mask"], sort_keys=True), (n.get("split") or {}).get("chosen"),
                  json.dumps((n.get("split") or {}).get("groups")), n["leaf"], n["epochs"])
            for nid, n in tree.items()}


def test_two_process_gloo_run_equals_single_process(tmp_path):
    single = run_search(micro(tmp_path / "single"))
    cfg = micro(tmp_path / "dist")
    cfg_file = tmp_path / "micro.yaml"
    cfg.save_yaml(cfg_file)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "naslid.cli", "search", "--config", str(cfg_file), "--out", str(tmp_path / "dist"),
                        "--quiet"], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert r.stdout.count("best architecture:") == 1  # rank 0 alone prints
    dist = json.loads((tmp_path / "dist" / "result.json").read_text())
    assert tree_content(dist["split_tree"]) == tree_content(single.split_tree)
    assert dist["best_arch"] == single.best_arch
    assert dist["best_valid_acc"] == pytest.approx(single.best_valid_acc, abs=0.02)
    # nodes trained by one rank from (nearly) the same weights: losses agree to rounding
    for nid, node in dist["split_tree"].items():
        if nid == "r":
            continue  # data-parallel: rank 0 records the loss of its own half of each batch
        ref = [h["loss"] for h in single.split_tree[nid]["history"] if h["stage"] != "warmup-0"]
        got = [h["loss"] for h in node["history"] if h["stage"] != "warmup-0"]
        assert got == pytest.approx(ref, rel=1e-3), nid
    assert dist["config_hash"] == single.config_hash  # world size is not part of a run's identity


def test_sharded_forward_is_ghost_batchnorm():
    """ShardedForward(net, 2)(x) = concatenation of net on each half (BN statistics per half)."""
    space = get_space("nb201", C=4, N=1, input_size=8)
    torch.manual_seed(0)
    net = space.build_supernet()
    arch = space.sample(None, torch.Generator().manual_seed(1))
    net.set_arch(arch)
    net.train()
    x = torch.randn(8, 3, 8, 8)
    sharded = ShardedForward(net, 2)
    with torch.no_grad():
        got = sharded(x)
        want = torch.cat([net(x[:4]), net(x[4:])])
        whole = net(x)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, whole, atol=1e-4)  # it is not the full-batch statistics
    with pytest.raises(ValueError, match="does not split"):
        sharded(torch.randn(7, 3, 8, 8))


def test_single_context_and_owner():
    ctx = DistContext.single("cpu")
    assert ctx.is_main and not ctx.distributed and ctx.owner(5) == 0
    assert ctx.broadcast_object({"a": 1}) == {"a": 1} and ctx.all_ok(True)
    two = DistContext(rank=1, world_size=2)
    assert [two.owner(i) for i in range(5)] == [0, 1, 0, 1, 0]


def test_cuda_context_needs_a_gpu(monkeypatch):
    if torch.cuda.is_available():
        assert DistContext.single("cuda").device.type == "cuda"
        assert DistContext.single("auto").device.type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU
    with pytest.raises(ValueError, match="no CUDA device is available"):
        DistContext.single("cuda")
    assert DistContext.single("auto").device.type == "cpu"
