"""The compiled kernels: thin calls into `torch.ops.naslid` (schemas in csrc/ops.cpp).

Inputs arrive validated, contiguous and float32/float64 (see naslid_ext.api).
"""
from __future__ import annotations

import torch

from naslid_ext import _ops


def knn(x: torch.Tensor, y: torch.Tensor, k: int, exclude_self: bool):
    """x (B, N, D), y (B, M, D) -> sqdist (B, N, k) x.dtype, idx (B, N, k) int64."""
    return torch.ops.naslid.knn(x, y, k, exclude_self)


def lid_mle(sqdist: torch.Tensor, estimator: str) -> torch.Tensor:
    """sqdist (..., k) sorted ascending -> LID (...)."""
    return torch.ops.naslid.lid_mle(sqdist, estimator)


def knn_lid(x: torch.Tensor, k: int, estimator: str) -> torch.Tensor:
    """x (B, N, D) -> per-point LID (B, N) over each set's k nearest other points."""
    return torch.ops.naslid.knn_lid(x, k, estimator)


def lid_profile(features: list[torch.Tensor], k: int, estimator: str) -> torch.Tensor:
    """L layers of (N, D_l) -> per-layer, per-point LID (L, N)."""
    return torch.ops.naslid.lid_profile(features, k, estimator)


# ----- the same with the squared row norms (CPU): the public functions' finiteness check --------
def fused_check(backend: str, device: torch.device) -> bool:
    """True when the public functions can take their default finiteness check from the row norms
    the kernels compute (the `_*_norms` ops) instead of a separate pass: backend "auto"/"ext", a
    device with those kernels (CPU), and not while torch.compile traces (the check is skipped then)."""
    return (backend in ("auto", "ext") and not torch.compiler.is_compiling()
            and _ops.has_kernel("_knn_norms", device.type))


def knn_norms(x: torch.Tensor, y: torch.Tensor, k: int, exclude_self: bool):
    """knn plus the squared row norms of x (B, N) and y (B, M)."""
    return torch.ops.naslid._knn_norms(x, y, k, exclude_self)


def knn_lid_norms(x: torch.Tensor, k: int, estimator: str):
    """knn_lid plus the squared row norms (B, N); NaN LID where the k-th distance overflowed."""
    return torch.ops.naslid._knn_lid_norms(x, k, estimator)


def lid_profile_norms(features: list[torch.Tensor], k: int, estimator: str):
    """lid_profile plus the squared row norms (L, N); NaN LID where the k-th distance overflowed."""
    return torch.ops.naslid._lid_profile_norms(features, k, estimator)


def fused_mle_check(device: torch.device) -> bool:
    """True when `lid_mle`'s default input check can come from the kernel's own pass
    (`_lid_mle_checked`: a kernel for the device, and not while torch.compile traces)."""
    return not torch.compiler.is_compiling() and _ops.has_kernel("_lid_mle_checked", device.type)


def lid_mle_checked(sqdist: torch.Tensor, estimator: str):
    """lid_mle plus (3,) int64 counts of rows with a NaN/Inf entry, a negative first entry, and
    not sorted ascending."""
    return torch.ops.naslid._lid_mle_checked(sqdist, estimator)
