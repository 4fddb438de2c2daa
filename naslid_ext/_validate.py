"""Argument checks shared by the public functions of `naslid_ext`.

Every error names the public function (`naslid_ext.<api>`), the offending argument and its sizes:
ValueError for bad values and shapes, TypeError for bad types and dtypes. Checks on tensor *values*
(NaN/Inf) are skipped while torch.compile traces (they would need a data-dependent branch).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from naslid_ext._lid_math import min_k

BACKENDS = ("auto", "ext", "torch", "faiss")
REDUCTIONS = ("mean", "harmonic", "median", "none")
_HALF = (torch.float16, torch.bfloat16)


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def check_choice(api: str, name: str, value, choices: Sequence[str]) -> str:
    """ValueError unless `value` is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"naslid_ext.{api}: {name}={value!r} is not supported; expected one of "
            + ", ".join(repr(c) for c in choices)
        )
    return value


def check_tensor(api: str, name: str, t) -> torch.Tensor:
    """TypeError unless `t` is a floating-point tensor; ValueError when it is empty."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"naslid_ext.{api}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(
            f"naslid_ext.{api}: {name} must be a floating-point tensor (float16, bfloat16, float32 or "
            f"float64), got dtype {t.dtype} with shape {_shape(t)}"
        )
    if t.numel() == 0:
        raise ValueError(f"naslid_ext.{api}: {name} is empty (shape {_shape(t)}); need at least one element")
    return t


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the ops compute and return in: float16/bfloat16 -> float32, else unchanged."""
    return torch.float32 if dtype in _HALF else dtype


def _all_finite(t: torch.Tensor) -> bool:
    """Exact test that every element of t is finite, in one cheap read-only pass.

    torch's min/max reductions propagate NaN, so min and max are both finite iff no element is NaN,
    +Inf or -Inf. `aminmax` computes both in one pass (about 2x faster than amax + amin, and ~10x
    faster than isfinite(t).all() on CPU).
    """
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))


def _nonfinite_error(api: str, name: str, t: torch.Tensor, n_bad: int) -> ValueError:
    return ValueError(
        f"naslid_ext.{api}: {name} of shape {_shape(t)} contains {n_bad} NaN/Inf value(s); pass "
        "check_finite=False to skip this check (results are then undefined for such input)"
    )


def check_finite(api: str, name: str, t: torch.Tensor) -> float | None:
    """ValueError when `t` holds NaN or +-Inf (skipped while torch.compile traces).

    Returns max |t| (from the same one-pass min/max read), or None while tracing."""
    if torch.compiler.is_compiling():
        return None
    lo, hi = torch.aminmax(t.detach())
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        raise _nonfinite_error(api, name, t, int((~torch.isfinite(t)).sum()))
    return max(abs(float(lo)), abs(float(hi)))


def norms_verdict(api: str, name: str, t: torch.Tensor, sqnorm: torch.Tensor, dim: int) -> bool:
    """The finiteness check from the squared row norms a kernel computed (no pass over `t`).

    t: the caller's tensor, whose rows of `dim` features (``t.reshape(-1, dim)``) the kernel saw in
    this order; sqnorm: their squared norms (any shape with that many elements), compute dtype.
    A NaN or Inf in a row makes its norm non-finite, so only rows with a non-finite norm are
    re-checked exactly: NaN/Inf among them raises check_finite's ValueError (with the count of the
    whole tensor: the other rows have none); otherwise the norm overflowed on finite input.

    Returns True when the input is finite and its scale safe: ``range_scale`` would return 1, so the
    kernel's results are those of the checked path. False (finite input whose norms overflow or
    lie outside that range): the caller takes the exact path (check_finite, range_scale, rerun)."""
    nmax = float(sqnorm.max())  # max propagates NaN, and norms are >= 0: finite iff all are
    if not math.isfinite(nmax):
        ok = torch.isfinite(sqnorm)
        rows = t.detach().reshape(-1, dim)[~ok.reshape(-1).to(t.device)]
        n_bad = int((~torch.isfinite(rows)).sum())
        if n_bad:
            raise _nonfinite_error(api, name, t, n_bad)
        return False
    return _safe_range(nmax, dim, sqnorm.dtype)


_FINFO: dict = {}


def _finfo(dtype: torch.dtype):
    """torch.finfo of the compute dtype, built once per dtype (lid_profile asks once per layer)."""
    info = _FINFO.get(dtype)
    if info is None:
        info = _FINFO[dtype] = torch.finfo(compute_dtype(dtype))
    return info


def _safe_range(nmax: float, dim: int, dtype: torch.dtype) -> bool:
    """max |x_i|^2 <= max norm <= dim * max |x_i|^2: bounds on range_scale's amax^2 that imply its 1."""
    info = _finfo(dtype)
    dim = max(int(dim), 1)
    return 4.0 * nmax * dim < info.max / 16 and nmax / dim > info.tiny * 2.0**30


def norms_verdicts(api: str, names: Sequence[str], ts: Sequence[torch.Tensor], sqnorm: torch.Tensor,
                   dims: Sequence[int]) -> bool:
    """``norms_verdict`` for L layers at once (sqnorm (L, N)): three small reductions when every
    norm is finite (the common case), else layer by layer (the first layer with NaN/Inf raises)."""
    nmax = sqnorm.amax(dim=1).tolist()  # amax propagates NaN, and norms are >= 0
    if all(math.isfinite(m) for m in nmax):
        return all(_safe_range(m, d, sqnorm.dtype) for m, d in zip(nmax, dims))
    return all([norms_verdict(api, n, t, sqnorm[i], d) for i, (n, t, d) in enumerate(zip(names, ts, dims))])


def range_scale(amax: float | None, dim: int, dtype: torch.dtype) -> float:
    """A power of two s such that squared distances between points of `dim` features bounded by
    `amax / s`... precisely: 1 when the squared distances of points with |x_i| <= amax in `dim`
    features fit the compute dtype with room to spare, else 2^-e bringing amax near 1.

    LID is scale-invariant and a power-of-two scaling is exact, so the LID ops multiply their input
    by this factor: finite input whose squared distances would overflow (|x| ~ 1e30 in float32) or
    underflow (|x| ~ 1e-30) gives the same LID as the same points at unit scale."""
    if amax is None or not amax > 0.0:
        return 1.0
    info = torch.finfo(compute_dtype(dtype))
    big = 4.0 * amax * amax * max(int(dim), 1)  # bound on any squared distance
    if big < info.max / 16 and amax * amax > info.tiny * 2.0**30:
        return 1.0
    e = math.frexp(amax)[1]  # amax = m * 2^e, 0.5 <= m < 1
    return math.ldexp(1.0, -e)


def check_int(api: str, name: str, value) -> int:
    """TypeError unless `value` is an integer (bool is rejected)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, torch.SymInt)):
        raise TypeError(f"naslid_ext.{api}: {name} must be an int, got {type(value).__name__} {value!r}")
    return value


def check_k(api: str, k, candidates: int, estimator: str | None, what) -> int:
    """ValueError unless min_k(estimator) <= k < candidates (k must be smaller than the number of
    neighbour candidates, so that at least one candidate is left out of every neighbourhood).

    `what` explains where the candidates come from, e.g. "M=100 reference points" or
    "N-1=9 other points of x of shape (10, 3)": a string, or a callable returning it (built only
    for the error message: the public functions run this check on every call).
    """
    k = check_int(api, "k", k)
    lo = 1 if estimator is None else min_k(estimator)
    if k < lo:
        why = "" if estimator is None else f" for estimator={estimator!r}"
        raise ValueError(f"naslid_ext.{api}: k={k} must be >= {lo}{why}")
    if k >= candidates:
        what = what() if callable(what) else what
        raise ValueError(
            f"naslid_ext.{api}: k={k} must be smaller than the number of neighbour candidates: "
            f"{what}; need {lo} <= k <= {candidates - 1}"
        )
    return k
