"""``ranking_report``: a predictor's (and the params / FLOPs yardsticks') rank statistics over the
``top`` and ``sample`` cells for every ``*_acc`` column, JSON-ready; ``best_arch_benchmark``."""
from __future__ import annotations

import logging
import math
from typing import Callable, Mapping, Sequence, Union

import numpy as np

from ..groundtruth.table import Benchmark
from .cell_sample import check_sample_request, sample_stratified_archs, sample_unique_archs, top_archs
from .statistics import ranking_metrics

log = logging.getLogger(__name__)


Scores = Union[float, Mapping[str, float]]


Predict = Callable[[Mapping[str, str]], Scores]


YARDSTICKS = ("params", "flops")


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------
def _as_scores(v, arch: str) -> dict[str, float]:
    if isinstance(v, Mapping):
        if not v:
            raise ValueError(f"ranking_report: predict returned no scores for {arch}")
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise ValueError(f"ranking_report: score names must be strings, got {k!r} for {arch}")
            out[k] = _as_float(x, arch, k)
        return out
    return {"score": _as_float(v, arch, "score")}


def _as_float(x, arch: str, name: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ValueError(f"ranking_report: score {name!r} of {arch} is not a number: {x!r}") from None


def ranking_report(benchmark: Benchmark, predict: Predict | Mapping[str, Scores], *,
                   top_fraction: float = 0.01, top_by: str = "each", sample_size: int = 500,
                   sample: str = "stratified", seed: int = 0,
                   yardsticks: Sequence[str] = YARDSTICKS, include_points: bool = True) -> dict:
    """Ranking metrics (see the module docstring) of ``predict`` and the ``yardsticks`` against
    every ``*_acc`` column, over the top subset(s) and a seeded sample of unique cells.

    ``predict``: a callable arch dict -> float or {score name: float} (higher = better), or a
    mapping arch string -> the same; a plain float is the score ``"score"``. Every arch must get
    the same score names. Each arch is predicted once (cached across subsets). ``yardsticks``:
    names from ``YARDSTICKS``, computed on the same cells (a space that cannot count them is
    logged and listed in ``sample["yardsticks_skipped"]``). ``seed`` seeds the sample and the
    bootstrap.

    Returns a JSON-ready dict (``names`` = the score names, then the yardsticks)::

        {"top": {"fraction", "by", "columns": {col: {name: metrics}}},
         "sample": {"size_requested", "n", "seed", "method", "unique_by": "canonical_key",
                    "yardsticks": [...], "columns": {col: {name: metrics}}},
         "points": {"top": {col: [[arch, {name: value}, true], ...]},
                    "sample": [[arch, {name: value}, {col: true}], ...]}}   # when include_points
    metrics = {"n", "kendall_tau", "kendall_tau_ci95": [lo, hi] | None, "kendall_p",
    "spearman_rho", "spearman_p", "precision_at_10", "tau_top_half", "ties"}.

    ValueError for a bad ``top_by``, ``sample`` (named ``benchmark.sample``), ``sample_size``
    above the number of isomorphism classes (named ``benchmark.sample_size``), an unknown
    yardstick, inconsistent score names, or an arch missing from a ``predict`` mapping.
    """
    if top_by not in ("each", "first"):
        raise ValueError(f"ranking_report: top_by must be 'each' or 'first', got {top_by!r}")
    scores = _ScoreTable(benchmark, predict, yardsticks)
    cols = benchmark.acc_columns
    check_sample_request(benchmark, sample_size, sample)  # before any prediction
    sample_archs = (sample_stratified_archs(benchmark, sample_size, seed, cols[0])
                    if sample == "stratified" else sample_unique_archs(benchmark, sample_size, seed))
    top_sets = {c: top_archs(benchmark, top_fraction, c if top_by == "each" else None) for c in cols}
    top_cols = {c: scores.metrics(archs, [c], seed)[c] for c, archs in top_sets.items()}
    sample_cols = scores.metrics(sample_archs, cols, seed)
    out = {
        "top": {"fraction": top_fraction, "by": top_by, "columns": top_cols},
        "sample": {"size_requested": sample_size, "n": len(sample_archs), "seed": seed,
                   "method": sample, "unique_by": "canonical_key",
                   "yardsticks": scores.yardsticks_used(), "columns": sample_cols},
    }
    if scores.skipped:
        out["sample"]["yardsticks_skipped"] = dict(scores.skipped)
    if include_points:
        out["points"] = {
            "top": {c: [[s, scores.kept(s), benchmark.acc(s, c)] for s in archs] for c, archs in top_sets.items()},
            "sample": [[s, scores.kept(s), {c: benchmark.acc(s, c) for c in cols}] for s in sample_archs]}
    return _json_safe(out)  # NaN benchmark values and scores -> JSON null


class _ScoreTable:
    """The scores of ``predict`` and the yardsticks per arch string, each arch predicted once."""

    def __init__(self, benchmark: Benchmark, predict, yardsticks: Sequence[str] | str):
        if isinstance(yardsticks, str):
            yardsticks = (yardsticks,)
        self.yardsticks = list(dict.fromkeys(yardsticks))
        bad = [y for y in self.yardsticks if y not in YARDSTICKS]
        if bad:
            raise ValueError(f"ranking_report: unknown yardstick(s) {bad}: choose from "
                             f"{', '.join(YARDSTICKS)}")
        self.benchmark, self.space = benchmark, benchmark.space
        if isinstance(predict, Mapping):
            table = dict(predict)

            def predict(arch, _t=table):  # noqa: F811 - wrap the mapping
                s = self.space.arch_to_string(arch)
                if s not in _t:
                    raise ValueError(f"ranking_report: no predicted score for {s}")
                return _t[s]
        self.predict = predict
        self.cache: dict[str, dict[str, float]] = {}
        self.score_names: list[str] = []
        self.skipped: dict[str, str] = {}
        self.count = {"params": self.space.count_params, "flops": self.space.count_macs}

    def yardsticks_used(self) -> list[str]:
        return [y for y in self.yardsticks if y not in self.skipped]

    def values(self, s: str) -> dict[str, float]:
        """{score name: value, yardstick: value} of arch string ``s``."""
        if s in self.cache:
            return self.cache[s]
        arch = self.space.arch_from_string(s)
        sc = _as_scores(self.predict(arch), s)
        if not self.score_names:
            clash = sorted(set(sc) & set(self.yardsticks))
            if clash:
                raise ValueError(f"ranking_report: score name(s) {clash} clash with the "
                                 f"yardsticks; rename them or drop the yardstick")
            self.score_names.extend(sc)
        elif list(sc) != self.score_names:
            raise ValueError(f"ranking_report: predict returned scores {list(sc)} for {s} but "
                             f"{self.score_names} before")
        for y in self.yardsticks_used():
            try:
                sc[y] = float(self.count[y](arch))
            except NotImplementedError as e:
                self.skipped[y] = f"{type(self.space).__name__} cannot count {y}: {e or 'not implemented'}"
                log.warning("ranking yardstick %s skipped: %s", y, self.skipped[y])
        self.cache[s] = sc
        return sc

    def kept(self, s: str) -> dict[str, float]:
        """``values(s)`` without the skipped yardsticks."""
        return {k: v for k, v in self.values(s).items() if k not in self.skipped}

    def metrics(self, archs: Sequence[str], columns: Sequence[str], seed: int) -> dict:
        """{column: {name: ranking_metrics}} over ``archs``."""
        vals = [self.values(s) for s in archs]
        names = self.score_names + self.yardsticks_used()
        return {c: {k: ranking_metrics([v.get(k, math.nan) for v in vals],
                                       [self.benchmark.acc(s, c) for s in archs], seed=seed)
                    for k in names}
                for c in columns}


def _json_safe(obj):
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
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
