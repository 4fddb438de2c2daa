"""Rank statistics of a predictor against the truth on the same cells: Kendall τ (tau-b) and
Spearman ρ (scipy), bootstrap intervals and paired differences, precision at the top, ties
(``ranking_metrics`` gathers them; definitions in ``naslid.ranking``'s docstring)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

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
