"""Why ext stays above the symmetric floor at small N: the Gram product as row strips.

The CPU engine (csrc/include/naslid/cpu/gram_knn.h) computes the lower triangle of X·Xᵀ as row
strips ``X[b0:b0+bs] · X[b0:]ᵀ`` (bs = 32 rows at N ≤ 160, 64 up to 1536): about 0.5 + bs/(2N) of the
full product's FLOPs, run by the BLAS torch links. This script times those strips against full
products for the NB201 LID profile of ``benchmarks/ops_speed.py`` (17 layers), on one thread:

    python benchmarks/gram_strips.py --n 128 256 512

A strip time close to the full product's means the strips run far below the GEMM rate, and only a
SYRK kernel for the diagonal blocks would bring ext nearer the floor (half the full product).
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from ops_speed import case_layers, timed


def median_ms(fn, repeats: int) -> float:
    fn()
    return 1e3 * statistics.median(timed(fn, repeats))


def strips(layers, bs: int) -> None:
    for f in layers:
        for b0 in range(0, f.shape[0], bs):
            f[b0:b0 + bs] @ f[b0:].T


def strip_flop_share(n: int, bs: int) -> float:
    """FLOPs of the strips as a share of the full N×N product."""
    return sum(min(bs, n - b0) * (n - b0) for b0 in range(0, n, bs)) / n**2


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
        print(json.dumps(row))
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
