"""k-NN in plain, vectorised torch: the portable backend (any device torch supports).

Contract: the same as the ext kernels, stated in docs/ops_api.md ("Conventions (every backend)").

Method, per batch entry and per block of query rows (memory stays O(rows * M + rows * c * D)):
  1. approximate distances from the Gram form |x|^2 + |y|^2 - 2 x.y on data centred at the mean of
     the reference set (centring removes most of the cancellation of ReLU-like, positive features);
  2. select c candidates per row (k + k/4, or 2k when the GEMM may run in TF32/bf16; see
     `num_candidates`), ties at the c-th value to the lower index;
  3. recompute the candidates' distances exactly as sum((x - y)^2) on the *uncentred* input, then
     sort by (distance, index) and keep k.
Step 3 makes the distances independent of GEMM precision (TF32 on CUDA, `set_float32_matmul_precision`)
as long as the true k nearest are among the c approximate ones. Rows whose k-th distance ties with
the last candidate (a tie group that may continue beyond the candidates, e.g. many duplicates) are
recomputed exactly over all M references, so ties always go to the lower index (eager mode only:
while torch.compile traces, this data-dependent fallback is skipped).

The same `refine_and_select` finishes the faiss backend, so both normalise to one contract.
"""
from __future__ import annotations

import torch

# Elements (not bytes) of one temporary block: 2**23 float32 = 32 MiB.
BLOCK_ELEMS = 1 << 23


@torch.compiler.assume_constant_result
def _fp32_gemm_may_be_reduced(device_type: str) -> bool:
    """Whether float32 GEMMs may run below full float32 precision (TF32 / bf16 passes).

    Reads torch's global precision flags; any doubt (e.g. torch refusing to report a mix of its
    legacy and new precision APIs) counts as reduced. Constant under torch.compile.
    """
    try:
        if torch.get_float32_matmul_precision() != "highest":
            return True
        return device_type == "cuda" and bool(torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:
        return True


def num_candidates(k: int, available: int, wide: bool = True) -> int:
    """Candidates selected before the exact re-ranking, at most `available`.

    wide (approximate distances from a reduced-precision GEMM, or faiss): 2k, at least k + 8.
    Otherwise the Gram form on centred data is accurate to ~1e-6 relative and k + max(4, k/4)
    suffices (a swap at the boundary could only move LID at that level).
    """
    margin = max(k, 8) if wide else max(4, k // 4)
    return min(available, k + margin)


def select_lowest(d: torch.Tensor, c: int) -> torch.Tensor:
    """Column indices of the c smallest entries of each row of d (R, M), ties to the lower index.

    Unordered within a row. Every value below the c-th smallest is taken; among the entries equal to
    the c-th smallest, the lowest column indices fill the remaining places.
    """
    m = d.shape[-1]
    t = torch.topk(d, c, dim=-1, largest=False, sorted=True).values[..., c - 1 : c]
    cols = torch.arange(m, device=d.device)
    key = torch.where(d == t, cols, m).masked_fill_(d < t, -1)  # -1: take; index: tie; m: skip
    return torch.topk(key, c, dim=-1, largest=False, sorted=False).indices


def _exact_sqdist(xr: torch.Tensor, y: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """sum((xr[r] - y[cand[r, j]])^2) for xr (R, D), y (M, D), cand (R, c) -> (R, c), blockwise.

    Direct differences (no cancellation), summed with torch's cascade summation, whose error grows
    like log(D) ulps (a blocked dot product / einsum, growing like sqrt(D) ulps, made float32 LID of
    nearly equidistant D = 16384 neighbourhoods 1e-3 off per point; this gives ~3e-5, and ~1e-6 on
    a layer's mean). `sum(dtype=float64)` would halve that error at 1.6x the time (it copies).
    """
    r, c = cand.shape
    d = xr.shape[1]
    out = torch.empty(r, c, dtype=xr.dtype, device=xr.device)
    step = max(1, BLOCK_ELEMS // max(1, c * d))
    for s in range(0, r, step):
        e = min(r, s + step)
        diff = y[cand[s:e]]  # (rows, c, D) gathered candidates, a fresh tensor
        diff.sub_(xr[s:e, None, :]).square_()
        out[s:e] = diff.sum(dim=-1)
    return out


def _sort_by_dist_then_index(dist: torch.Tensor, idx: torch.Tensor):
    """Sort each row of (dist, idx) ascending by distance, equal distances by index."""
    idx_sorted, order = torch.sort(idx, dim=-1)
    dist = torch.gather(dist, -1, order)
    dist, order = torch.sort(dist, dim=-1, stable=True)
    return dist, torch.gather(idx_sorted, -1, order)


def _exact_rows(xr: torch.Tensor, y: torch.Tensor, k: int, self_idx: torch.Tensor | None):
    """Exact k-NN of a few query rows xr (R, D) over all of y (M, D), distances as sum((x-y)^2)
    computed like `_exact_sqdist`."""
    m, d = y.shape
    cols = max(1, BLOCK_ELEMS // max(1, d))
    dists = []
    for i in range(xr.shape[0]):
        row = torch.cat(
            [(y[s : s + cols] - xr[i]).square_().sum(dim=-1) for s in range(0, m, cols)]
        )
        if self_idx is not None:
            row[self_idx[i]] = float("inf")
        dists.append(row)
    dist = torch.stack(dists)  # (R, M)
    sel = select_lowest(dist, k)
    return _sort_by_dist_then_index(torch.gather(dist, -1, sel), sel)


def refine_and_select(xr, y, cand, k, row_ids=None):
    """Exact re-ranking of candidate neighbours, shared by the torch and faiss backends.

    Args:
        xr: (R, D) query rows (uncentred input, compute dtype).
        y: (M, D) reference set.
        cand: (R, c) int64 candidate indices into y, distinct within a row, c >= k (may contain the
            query's own index when row_ids is given; it is then excluded).
        k: neighbours to return.
        row_ids: (R,) int64 own index of each query row in y (exclude_self), or None.
    Returns:
        sqdist (R, k) and idx (R, k) int64, ascending by (distance, index).
    """
    m = y.shape[0]
    dist = _exact_sqdist(xr, y, cand)
    if row_ids is not None:
        dist = torch.where(cand == row_ids[:, None], torch.full_like(dist, float("inf")), dist)
    dist, idx = _sort_by_dist_then_index(dist, cand)
    available = m - (0 if row_ids is None else 1)
    # Candidates actually usable (own index excluded): the last finite one bounds what we saw.
    finite = torch.isfinite(dist)
    last_seen = torch.where(finite, dist, torch.full_like(dist, -float("inf"))).amax(dim=-1)
    n_seen = finite.sum(dim=-1)
    dist, idx = dist[:, :k].contiguous(), idx[:, :k].contiguous()
    if not torch.compiler.is_compiling():
        # The k-th distance equals the largest candidate seen: the tie group may continue among
        # points that were not candidates, whose indices may be lower. Redo those rows exactly.
        suspect = (dist[:, k - 1] >= last_seen) & (n_seen < available)
        if bool(suspect.any()):
            rows = suspect.nonzero().flatten()
            ids = None if row_ids is None else row_ids[rows]
            d2, i2 = _exact_rows(xr[rows], y, k, ids)
            dist[rows] = d2
            idx[rows] = i2
    return dist, idx


def knn(x: torch.Tensor, y: torch.Tensor, k: int, exclude_self: bool):
    """Batched exact k-NN.

    Args:
        x: (B, N, D) queries, float32/float64, contiguous, finite (validated by the caller).
        y: (B, M, D) references (the same tensor as x when searching a set against itself).
        k: neighbours per query, validated by the caller (the rule is in docs/ops_api.md).
        exclude_self: drop index i from query i's neighbours (needs N == M).
    Returns:
        sqdist (B, N, k) in x.dtype and idx (B, N, k) int64.
    """
    b_size, n, _ = x.shape
    m = y.shape[1]
    available = m - 1 if exclude_self else m
    c = num_candidates(k, available, wide=x.dtype == torch.float32 and _fp32_gemm_may_be_reduced(x.device.type))
    out_d = x.new_empty(b_size, n, k)
    out_i = torch.empty(b_size, n, k, dtype=torch.int64, device=x.device)
    rows_per_block = max(1, min(n, BLOCK_ELEMS // max(1, 2 * m)))  # d block + int64 tie keys
    for b in range(b_size):
        xb, yb = x[b], y[b]
        mu = yb.mean(dim=0, keepdim=True)
        yc = yb - mu
        xc = yc if (x is y) else xb - mu
        yy = (yc * yc).sum(dim=-1)
        xx = yy if (x is y) else (xc * xc).sum(dim=-1)
        for s in range(0, n, rows_per_block):
            e = min(n, s + rows_per_block)
            gram = torch.matmul(xc[s:e], yc.t())
            d = (xx[s:e, None] + yy[None, :] - 2.0 * gram).clamp_min(0.0)
            row_ids = None
            if exclude_self:
                row_ids = torch.arange(s, e, device=x.device)
                cols = torch.arange(m, device=x.device)
                d = torch.where(cols[None, :] == row_ids[:, None], torch.full_like(d, float("inf")), d)
            cand = select_lowest(d, c)
            dist, idx = refine_and_select(xb[s:e], yb, cand, k, row_ids)
            out_d[b, s:e] = dist
            out_i[b, s:e] = idx
    return out_d, out_i
