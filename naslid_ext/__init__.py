"""naslid_ext: exact, fast k-NN and MLE local intrinsic dimension (LID) ops for PyTorch.

Public API (shapes in each docstring; the conventions are stated in docs/ops_api.md):
  knn(x, k, y=None, *, exclude_self=None, backend="auto", check_finite=True) -> (sqdist, idx)
  lid_mle(sqdist, *, estimator="naslid") -> LID per point
  lid(x, k=20, *, estimator="naslid", reduction="mean", backend="auto", batched=False)
  lid_profile(features, k=20, *, estimator="naslid", reduction="mean", backend="auto") -> (L,)
  build_info() -> dict: versions, compiled kernels and CUDA archs, the CPU kernel in use and why
The compiled ops are registered as torch.ops.naslid.{knn, lid_mle, knn_lid, lid_profile}; when the
extension is missing, backend="auto" runs everything in plain torch.
"""
from naslid_ext import _fake  # noqa: F401  (fake implementations for torch.compile)
from naslid_ext._build_info import build_info
from naslid_ext._ops import built_with_cuda, ext_loaded, has_kernel, load_error
from naslid_ext._version import __version__
from naslid_ext.api import knn, lid, lid_mle, lid_profile

__all__ = [
    "knn",
    "lid_mle",
    "lid",
    "lid_profile",
    "built_with_cuda",
    "ext_loaded",
    "has_kernel",
    "load_error",
    "build_info",
    "__version__",
]
