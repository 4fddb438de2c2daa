"""Similarity between the op vectors of one decision (LID vectors or flattened gradients).

All functions take ``vectors``: a tensor (n_ops, D) or a list of n_ops (D,) tensors (any float
dtype, any device; a list is never stacked into one copy) and return a
symmetric ``numpy.ndarray`` (n_ops, n_ops) of float64 with ones on the diagonal. They never return
NaN for finite input: a zero (cosine) or constant (correlation) vector has similarity 0 to the others.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

_TINY = 1e-300


_CHUNK = 1 << 16  # columns per float64 chunk: bounded workspace for million-long gradient vectors


def _check(vectors, fn: str) -> list[torch.Tensor]:
    """Rows of ``vectors`` ((n, D) tensor/array, or a sequence of n (D,) tensors) as 1-D tensors;
    no copy of the data (so a list of million-long gradients is never stacked)."""
    if isinstance(vectors, (list, tuple)) and vectors and all(isinstance(r, torch.Tensor) for r in vectors):
        rows = [r.detach().reshape(-1) for r in vectors]
        if len({r.numel() for r in rows}) != 1:
            raise ValueError(f"{fn}: the {len(rows)} vectors have different lengths {[r.numel() for r in rows]}")
    else:
        if not isinstance(vectors, torch.Tensor):
            vectors = torch.as_tensor(np.asarray(vectors))
        if vectors.dim() != 2 or vectors.shape[0] < 1:
            raise ValueError(f"{fn}: vectors must be (n_ops, D) with n_ops >= 1, got shape {tuple(vectors.shape)}")
        rows = list(vectors.detach())
    if not rows:
        raise ValueError(f"{fn}: no vectors")
    rows = [r if r.is_floating_point() else r.to(torch.float64) for r in rows]
    for r in rows:  # chunked: no full-size temporary
        for j in range(0, r.numel(), _CHUNK):
            if not bool(torch.isfinite(r[j:j + _CHUNK]).all()):
                raise ValueError(f"{fn}: vectors ({len(rows)}, {r.numel()}) contain NaN or Inf")
    return rows


def _chunks(rows: list[torch.Tensor], center: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """float64 (n, chunk) column blocks of the rows (optionally minus a per-row ``center`` (n, 1))."""
    for j in range(0, rows[0].numel(), _CHUNK):
        c = torch.stack([r[j:j + _CHUNK].to(torch.float64) for r in rows])
        yield c if center is None else c - center


def _gram(v: list[torch.Tensor], center: torch.Tensor | None = None) -> torch.Tensor:
    n = len(v)
    g = torch.zeros(n, n, dtype=torch.float64, device=v[0].device)
    for c in _chunks(v, center):
        g += c @ c.T
    return g


def _finish(s: torch.Tensor) -> np.ndarray:
    s = 0.5 * (s + s.T)
    s.fill_diagonal_(1.0)
    return s.cpu().numpy()


def _cosine_from_gram(g: torch.Tensor) -> torch.Tensor:
    norms = g.diagonal().clamp_min(0).sqrt()
    denom = norms[:, None] * norms[None, :]
    s = torch.where(denom > _TINY, g / denom.clamp_min(_TINY), torch.zeros_like(g))
    return s.clamp(-1.0, 1.0)


def cosine_similarity(vectors: torch.Tensor) -> np.ndarray:
    """s_ij = <v_i, v_j> / (|v_i| |v_j|) accumulated in float64; 0 when either vector is zero."""
    v = _check(vectors, "cosine_similarity")
    return _finish(_cosine_from_gram(_gram(v)))


def correlation_similarity(vectors: torch.Tensor) -> np.ndarray:
    """Pearson correlation of the entries of v_i and v_j (cosine of the centred vectors)."""
    v = _check(vectors, "correlation_similarity")
    mean = sum(c.sum(dim=1, keepdim=True) for c in _chunks(v)) / max(v[0].numel(), 1)
    return _finish(_cosine_from_gram(_gram(v, mean)))


def euclidean_similarity(vectors: torch.Tensor) -> np.ndarray:
    """s_ij = 1 / (1 + ||v_i - v_j||) in (0, 1] (the released NAS-LID code's ``mse`` option);
    distances from explicit float64 differences (no cancellation)."""
    v = _check(vectors, "euclidean_similarity")
    n = len(v)
    d2 = torch.zeros(n, n, dtype=torch.float64, device=v[0].device)
    for c in _chunks(v):
        d2 += ((c[:, None, :] - c[None, :, :]) ** 2).sum(dim=-1)
    return _finish(1.0 / (1.0 + d2.sqrt()))


def row_norms(vectors: torch.Tensor) -> list[float]:
    """Euclidean norm of each row of (n, D), accumulated in float64 chunk by chunk (no full copy)."""
    v = _check(vectors, "row_norms")
    sq = torch.zeros(len(v), dtype=torch.float64, device=v[0].device)
    for c in _chunks(v):
        sq += (c * c).sum(dim=1)
    return sq.sqrt().tolist()


SIMILARITY_FUNCTIONS = {
    "cosine": cosine_similarity,
    "correlation": correlation_similarity,
    "euclidean": euclidean_similarity,
}


def similarity_matrix(vectors: torch.Tensor, method: str = "cosine") -> np.ndarray:
    """Dispatch on ``method`` (cosine | euclidean | correlation); see the functions above."""
    if method not in SIMILARITY_FUNCTIONS:
        raise ValueError(f"similarity_matrix: method={method!r} is not one of {list(SIMILARITY_FUNCTIONS)}")
    return SIMILARITY_FUNCTIONS[method](vectors)
