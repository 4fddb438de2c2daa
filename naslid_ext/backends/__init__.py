"""Backends computing the naslid_ext contract: "ext" (compiled kernels), "torch", "faiss".

`resolve` maps the user's `backend` argument to a concrete backend for one op and device:
"auto" takes the compiled kernel when the extension registered one for the device, else "torch";
an explicit "ext" without such a kernel raises RuntimeError saying what is missing.
`lid_mle` is the single entry point for the LID formula on the Python side: the compiled
`torch.ops.naslid.lid_mle` when it has a kernel for the device, else the Python mirror of
lid_math.h (naslid_ext._lid_math).
"""
from __future__ import annotations

import torch

from naslid_ext import _lid_math, _ops
from naslid_ext.backends import ext_backend, faiss_backend, torch_backend

__all__ = ["resolve", "lid_mle", "knn", "ext_backend", "faiss_backend", "torch_backend"]


def resolve(api: str, backend: str, op: str, device: torch.device) -> str:
    """Concrete backend ("ext" | "torch" | "faiss") for `op` on `device` (backend already validated)."""
    if backend == "auto":
        return "ext" if _ops.has_kernel(op, device.type) else "torch"
    if backend == "ext":
        _ops.require_kernel(api, op, device)
    return backend


def lid_mle(sqdist: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-point LID (...) from sorted squared distances (..., k): the one Python-side LID entry."""
    if _ops.has_kernel("lid_mle", sqdist.device.type):
        return ext_backend.lid_mle(sqdist, estimator)
    return _lid_math.lid_from_sorted_sqdist(sqdist, estimator)


def knn(name: str, x: torch.Tensor, y: torch.Tensor, k: int, exclude_self: bool, api: str = "knn"):
    """Run the concrete backend `name` on validated (B, N, D) / (B, M, D) input."""
    if name == "ext":
        return ext_backend.knn(x, y, k, exclude_self)
    if name == "faiss":
        return faiss_backend.knn(x, y, k, exclude_self, api=api)
    return torch_backend.knn(x, y, k, exclude_self)
