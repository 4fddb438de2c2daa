"""k-NN through the faiss package, normalised to the naslid_ext contract (docs/ops_api.md).

faiss finds candidates: `faiss.knn` on CPU numpy float32 arrays, `faiss.knn_gpu` with a
`StandardGpuResources` on CUDA tensors (via `faiss.contrib.torch_utils`, ordered on torch's current
stream). faiss works in float32, does not exclude the query itself and does not promise any order
among ties, so its candidates (2k, plus one for the query itself) are re-ranked exactly by the torch
backend's `refine_and_select`: squared distances recomputed as sum((x - y)^2) in the input's dtype
(float64 stays float64), own index dropped by index, order by (distance, index), int64 indices.

faiss is imported lazily: a missing faiss only matters when backend="faiss" is requested.
"""
from __future__ import annotations

import numpy as np
import torch

from naslid_ext.backends.torch_backend import num_candidates, refine_and_select

_GPU_RESOURCES: dict = {}
FAISS_GPU_MAX_K = 2048  # faiss' GPU brute-force k-selection limit


def import_faiss(api: str):
    """Import faiss or raise RuntimeError naming `api` with an install hint."""
    try:
        import faiss  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"naslid_ext.{api}: backend='faiss' needs the faiss package, which cannot be imported "
            f"({exc}). Install it with `pip install faiss-gpu` (CUDA) or `pip install faiss-cpu`, or "
            "use backend='ext' / 'torch' / 'auto'."
        ) from exc
    return faiss


def _gpu_resources(faiss, device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _GPU_RESOURCES:
        _GPU_RESOURCES[index] = faiss.StandardGpuResources()
    return _GPU_RESOURCES[index], index


def _candidates(faiss, api: str, xq: torch.Tensor, xb: torch.Tensor, kq: int) -> torch.Tensor:
    """faiss' kq nearest of each row of xq (N, D) in xb (M, D) as an int64 tensor on xq's device."""
    if xq.device.type == "cuda":
        if getattr(faiss, "get_num_gpus", lambda: 0)() < 1 or not hasattr(faiss, "StandardGpuResources"):
            raise RuntimeError(
                f"naslid_ext.{api}: backend='faiss' got CUDA tensors (device {xq.device}) but the "
                "installed faiss has no GPU support; install faiss-gpu or use backend='ext' / 'torch'."
            )
        if kq > FAISS_GPU_MAX_K:
            raise ValueError(
                f"naslid_ext.{api}: backend='faiss' on CUDA supports at most {FAISS_GPU_MAX_K} "
                f"neighbour candidates, but k needs {kq}; use backend='ext' or 'torch'"
            )
        import faiss.contrib.torch_utils  # noqa: F401, PLC0415  (torch tensors in faiss.knn_gpu)

        res, index = _gpu_resources(faiss, xq.device)
        _, ids = faiss.knn_gpu(res, xq.float().contiguous(), xb.float().contiguous(), kq, device=index)
        return ids.to(torch.int64)
    xq_np = np.ascontiguousarray(xq.detach().to(torch.float32).cpu().numpy())
    xb_np = np.ascontiguousarray(xb.detach().to(torch.float32).cpu().numpy())
    _, ids = faiss.knn(xq_np, xb_np, kq)
    return torch.from_numpy(np.ascontiguousarray(ids)).to(device=xq.device, dtype=torch.int64)


def knn(x: torch.Tensor, y: torch.Tensor, k: int, exclude_self: bool, api: str = "knn"):
    """Batched exact k-NN with faiss candidates; same arguments and results as torch_backend.knn.

    Args:
        x: (B, N, D) queries, float32/float64, contiguous, finite.
        y: (B, M, D) references.
        k: neighbours per query, validated by the caller (the rule is in docs/ops_api.md).
        exclude_self: drop index i from query i's neighbours (needs N == M).
    Returns:
        sqdist (B, N, k) in x.dtype and idx (B, N, k) int64.
    """
    faiss = import_faiss(api)
    b_size, n, _ = x.shape
    m = y.shape[1]
    available = m - 1 if exclude_self else m
    kq = min(m, num_candidates(k, available) + (1 if exclude_self else 0))
    out_d = x.new_empty(b_size, n, k)
    out_i = torch.empty(b_size, n, k, dtype=torch.int64, device=x.device)
    row_ids = torch.arange(n, device=x.device) if exclude_self else None
    for b in range(b_size):
        mu = y[b].mean(dim=0, keepdim=True)  # centring keeps faiss' float32 Gram form accurate
        cand = _candidates(faiss, api, x[b] - mu, y[b] - mu, kq)
        out_d[b], out_i[b] = refine_and_select(x[b], y[b], cand, k, row_ids)
    return out_d, out_i
