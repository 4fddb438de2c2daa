"""Loading the compiled extension `naslid_ext._C` and asking which kernels it registered.

The schemas of the `naslid` torch.library namespace live in `csrc/ops.cpp`; importing `_C` registers
them together with whatever CPU / CUDA kernels the build contains. This module never raises at
import: a missing or ABI-broken extension is recorded and reported (with the fix) only when a caller
actually asks for `backend="ext"`. Pure-torch backends keep working without it.
"""
from __future__ import annotations

import logging

import torch

OPS = ("knn", "lid_mle", "knn_lid", "lid_profile")

_C = None
_LOAD_ERROR: BaseException | None = None

try:  # pragma: no branch - depends on the build
    from naslid_ext import _C  # noqa: F811  (registers torch.ops.naslid.*)
except (ImportError, OSError) as exc:  # missing .so, undefined symbol (torch ABI mismatch), ...
    _C = None
    _LOAD_ERROR = exc
    logging.getLogger("naslid_ext").warning(
        "naslid_ext._C failed to import (%s: %s); backend='auto' runs in plain torch (slower). "
        "Rebuild with `pip install --no-build-isolation -e .` against torch %s.",
        type(exc).__name__, exc, torch.__version__,
    )


def ext_loaded() -> bool:
    """True when `naslid_ext._C` imported, i.e. the `naslid` op schemas are registered."""
    return _C is not None


def load_error() -> BaseException | None:
    """The exception raised while importing `naslid_ext._C`, or None when it loaded."""
    return _LOAD_ERROR


def built_with_cuda() -> bool:
    """True when the extension was compiled with its CUDA kernels (False when it did not load)."""
    return bool(_C is not None and _C.built_with_cuda())


def cpu_gemm_backend() -> str | None:
    """How the CPU kernels compute their Gram products: ``"blas"`` (the BLAS torch links, called
    directly: torch's matmul precision flags never apply) or ``"aten"`` (``at::mm`` under a guard
    that holds float32 matmul precision at "ieee"); None when the extension did not load."""
    return None if _C is None else str(_C.cpu_gemm_backend())


_DISPATCH_KEY = {"cpu": "CPU", "cuda": "CUDA"}


@torch.compiler.assume_constant_result
def has_kernel(op: str, device_type: str) -> bool:
    """True when `torch.ops.naslid.<op>` has a kernel for `device_type` ("cpu" | "cuda").

    Treated as a constant by torch.compile (the registered kernels do not change while a process
    runs), so backend selection traces without graph breaks.
    """
    hit = _HAS_KERNEL.get((op, device_type))
    if hit is not None:
        return hit
    key = _DISPATCH_KEY.get(device_type)
    hit = bool(_C is not None and key is not None
               and torch._C._dispatch_has_kernel_for_dispatch_key(f"naslid::{op}", key))
    _HAS_KERNEL[(op, device_type)] = hit
    return hit


#: has_kernel's answers, per (op, device type): the registered kernels never change in a process
_HAS_KERNEL: dict[tuple[str, str], bool] = {}


def require_kernel(api: str, op: str, device: torch.device) -> None:
    """Raise RuntimeError (naming `api`, the device and the fix) unless `op` runs on `device`.

    Called when the caller asked for `backend="ext"` explicitly; `backend="auto"` falls back to
    the torch backend instead.
    """
    if _C is None:
        raise RuntimeError(
            f"naslid_ext.{api}: backend='ext' needs the compiled extension naslid_ext._C, which failed "
            f"to import ({type(_LOAD_ERROR).__name__}: {_LOAD_ERROR}). Build it against the installed "
            f"torch {torch.__version__} with `pip install --no-build-isolation -e .` in the repository "
            "root, or use backend='torch' / 'auto'."
        )
    if has_kernel(op, device.type):
        return
    if device.type == "cuda" and not built_with_cuda():
        raise RuntimeError(
            f"naslid_ext.{api}: got a CUDA tensor (device {device}) but this build of naslid_ext._C "
            "has no CUDA kernels (built_with_cuda() is False). Rebuild with NASLID_CUDA=1 (needs nvcc "
            "and a CUDA build of torch), or use backend='torch' / 'faiss' / 'auto'."
        )
    raise RuntimeError(
        f"naslid_ext.{api}: torch.ops.naslid.{op} has no kernel for device type "
        f"'{device.type}' (device {device}) in this build of naslid_ext._C "
        f"(built_with_cuda()={built_with_cuda()}). Use backend='torch' or 'auto'."
    )
