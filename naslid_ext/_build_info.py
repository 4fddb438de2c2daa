"""`naslid_ext.build_info()`: what this installation compiled and what it chose at run time."""
from __future__ import annotations

import os

import torch

from naslid_ext import _ops
from naslid_ext._version import __version__


def _token(text: str) -> str:
    """Decode setup.py's _macro_token ('v' + text with [^0-9A-Za-z.] made '_')."""
    return text[1:] if text.startswith("v") else text


def _archs(token: str) -> list[str]:
    """'8.0_9.0_PTX' -> ['8.0', '9.0+PTX'] (TORCH_CUDA_ARCH_LIST's ';' / ' ' / '+' became '_')."""
    out: list[str] = []
    for part in _token(token).split("_"):
        if not part:
            continue
        if part == "PTX" and out:
            out[-1] += "+PTX"
        else:
            out.append(part)
    return out


def build_info() -> dict:
    """What naslid_ext was built with and which CPU kernel it uses, as a JSON-ready dict.

    Keys:
      version        naslid_ext.__version__ (naslid_ext/_version.py, the one place it is written)
      ext_version    the version compiled into naslid_ext._C (differs from ``version``: stale build)
      torch          torch.__version__; ``torch_cuda``: torch.version.cuda (None: CPU-only torch)
      ext_loaded     whether naslid_ext._C imported; ``load_error``: why not (str) or None
      kernels        {"cpu": [ops], "cuda": [ops]}: the torch.ops.naslid ops with a kernel per device
      cuda_archs     the CUDA architectures the kernels were compiled for ([] without CUDA)
      cpu            {"capability": torch's CPU capability, "fma_kernels_supported": best FMA kernel
                     this CPU runs ("avx512" | "avx2" | "blas"), "fma_kernel_cap": best one allowed
                     (NASLID_CPU_SYRK or torch's capability), "gemm_backend": "blas" | "aten",
                     "mode": how the float32 strip kernel is chosen ("measured" | "forced" |
                     "capability"), "NASLID_CPU_SYRK": the variable's value or None, "threads":
                     torch.get_num_threads(), "choices": the decisions made so far in this process,
                     one dict per shape class (threads, par, n_class = ceil log2 N, d_class = ceil
                     log2 D capped at 10, the measured n and d, kernel, why ("measured" | "cached"), est_ms
                     per candidate)}
    Without the compiled extension, ``ext_loaded`` is False and the kernel fields are empty/None.
    """
    C = _ops._C
    ops = [op for op in _ops.OPS]
    info = {
        "version": __version__,
        "ext_version": _token(C.build_version()) if C is not None and hasattr(C, "build_version") else None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "ext_loaded": C is not None,
        "load_error": None if _ops.load_error() is None else f"{type(_ops.load_error()).__name__}: {_ops.load_error()}",
        "kernels": {dev: [op for op in ops if _ops.has_kernel(op, dev)] for dev in ("cpu", "cuda")},
        "cuda_archs": _archs(C.build_cuda_archs()) if C is not None and _ops.built_with_cuda() else [],
        "cpu": {
            "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "NASLID_CPU_SYRK": os.environ.get("NASLID_CPU_SYRK"),
        },
    }
    if C is not None:
        info["cpu"].update(
            fma_kernels_supported=str(C.cpu_sym_kernel_supported()),
            fma_kernel_cap=str(C.cpu_sym_kernel()),
            gemm_backend=str(C.cpu_gemm_backend()),
            mode=str(C.cpu_kernel_mode()),
            choices=[dict(c) for c in C.cpu_kernel_choices()],
        )
    return info
