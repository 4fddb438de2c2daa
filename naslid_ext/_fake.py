"""Fake (meta) implementations of the `naslid` ops, so torch.compile(fullgraph=True) and
torch.export trace through them. Shapes and dtypes only; they mirror csrc/ops.cpp:

  knn(x (B,N,D), y (B,M,D), k, exclude_self) -> (sqdist (B,N,k) x.dtype, idx (B,N,k) int64)
  lid_mle(sqdist (...,k), estimator)          -> (...) sqdist.dtype
  knn_lid(x (B,N,D), k, estimator)            -> (B,N) x.dtype
  lid_profile(features L x (N,D_l), k, est.)  -> (L,N) features[0].dtype
  _knn_norms / _knn_lid_norms / _lid_profile_norms: the same plus squared row norms (B,N) [and
  (B,M)] / (B,N) / (L,N)
  _lid_mle_checked(sqdist, estimator)         -> (lid_mle's (...), counts (3,) int64)
"""
from __future__ import annotations

import torch

from naslid_ext import _ops


def _register() -> None:
    @torch.library.register_fake("naslid::knn")
    def _knn_fake(x, y, k, exclude_self):
        torch._check(x.dim() == 3 and y.dim() == 3, lambda: "naslid::knn: x and y must be 3-D (B, N, D)")
        torch._check(x.shape[0] == y.shape[0], lambda: "naslid::knn: batch sizes of x and y differ")
        torch._check(x.shape[2] == y.shape[2], lambda: "naslid::knn: feature sizes of x and y differ")
        torch._check(k >= 1, lambda: "naslid::knn: k must be >= 1")
        b, n = x.shape[0], x.shape[1]
        return x.new_empty(b, n, k), x.new_empty(b, n, k, dtype=torch.int64)

    @torch.library.register_fake("naslid::lid_mle")
    def _lid_mle_fake(sqdist, estimator):
        torch._check(sqdist.dim() >= 1, lambda: "naslid::lid_mle: sqdist must be (..., k)")
        return sqdist.new_empty(sqdist.shape[:-1])

    @torch.library.register_fake("naslid::knn_lid")
    def _knn_lid_fake(x, k, estimator):
        torch._check(x.dim() == 3, lambda: "naslid::knn_lid: x must be 3-D (B, N, D)")
        return x.new_empty(x.shape[0], x.shape[1])

    if hasattr(torch.ops.naslid, "_knn_norms"):  # an extension built before them lacks these
        @torch.library.register_fake("naslid::_knn_norms")
        def _knn_norms_fake(x, y, k, exclude_self):
            d, i = _knn_fake(x, y, k, exclude_self)
            return d, i, x.new_empty(x.shape[0], x.shape[1]), y.new_empty(y.shape[0], y.shape[1])

        @torch.library.register_fake("naslid::_knn_lid_norms")
        def _knn_lid_norms_fake(x, k, estimator):
            out = _knn_lid_fake(x, k, estimator)
            return out, x.new_empty(out.shape)

        @torch.library.register_fake("naslid::_lid_profile_norms")
        def _lid_profile_norms_fake(features, k, estimator):
            out = _lid_profile_fake(features, k, estimator)
            return out, features[0].new_empty(out.shape)

    if hasattr(torch.ops.naslid, "_lid_mle_checked"):
        @torch.library.register_fake("naslid::_lid_mle_checked")
        def _lid_mle_checked_fake(sqdist, estimator):
            return _lid_mle_fake(sqdist, estimator), sqdist.new_empty(3, dtype=torch.int64)

    @torch.library.register_fake("naslid::lid_profile")
    def _lid_profile_fake(features, k, estimator):
        torch._check(len(features) >= 1, lambda: "naslid::lid_profile: features is empty")
        f0 = features[0]
        return f0.new_empty(len(features), f0.shape[0])


if _ops.ext_loaded():
    _register()
