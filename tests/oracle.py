"""Independent float64 oracles for k-NN and MLE LID (naive loops in numpy; not the package's path).

Conventions (the same as csrc/include/naslid/lid_math.h, written independently here):
  * distances are squared Euclidean, computed by explicit differences in float64;
  * neighbours sorted by (distance, index): ties go to the lower index;
  * exclude_self drops reference index i for query i (by index: exact duplicates stay, at 0);
  * LID of a point from its sorted squared distances s_1 <= ... <= s_k:
      "naslid": k / sum_{j=1..k} 0.5*log(s_k/s_j);   "levina": (k-1) / sum_{j<k} 0.5*log(s_k/s_j);
    s_k == 0 or any used s_j == 0 -> 0; a sum so small that LID would exceed `cap` -> cap
    (cap = 1/eps of the kernel's compute type: 2**23 for float32, 2**52 for float64).

Functions:
  knn_oracle(x, y, k, exclude_self) -> (sqdist float64 (B,N,k) or (N,k), idx int64)
  lid_oracle(sqdist, estimator="naslid", cap=None) -> float64 (...)
  lid_cap(dtype) -> the cap used by the kernels for that dtype
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["knn_oracle", "lid_oracle", "lid_cap", "knn_lid_oracle"]


def _as_f64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().to(torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


def lid_cap(dtype) -> float:
    """The finite LID given to equidistant neighbourhoods by the kernels of `dtype` (1/eps)."""
    if dtype in (torch.float64, np.float64):
        return 2.0 ** 52
    return 2.0 ** 23


def knn_oracle(x, y, k: int, exclude_self: bool):
    """Brute-force k-NN in float64.

    x: (N, D) or (B, N, D) queries; y: (M, D) or (B, M, D) references (pass x again for self k-NN).
    Returns (sqdist, idx) as torch tensors float64 / int64 of shape (..., N, k).
    """
    xa, ya = _as_f64(x), _as_f64(y)
    squeeze = xa.ndim == 2
    if squeeze:
        xa, ya = xa[None], ya[None]
    B, N, _ = xa.shape
    M = ya.shape[1]
    dist = np.empty((B, N, k), dtype=np.float64)
    idx = np.empty((B, N, k), dtype=np.int64)
    for b in range(B):
        for i in range(N):
            diff = ya[b] - xa[b, i]  # explicit differences, (M, D)
            d = np.einsum("md,md->m", diff, diff)
            cand = np.arange(M)
            if exclude_self:
                keep = cand != i
                d, cand = d[keep], cand[keep]
            order = np.lexsort((cand, d))[:k]  # by distance, then by index
            dist[b, i] = d[order]
            idx[b, i] = cand[order]
    if squeeze:
        dist, idx = dist[0], idx[0]
    return torch.from_numpy(dist), torch.from_numpy(idx)


def _lid_one(s: np.ndarray, estimator: str, cap: float) -> float:
    k = len(s)
    sk = s[-1]
    if not sk > 0:
        return 0.0
    terms = k if estimator == "naslid" else k - 1
    total = 0.0
    for j in range(terms):
        if not s[j] > 0:
            return 0.0
        total += math.log(sk / s[j])
    log_sum = 0.5 * total
    if not log_sum * cap > terms:
        return cap
    return terms / log_sum


def lid_oracle(sqdist, estimator: str = "naslid", cap: float | None = None) -> torch.Tensor:
    """Per-point MLE LID in float64 from sorted squared distances (..., k) -> (...)."""
    if estimator not in ("naslid", "levina"):
        raise ValueError(f"lid_oracle: estimator must be 'naslid' or 'levina', got {estimator!r}")
    s = _as_f64(sqdist)
    if cap is None:
        cap = lid_cap(torch.float64)
    flat = s.reshape(-1, s.shape[-1])
    out = np.array([_lid_one(row, estimator, cap) for row in flat], dtype=np.float64)
    return torch.from_numpy(out.reshape(s.shape[:-1]))


def knn_lid_oracle(x, k: int, estimator: str = "naslid", cap: float | None = None) -> torch.Tensor:
    """Per-point LID of a set (N, D) or batch (B, N, D), self excluded: float64 (..., N)."""
    d, _ = knn_oracle(x, x, k, True)
    return lid_oracle(d, estimator, cap)
