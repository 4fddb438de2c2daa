"""Ranking quality of sub-supernets: Kendall τ, Spearman ρ and friends against a benchmark.

A *predictor* scores architectures, higher = better. ``ranking_report`` takes the user's
``predict`` (one or several named scores per arch, e.g. ``{"acc": 71.2, "neg_loss": -0.83}``)
and adds free *yardsticks* computed on the same cells: ``params`` (``space.count_params``) and
``flops`` (``space.count_macs``, multiply-adds), the literature's "#params" / "FLOPs" baselines. A
supernet that cannot beat them on τ does not rank better than counting parameters.

Subsets (both computed for every ``*_acc`` column):

``top``     the benchmark's best ``floor(fraction * len)`` rows (NB201: 1 % of 15,625 = 156),
            ranked by *each* column separately (``top_by="each"``, default: τ for column c is over
            c's own top 1 %) or by the first ``*_acc`` column for all columns (``top_by="first"``,
            NAS-LID's practice with its single column). Isomorphic duplicates are kept, as in
            NB201's top-1 % list. Ties at the cut: file order.
``sample``  ``sample_size`` (default 500) cells, one per isomorphism class (``space.canonical_key``;
            a class is represented by its first row in file order), chosen by ``sample``:
            ``"stratified"`` (default): the classes are sorted by the first ``*_acc`` column (NaN
            classes dropped) and cut into ``sample_size`` equal-count quantile bins, one class drawn
            per bin (seeded), so the sample spans the whole ground-truth range; ``"uniform"``:
            classes in the order a seeded random permutation of the rows first meets them.
            Asking for more cells than there are classes is a ValueError.

Metrics per subset, column and predictor (``ranking_metrics``): ``n``, ``kendall_tau`` (tau-b:
ties handled), ``kendall_tau_ci95`` (percentile bootstrap over cells, 1000 seeded resamples),
``kendall_p``, ``spearman_rho``, ``spearman_p``, ``precision_at_10`` (share of the predictor's top
10 % = ceil(0.1 n) cells that are in the truth's top 10 % of the same cells; ties at a cut are
broken at random, in expectation), ``tau_top_half`` (τ over the cells whose truth is >= the subset's
median) and ``ties`` (cells whose score equals another cell's score: a resolution check).

Rows whose benchmark value (or predicted score) is NaN are dropped per column and predictor.
Undefined statistics (fewer than 2 cells, a constant input) are ``None`` (JSON null). Values are
Python floats (JSON-ready).
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
from scipy import stats

from .benchmark import Benchmark
from .choices import SAMPLE_METHODS

log = logging.getLogger(__name__)

Scores = Union[float, Mapping[str, float]]
Predict = Callable[[Mapping[str, str]], Scores]

YARDSTICKS = ("params", "flops")
BOOTSTRAP_RESAMPLES = 1000
_MATRIX_BOOTSTRAP_MAX_N = 1500  # above: scipy per resample (O(n log n)) instead of O(n^2) matmuls


def _clean(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------------
def _pairs(predicted, truth, fn: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"{fn}: predicted {p.shape} and truth {t.shape} must be equal-length 1-D")
    ok = np.isfinite(p) & np.isfinite(t)
    return p[ok], t[ok]


def rank_correlations(predicted: Sequence[float], truth: Sequence[float]) -> dict:
    """Kendall τ (tau-b) and Spearman ρ between two equal-length sequences, NaN pairs dropped.

    Returns {"n", "kendall_tau", "kendall_p", "spearman_rho", "spearman_p"} (None where undefined:
    fewer than 2 pairs or a constant input)."""
    p, t = _pairs(predicted, truth, "rank_correlations")
    out = {"n": int(p.size), "kendall_tau": None, "kendall_p": None, "spearman_rho": None,
           "spearman_p": None}
    if p.size < 2 or np.all(p == p[0]) or np.all(t == t[0]):
        return out
    k = stats.kendalltau(p, t)
    s = stats.spearmanr(p, t)
    out.update(kendall_tau=_clean(k.statistic), kendall_p=_clean(k.pvalue),
               spearman_rho=_clean(s.statistic), spearman_p=_clean(s.pvalue))
    return out


def bootstrap_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) int64 cell indices drawn with replacement (numpy PCG64 seeded by ``seed``)."""
    return np.random.default_rng(int(seed)).integers(0, n, size=(int(resamples), int(n)))


def _sign_matrix(v: np.ndarray) -> np.ndarray:
    return np.sign(v[:, None] - v[None, :]).astype(np.float32)


def bootstrap_kendall_taus(predicted, truth, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                           method: str = "auto") -> np.ndarray:
    """Kendall tau-b of each bootstrap resample (``bootstrap_indices``) of the finite pairs; NaN
    where a resample is constant. ``method``: "matrix" (vectorised: with resample counts w, the
    resample's tau-b is w'Mw / sqrt(w'|Sx|w * w'|Sy|w), Sx, Sy the pairwise sign matrices and
    M = Sx∘Sy; O(n^2) per resample as float32 matmuls, exact), "scipy" (a loop), or "auto"
    (matrix up to n = 1500)."""
    p, t = _pairs(predicted, truth, "bootstrap_kendall_taus")
    n = p.size
    if n < 2:
        return np.full(int(resamples), np.nan)
    idx = bootstrap_indices(n, resamples, seed)
    if method == "auto":
        method = "matrix" if n <= _MATRIX_BOOTSTRAP_MAX_N else "scipy"
    if method == "scipy":
        out = np.full(idx.shape[0], np.nan)
        for r, ix in enumerate(idx):
            a, b = p[ix], t[ix]
            if not (np.all(a == a[0]) or np.all(b == b[0])):
                out[r] = stats.kendalltau(a, b).statistic
        return out
    if method != "matrix":
        raise ValueError(f"bootstrap_kendall_taus: method must be auto|matrix|scipy, got {method!r}")
    B = idx.shape[0]
    w = np.bincount((idx + n * np.arange(B)[:, None]).ravel(), minlength=B * n)
    w = w.reshape(B, n).astype(np.float32)  # counts <= n: exact in float32, as are the row sums
    sx, sy = _sign_matrix(p), _sign_matrix(t)
    w64 = w.astype(np.float64)

    def quad(m):
        return np.einsum("bi,bi->b", (w @ m).astype(np.float64), w64)

    num, dx, dy = quad(sx * sy), quad(np.abs(sx)), quad(np.abs(sy))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / np.sqrt(dx * dy)
    tau[(dx <= 0) | (dy <= 0)] = np.nan
    return tau


def bootstrap_kendall_ci(predicted, truth, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                         level: float = 0.95) -> list[float] | None:
    """[lo, hi]: the percentile interval of ``bootstrap_kendall_taus`` (constant resamples left
    out); None when τ itself is undefined or no resample has a defined τ."""
    p, t = _pairs(predicted, truth, "bootstrap_kendall_ci")
    if p.size < 2 or np.all(p == p[0]) or np.all(t == t[0]):
        return None
    taus = bootstrap_kendall_taus(p, t, resamples, seed)
    taus = taus[np.isfinite(taus)]
    if taus.size == 0:
        return None
    a = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(taus, [a, 100 - a])
    return [float(lo), float(hi)]


def paired_delta_tau(pred_a: Sequence[Sequence[float]], pred_b: Sequence[Sequence[float]],
                     truth: Sequence[Sequence[float]], *, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0, level: float = 0.95) -> dict:
    """Paired difference of Kendall τ between two predictors scored on the same cells, over seeds.

    ``pred_a[i]``, ``pred_b[i]``, ``truth[i]``: scores of seed i's cells (length n_i, the same cells
    in the same order for a and b; every value finite). Per seed the difference is
    d_i = τ(a_i, truth_i) − τ(b_i, truth_i). The interval is a two-level percentile bootstrap: each
    resample r draws the seeds with replacement and, within every seed, the cells with replacement
    (``bootstrap_indices(n_i, resamples, seed + i)``, the same cells for a and b: paired on cells),
    and averages d over the drawn seeds. With one seed only the cells are resampled.

    Returns ``{"n_seeds", "per_seed": [d_i], "mean": mean d_i, "ci95": [lo, hi] | None}``.
    """
    k = len(pred_a)
    if k == 0 or len(pred_b) != k or len(truth) != k:
        raise ValueError(f"paired_delta_tau: pred_a, pred_b and truth need one entry per seed, got "
                         f"{len(pred_a)}, {len(pred_b)}, {len(truth)}")
    per_seed, boots = [], []
    for i, (a, b, t) in enumerate(zip(pred_a, pred_b, truth)):
        a, b, t = (np.asarray(v, dtype=np.float64) for v in (a, b, t))
        if not (a.shape == b.shape == t.shape and a.ndim == 1):
            raise ValueError(f"paired_delta_tau: seed {i}: pred_a, pred_b and truth must be 1-D of one "
                             f"length, got {a.shape}, {b.shape}, {t.shape}")
        if not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(t).all()):
            raise ValueError(f"paired_delta_tau: seed {i}: non-finite scores (pairing needs every cell)")
        ta, tb = rank_correlations(a, t)["kendall_tau"], rank_correlations(b, t)["kendall_tau"]
        if ta is None or tb is None:
            raise ValueError(f"paired_delta_tau: seed {i}: τ undefined (constant scores or < 2 cells)")
        per_seed.append(ta - tb)
        boots.append(bootstrap_kendall_taus(a, t, resamples, seed + i)
                     - bootstrap_kendall_taus(b, t, resamples, seed + i))
    d = np.stack(boots)                                               # (k, resamples)
    pick = bootstrap_indices(k, resamples, seed) if k > 1 else np.zeros((int(resamples), 1), dtype=np.int64)
    means = np.nanmean(d[pick, np.arange(int(resamples))[:, None]], axis=1)
    means = means[np.isfinite(means)]
    a_ = (1.0 - level) / 2 * 100
    ci = [float(x) for x in np.percentile(means, [a_, 100 - a_])] if means.size else None
    return {"n_seeds": k, "per_seed": [float(x) for x in per_seed], "mean": float(np.mean(per_seed)), "ci95": ci}


def _top_weights(v: np.ndarray, k: int) -> np.ndarray:
    """P(cell in the top k of ``v``) when ties at the cut are broken uniformly at random."""
    thr = np.sort(v)[::-1][k - 1]
    above, eq = v > thr, v == thr
    w = above.astype(np.float64)
    w[eq] = (k - int(above.sum())) / int(eq.sum())
    return w


def precision_at(predicted, truth, fraction: float = 0.1) -> float | None:
    """Share of the predictor's top ``ceil(fraction * n)`` cells that are in the truth's top
    ``ceil(fraction * n)`` (NaN pairs dropped; ties at either cut broken at random, the expected
    value); None for no cells."""
    p, t = _pairs(predicted, truth, "precision_at")
    if p.size == 0:
        return None
    k = max(1, math.ceil(fraction * p.size - 1e-9))
    return float((_top_weights(p, k) * _top_weights(t, k)).sum() / k)


def count_ties(values) -> int:
    """Number of (finite) values equal to at least one other value."""
    v = np.asarray(values, dtype=np.float64)
    _, counts = np.unique(v[np.isfinite(v)], return_counts=True)
    return int(counts[counts > 1].sum())


def ranking_metrics(predicted: Sequence[float], truth: Sequence[float], *,
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Every metric of the module docstring for one predictor against one truth (NaN pairs
    dropped): {"n", "kendall_tau", "kendall_tau_ci95", "kendall_p", "spearman_rho", "spearman_p",
    "precision_at_10", "tau_top_half", "ties"}."""
    p, t = _pairs(predicted, truth, "ranking_metrics")
    base = rank_correlations(p, t)
    top_half = t >= np.median(t) if t.size else np.zeros(0, dtype=bool)
    return {"n": base["n"], "kendall_tau": base["kendall_tau"],
            "kendall_tau_ci95": (bootstrap_kendall_ci(p, t, resamples, seed)
                                 if base["kendall_tau"] is not None else None),
            "kendall_p": base["kendall_p"], "spearman_rho": base["spearman_rho"],
            "spearman_p": base["spearman_p"], "precision_at_10": precision_at(p, t, 0.1),
            "tau_top_half": rank_correlations(p[top_half], t[top_half])["kendall_tau"],
            "ties": count_ties(p)}


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
