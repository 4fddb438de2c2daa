"""The compiled kernels: thin calls into `torch.ops.naslid` (schemas in csrc/ops.cpp).

Inputs arrive validated, contiguous and float32/float64 (see naslid_ext.api).
"""
from __future__ import annotations

import torch


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
