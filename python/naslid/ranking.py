"""Ranking quality of sub-supernets: Kendall τ and Spearman ρ against a benchmark.

Subsets (both computed for every ``*_acc`` column):

``top``     the benchmark's best ``floor(fraction * len)`` rows (NB201: 1 % of 15,625 = 156),
            ranked by *each* column separately (``top_by="each"``, default: τ for column c is over
            c's own top 1 %) or by the first ``*_acc`` column for all columns (``top_by="first"``,
            NAS-LID's practice with its single column). Isomorphic duplicates are kept, as in
            NB201's top-1 % list. Ties at the cut: file order.
``sample``  ``sample_size`` (default 500) architectures drawn uniformly without replacement from
            the benchmark, unique by ``space.canonical_key`` (first drawn representative kept),
            seeded by ``seed``; fewer when the benchmark has fewer unique archs (``n`` says so).

Rows whose benchmark value is NaN are dropped per column. Correlations of constant inputs are
undefined: reported as ``None`` (JSON null). Values are Python floats (JSON-ready).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats

from .benchmark import Benchmark

Predict = Callable[[Mapping[str, str]], float]


def _clean(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def rank_correlations(predicted: Sequence[float], truth: Sequence[float]) -> dict:
    """Kendall τ (tau-b) and Spearman ρ between two equal-length sequences, NaN pairs dropped.

    Returns {"n", "kendall_tau", "kendall_p", "spearman_rho", "spearman_p"} (None where undefined:
    fewer than 2 pairs or a constant input)."""
    p = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"rank_correlations: predicted {p.shape} and truth {t.shape} must be "
                         f"equal-length 1-D")
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    out = {"n": int(p.size), "kendall_tau": None, "kendall_p": None, "spearman_rho": None,
           "spearman_p": None}
    if p.size < 2 or np.all(p == p[0]) or np.all(t == t[0]):
        return out
    k = stats.kendalltau(p, t)
    s = stats.spearmanr(p, t)
    out.update(kendall_tau=_clean(k.statistic), kendall_p=_clean(k.pvalue),
               spearman_rho=_clean(s.statistic), spearman_p=_clean(s.pvalue))
    return out


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


def sample_unique_archs(benchmark: Benchmark, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` arch strings from ``benchmark``, unique by canonical key, seeded (see module)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"sample_unique_archs: n must be a positive int, got {n!r}")
    space = benchmark.space
    perm = torch.randperm(len(benchmark), generator=torch.Generator().manual_seed(int(seed)))
    seen, out = set(), []
    for i in perm.tolist():
        s = benchmark.arch_strings[i]
        key = space.canonical_key(space.arch_from_string(s))
        if key in seen:
            continue
        seen.add(key)
        out.append(s)
        if len(out) == n:
            break
    return out


def _subset_report(benchmark: Benchmark, archs: Sequence[str], predict: Predict, columns,
                   cache: dict) -> dict:
    space = benchmark.space
    for s in archs:
        if s not in cache:
            cache[s] = float(predict(space.arch_from_string(s)))
    pred = [cache[s] for s in archs]
    return {c: rank_correlations(pred, [benchmark.acc(s, c) for s in archs]) for c in columns}


def ranking_report(benchmark: Benchmark, predict: Predict | Mapping[str, float], *,
                   top_fraction: float = 0.01, top_by: str = "each", sample_size: int = 500,
                   seed: int = 0, include_points: bool = True) -> dict:
    """τ and ρ between ``predict`` (arch dict -> supernet accuracy, or a mapping arch string ->
    accuracy) and every ``*_acc`` column, over the top subset(s) and a seeded unique sample.

    Returns a JSON-ready dict::

        {"top": {"fraction", "by", "columns": {col: {"n", "kendall_tau", "kendall_p",
                                                     "spearman_rho", "spearman_p"}}},
         "sample": {"size_requested", "seed", "unique_by": "canonical_key",
                    "columns": {col: {...}}},
         "points": {"top": {col: [[arch, predicted, true], ...]}, "sample": [[arch, predicted,
                    {col: true}], ...]}}      # when include_points (for scatter plots)
    Each arch is predicted once (cached across subsets).
    """
    if top_by not in ("each", "first"):
        raise ValueError(f"ranking_report: top_by must be 'each' or 'first', got {top_by!r}")
    if isinstance(predict, Mapping):
        table = dict(predict)

        def predict(arch, _t=table):  # noqa: F811 - wrap the mapping
            s = benchmark.space.arch_to_string(arch)
            if s not in _t:
                raise ValueError(f"ranking_report: no predicted accuracy for {s}")
            return _t[s]
    cache: dict[str, float] = {}
    cols = benchmark.acc_columns
    top_cols: dict = {}
    top_points: dict = {}
    for c in cols:
        archs = top_archs(benchmark, top_fraction, c if top_by == "each" else None)
        top_cols.update(_subset_report(benchmark, archs, predict, [c], cache))
        top_points[c] = [[s, cache[s], benchmark.acc(s, c)] for s in archs]
    sample = sample_unique_archs(benchmark, sample_size, seed)
    out = {
        "top": {"fraction": top_fraction, "by": top_by, "columns": top_cols},
        "sample": {"size_requested": sample_size, "seed": seed, "unique_by": "canonical_key",
                   "columns": _subset_report(benchmark, sample, predict, cols, cache)},
    }
    if include_points:
        out["points"] = {"top": top_points,
                         "sample": [[s, cache[s], {c: benchmark.acc(s, c) for c in cols}]
                                    for s in sample]}
    return _json_safe(out)  # NaN benchmark values -> JSON null


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def best_arch_benchmark(benchmark: Benchmark, arch) -> dict | None:
    """Every benchmark column (except ``arch``) for ``arch`` (dict or string), JSON-safe; None if
    the benchmark lacks it."""
    row = benchmark.lookup(arch)
    return None if row is None else _json_safe(row)
