"""The symmetric path's Gram strips: BLAS calls against naslid's FMA and AMX kernels, one thread.

The CPU engine (csrc/include/naslid/cpu/gram_knn.h) computes the upper block-triangle of X·Xᵀ as row
strips ``X[b0:b0+bs] · X[b0:]ᵀ``: about 0.5 + bs/(2N) of the full product's FLOPs. In float32 it
runs them with the FMA micro-kernels of csrc/cpu/sym_gram.cpp (which skip the tiles below the
diagonal), elsewhere with the BLAS torch links. This script times, for the NB201 LID profile of
``benchmarks/ops_speed.py`` (17 layers), full products, BLAS strips and each kernel this CPU has
(``naslid_ext._ops._C._gram_strip``), strip heights from 16 to 128 rows:

    python benchmarks/gram_strips.py --n 128 256 512

Times relative to the full products say how close each is to its FLOP share.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from ops_speed import case_layers, timed

KERNELS = ["avx2", "avx512", "amx"]


def median_ms(fn, repeats: int) -> float:
    fn()
    return 1e3 * statistics.median(timed(fn, repeats))


def strips(layers, bs: int) -> None:
    for f in layers:
        for b0 in range(0, f.shape[0], bs):
            f[b0:b0 + bs] @ f[b0:].T


def kernel_strips(layers, bs: int, kernel: str) -> None:
    from naslid_ext import _ops

    for f in layers:
        for b0 in range(0, f.shape[0], bs):
            _ops._C._gram_strip(f[b0:], min(bs, f.shape[0] - b0), kernel)


def strip_flop_share(n: int, bs: int) -> float:
    """FLOPs of the strips as a share of the full N×N product."""
    return sum(min(bs, n - b0) * (n - b0) for b0 in range(0, n, bs)) / n**2


def available_kernels() -> list[str]:
    try:
        from naslid_ext import _ops
    except ImportError:
        return []
    if not _ops.ext_loaded():
        return []
    best = _ops._C.cpu_sym_kernel_supported()
    return KERNELS[: KERNELS.index(best) + 1] if best in KERNELS else []


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[128, 256, 512], help="points per layer")
    ap.add_argument("--strips", type=int, nargs="+", default=[16, 32, 48, 64, 96, 128], help="rows per strip")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_float32_matmul_precision("highest")
    rows = []
    for n in a.n:
        layers = case_layers(f"nb201_N{n}")
        row = {"n": n, "full_ms": median_ms(lambda: [f @ f.T for f in layers], a.repeats)}
        row["strips_ms"] = {bs: median_ms(lambda: strips(layers, bs), a.repeats) for bs in a.strips if bs <= n}
        row["strip_flop_share"] = {bs: strip_flop_share(n, bs) for bs in row["strips_ms"]}
        for kern in available_kernels():
            row[f"{kern}_ms"] = {bs: median_ms(lambda: kernel_strips(layers, bs, kern), a.repeats)
                                 for bs in row["strips_ms"]}
        print(json.dumps(row))
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
