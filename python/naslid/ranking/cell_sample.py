"""Which cells a ranking is computed on: the benchmark's top fraction (``top_archs``) and a
seeded sample with one cell per isomorphism class, stratified over the truth or uniform
(``sample_stratified_archs``, ``sample_unique_archs``; ``check_sample_request`` before a run)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..choices import SAMPLE_METHODS
from ..groundtruth.table import Benchmark


# ------------------------------------------------------------------------------------------------
# subsets
# ------------------------------------------------------------------------------------------------
def top_archs(benchmark: Benchmark, fraction: float = 0.01, column: str | None = None) -> list[str]:
    """Arch strings of the best ``floor(fraction * len(benchmark))`` (at least 2) rows by ``column``
    (default: the first ``*_acc``), best first; NaN values never count as top; ties: file order."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"top_archs: fraction must be in (0, 1], got {fraction}")
    column = column or benchmark.acc_columns[0]
    vals = benchmark.values(column)
    n = max(2, int(math.floor(fraction * len(benchmark) + 1e-9)))
    order = sorted((i for i in range(len(vals)) if math.isfinite(vals[i])),
                   key=lambda i: (-vals[i], i))
    return [benchmark.arch_strings[i] for i in order[:n]]


def _class_of_rows(benchmark: Benchmark) -> tuple[list[int], list[int]]:
    """(class id of every row, first row of every class): classes by canonical key, numbered in
    file order of their first row."""
    space = benchmark.space
    ids: dict[str, int] = {}
    cls, reps = [], []
    for i, s in enumerate(benchmark.arch_strings):
        key = space.canonical_key(space.arch_from_string(s))
        c = ids.setdefault(key, len(ids))
        if c == len(reps):
            reps.append(i)
        cls.append(c)
    return cls, reps


def sample_unique_archs(benchmark: Benchmark, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` arch strings, one per isomorphism class (its first row in file order), classes
    in the order a seeded random permutation of the rows first meets them ("uniform")."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"sample_unique_archs: n must be a positive int, got {n!r}")
    cls, reps = _class_of_rows(benchmark)
    perm = torch.randperm(len(benchmark), generator=torch.Generator().manual_seed(int(seed)))
    seen, out = set(), []
    for i in perm.tolist():
        if cls[i] in seen:
            continue
        seen.add(cls[i])
        out.append(benchmark.arch_strings[reps[cls[i]]])
        if len(out) == n:
            break
    return out


def _stratifiable_classes(benchmark: Benchmark, column: str) -> list[int]:
    """Representative rows of the classes with a finite ``column`` value, sorted by that value
    (ties: file order)."""
    vals = benchmark.values(column)
    _, reps = _class_of_rows(benchmark)
    return sorted((r for r in reps if math.isfinite(vals[r])), key=lambda r: (vals[r], r))


def sample_stratified_archs(benchmark: Benchmark, n: int, seed: int = 0,
                            column: str | None = None) -> list[str]:
    """``n`` arch strings, one per isomorphism class, spanning the range of ``column`` (default:
    the first ``*_acc``): the classes (first row in file order; NaN ones dropped) sorted by
    ``column`` are cut into ``n`` equal-count quantile bins (sizes differ by at most one) and one
    class is drawn per bin (numpy, seeded). Returned in ascending truth order. ValueError when
    ``n`` exceeds the number of classes."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"sample_stratified_archs: n must be a positive int, got {n!r}")
    column = column or benchmark.acc_columns[0]
    rows = _stratifiable_classes(benchmark, column)
    m = len(rows)
    if n > m:
        raise ValueError(f"sample_stratified_archs: asks for {n} cells but the benchmark has {m} "
                         f"isomorphism classes with a {column} value")
    edges = [(i * m) // n for i in range(n + 1)]
    rng = np.random.default_rng(int(seed))
    return [benchmark.arch_strings[rows[int(rng.integers(edges[b], edges[b + 1]))]]
            for b in range(n)]


def sample_classes(benchmark: Benchmark, sample: str = "stratified") -> int:
    """How many cells ``sample`` can draw: isomorphism classes (with a finite first ``*_acc``
    value for "stratified")."""
    if sample == "stratified":
        return len(_stratifiable_classes(benchmark, benchmark.acc_columns[0]))
    return len(_class_of_rows(benchmark)[1])


def check_sample_request(benchmark: Benchmark, sample_size: int, sample: str = "stratified") -> None:
    """The checks ``ranking_report`` makes on its sample arguments, for callers that want to fail
    before training: ValueError naming ``benchmark.sample`` (unknown method) or
    ``benchmark.sample_size`` (not a positive int, or more cells than isomorphism classes)."""
    if sample not in SAMPLE_METHODS:
        raise ValueError(f"benchmark.sample must be one of {', '.join(SAMPLE_METHODS)}, got "
                         f"{sample!r}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise ValueError(f"benchmark.sample_size must be a positive int, got {sample_size!r}")
    m = sample_classes(benchmark, sample)
    if sample_size > m:
        raise ValueError(f"benchmark.sample_size asks for {sample_size} cells but the benchmark has "
                         f"{m} isomorphism classes"
                         + (f" with a {benchmark.acc_columns[0]} value" if sample == "stratified"
                            else "") + f"; choose <= {m}")
