"""Helpers shared by several test files: the micro search run, independent MAC counting, random
weights, reference-file fields, the shared data folder. Plain functions and constants; import them
with ``from helpers import ...`` (tests/ is on sys.path under pytest's default import mode).
Fixtures live in conftest.py."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

# the real data folder beside the repository (the CIFAR-10 npz and NB201 CSV that `naslid data`
# builds, the authors' reference architectures); tests that need it skip without it
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REFERENCE_ARCHS = SHARED_DATA / "reference_archs"

# ------------------------------------------------------------------------------------------------
# the micro search run (NB201 C=4 N=1 on 8x8 digits: seconds on one CPU thread)
# ------------------------------------------------------------------------------------------------
MICRO = {
    "space": {"name": "nb201", "C": 4, "N": 1},
    "data": {"dataset": "digits", "image_size": 8, "max_train": 192, "max_valid": 96, "batch_size": 32},
    "split": {"criterion": "lid", "repeats": 1, "k": 8, "batch_size": 48},
    "train": {"warmup_epochs": [1, 2], "leaf_epochs": 1},
    "search": {"population": 6, "generations": 2, "parents": 2, "crossover": 2, "mutation": 2,
               "newcomers": 2, "bn_batches": 1, "eval_batch_size": 96},
    "benchmark": {"sample_size": 12, "top_fraction": 0.2},
    "quiet": True, "threads": 1,
}


def micro_config(out, *overlays: Mapping):
    """The quick preset, then ``MICRO``, then each overlay (nested dicts of fields), written to
    ``out``: a ``SearchConfig``."""
    from naslid.config import SearchConfig

    cfg = SearchConfig.from_dict(MICRO, base=SearchConfig.preset_config("quick"))
    for overlay in overlays:
        cfg = SearchConfig.from_dict(overlay, base=cfg)
    cfg.out = str(out)
    return cfg


# ------------------------------------------------------------------------------------------------
# networks
# ------------------------------------------------------------------------------------------------
def hook_macs(net: nn.Module, size: int, in_channels: int = 3) -> int:
    """Independent multiply-add count from one forward of a (1, in_channels, size, size) input:
    every Conv2d adds out.numel() / B * (cin / groups) * kh * kw, every Linear in * out (biases
    not counted)."""
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, inp, out):
        total[0] += m.in_features * m.out_features

    hs = [m.register_forward_hook(conv_hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    hs += [m.register_forward_hook(lin_hook) for m in net.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, in_channels, size, size))
    finally:
        for h in hs:
            h.remove()
    return total[0]


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics, so that equality tests cannot pass by symmetry; OFA's
    kernel transformation matrices (``transform_*``) become identity plus small noise."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "transform_" in name:
                p.copy_(torch.eye(p.shape[0]) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net


def block_fields(net_config: dict) -> list[tuple]:
    """The structure of each block of a ProxylessNAS / OFA ``net.config``: (name, channels, kernel,
    stride, expansion, activation, SE, has shortcut)."""
    keys = ("name", "in_channels", "out_channels", "kernel_size", "stride", "expand_ratio",
            "act_func", "use_se")
    return [tuple(b["mobile_inverted_conv"].get(k) for k in keys) + (b["shortcut"] is not None,)
            for b in net_config["blocks"]]


# ------------------------------------------------------------------------------------------------
# a synthetic NB201 benchmark (for end-to-end runs that exercise the ranking stage)
# ------------------------------------------------------------------------------------------------
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def write_nb201_benchmark(path: Path, n: int = 200, seed: int = 0) -> Path:
    """A CSV of ``n`` distinct random NB201 cells (``arch``, ``x_acc``), x_acc = 10 x convolutions
    + 5 x skips + seeded noise: a made-up ground truth for the ranking stage, written to ``path``."""
    import csv
    import random

    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        ops = [rng.choice(NB201_OPS) for _ in range(6)]
        arch = (f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|")
        if arch in seen:
            continue
        seen.add(arch)
        acc = 10.0 * sum(o.startswith("nor_conv") for o in ops) + 5.0 * ops.count("skip_connect")
        rows.append([arch, round(acc + rng.random(), 4)])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "x_acc"])
        w.writerows(rows)
    return path
