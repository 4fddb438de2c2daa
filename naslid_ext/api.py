"""Public functions of naslid_ext: exact k-NN and MLE local intrinsic dimension (LID).

Conventions shared by every backend ("ext", "torch", "faiss"; "auto" picks "ext" when the compiled
extension has a kernel for the tensor's device, else "torch"):

* distances are *squared* Euclidean (faiss / pytorch3d convention), sorted ascending, ties to the
  lower index, indices int64;
* a point's neighbours exclude the point itself *by index* (a duplicate of the point is a neighbour
  at distance 0, it is not dropped in its place);
* float32 / float64 inputs compute and return in their dtype; float16 / bfloat16 are upcast and
  computed (and returned) in float32;
* LID of a point with a zero distance among its neighbours (a duplicate) is 0; with all k
  neighbours equidistant it is the finite cap 1/eps of the compute dtype (8388608 for float32);
  finite input never gives NaN or Inf;
* results carry no autograd history: input that requires grad (with grad mode on) is detached with
  a UserWarning, once per call site (detach it, or call under torch.no_grad(), to silence it);
* `knn` excludes a query from its own neighbours only when told: `exclude_self` defaults to True
  when `y` is omitted and to False when `y` is given (even `y is x`); never decided by identity;
* `knn` with finite input whose squared distances leave the dtype's range: neighbours are computed
  at an exact power-of-two scale (indices always right); distances that overflow the dtype raise
  ValueError (use float64 or rescale x), distances that underflow are returned rounded (possibly
  0); the LID ops rescale instead (LID is scale-invariant) and never raise for it;
* NaN/Inf input raises ValueError unless check_finite=False (then results are undefined); the
  check is skipped while torch.compile traces. On CPU with the ext backend it costs no pass of its
  own: it comes from the squared row norms the kernels compute (a row holding NaN/Inf has a
  non-finite norm; only such rows are re-checked exactly, see _validate.norms_verdict).
"""
from __future__ import annotations

from collections.abc import Sequence

import math
import warnings

import torch

from naslid_ext import backends as _backends
from naslid_ext._lid_math import ESTIMATORS, min_k
from naslid_ext._validate import (
    BACKENDS,
    REDUCTIONS,
    check_choice,
    check_finite as _check_finite,
    norms_verdict as _norms_verdict,
    norms_verdicts as _norms_verdicts,
    range_scale as _range_scale,
    check_k,
    check_tensor,
    compute_dtype,
)

__all__ = ["knn", "lid_mle", "lid", "lid_profile"]


def _warn_detached(api: str, name: str, t: torch.Tensor) -> None:
    """UserWarning when `t` requires grad in grad mode: the ops are not differentiable."""
    if t.requires_grad and torch.is_grad_enabled() and not torch.compiler.is_compiling():
        warnings.warn(
            f"naslid_ext.{api}: {name} requires grad, but the ops are not differentiable: the result "
            "carries no gradient (detach the input or call under torch.no_grad() to silence this)",
            UserWarning, stacklevel=3,
        )


def _times_pow2(t: torch.Tensor, e: int) -> torch.Tensor:
    """t * 2^e, exact (bar overflow / underflow of the result), in steps whose factor the dtype
    represents (2^e itself may not be: 2^200 is inf in float32)."""
    while e != 0:
        step = max(-100, min(100, e))
        t = t * math.ldexp(1.0, step)
        e -= step
    return t


def _prep(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Detached, contiguous, in `dtype` (default: t's compute dtype, half types -> float32).

    Each step only where needed: right after a large op has flushed the caches, every dispatcher
    call costs about 10 us, and lid_profile prepares one tensor per layer."""
    dtype = compute_dtype(t.dtype) if dtype is None else dtype
    if t.requires_grad:
        t = t.detach()
    if t.dtype != dtype:
        t = t.to(dtype)
    return t if t.is_contiguous() else t.contiguous()


def knn(
    x: torch.Tensor,
    k: int,
    y: torch.Tensor | None = None,
    *,
    exclude_self: bool | None = None,
    backend: str = "auto",
    check_finite: bool = True,
):
    """Exact k nearest neighbours by squared Euclidean distance.

    Args:
        x: queries, (N, D) or a batch (B, N, D).
        k: neighbours per query, 1 <= k < M candidates (M - 1 with exclude_self).
        y: references of the same rank, (M, D) or (B, M, D); default: x itself.
        exclude_self: drop reference index i from query i's neighbours (needs N == M). Default:
            True when y is None (x's neighbours among x), False when y is given, whatever y is
            (pass exclude_self=True for knn(x, k, x)); the same for every dtype and layout.
        backend: "auto" | "ext" | "torch" | "faiss".
        check_finite: raise ValueError on NaN/Inf input (default True), and on finite input whose
            k-NN squared distances overflow the compute dtype (computed at an exact power-of-two
            scale, so the indices are right; see the module docstring). False skips both checks
            (and the rescaling).
    Returns:
        (sqdist, idx): (N, k) / (B, N, k) squared distances, ascending, in x's compute dtype
        (float16/bfloat16 -> float32), and int64 indices into y's rows, ties to the lower index.
    Input requiring grad is detached with a UserWarning (the result has no gradient).
    """
    api = "knn"
    check_choice(api, "backend", backend, BACKENDS)
    self_query = y is None
    if exclude_self is None:
        exclude_self = self_query
    check_tensor(api, "x", x)
    if x.dim() not in (2, 3):
        raise ValueError(
            f"naslid_ext.knn: x must be (N, D) or (B, N, D), got {x.dim()}-D shape {tuple(x.shape)}"
        )
    if not self_query:
        check_tensor(api, "y", y)
        if y.dim() != x.dim():
            raise ValueError(
                f"naslid_ext.knn: y must have the rank of x ({x.dim()}-D shape {tuple(x.shape)}), "
                f"got {y.dim()}-D shape {tuple(y.shape)}"
            )
        if y.dtype != x.dtype:
            raise TypeError(
                f"naslid_ext.knn: x and y must have the same dtype, got x {x.dtype} {tuple(x.shape)} "
                f"and y {y.dtype} {tuple(y.shape)}"
            )
        if y.device != x.device:
            raise ValueError(
                f"naslid_ext.knn: x and y must be on the same device, got x on {x.device} and y on "
                f"{y.device}"
            )
        if x.dim() == 3 and y.shape[0] != x.shape[0]:
            raise ValueError(
                f"naslid_ext.knn: x and y must have the same batch size B, got x {tuple(x.shape)} and "
                f"y {tuple(y.shape)}"
            )
        if y.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"naslid_ext.knn: x and y must have the same number of features D, got x "
                f"{tuple(x.shape)} and y {tuple(y.shape)}"
            )
    if not isinstance(exclude_self, bool):
        raise TypeError(f"naslid_ext.knn: exclude_self must be a bool or None, got {exclude_self!r}")
    yy = x if self_query else y
    n, m = x.shape[-2], yy.shape[-2]
    if exclude_self and n != m:
        raise ValueError(
            f"naslid_ext.knn: exclude_self=True needs as many queries as references (N == M), got x "
            f"{tuple(x.shape)} and y {tuple(yy.shape)}"
        )
    check_k(api, k, m - 1 if exclude_self else m, None,
            lambda: f"M-1={m - 1} references other than the query itself (y of shape {tuple(yy.shape)})"
            if exclude_self else f"M={m} references (y of shape {tuple(yy.shape)})")
    _warn_detached(api, "x", x)
    if not self_query:
        _warn_detached(api, "y", y)
    fused = check_finite and _backends.ext_backend.fused_check(backend, x.device)
    amax = None
    if check_finite and not fused:
        amax = _check_finite(api, "x", x)
        if not self_query and amax is not None:
            amax = max(amax, _check_finite(api, "y", y))
    name = _backends.resolve(api, backend, "knn", x.device)
    batched = x.dim() == 3
    x3 = _prep(x) if batched else _prep(x).unsqueeze(0)
    if self_query:
        y3 = x3
    else:
        y3 = _prep(y) if batched else _prep(y).unsqueeze(0)
    sqdist = None
    if fused:  # the finiteness check from the row norms; the exact path when it cannot decide
        sqdist, idx, xn, yn = _backends.ext_backend.knn_norms(x3, y3, k, exclude_self)
        safe = _norms_verdict(api, "x", x, xn, x3.shape[-1])
        if not self_query:
            safe = _norms_verdict(api, "y", y, yn, y3.shape[-1]) and safe
        if not safe:  # finite input outside the safe range: rescaled below, as on the checked path
            sqdist, amax = None, _check_finite(api, "x", x)
            if not self_query and amax is not None:
                amax = max(amax, _check_finite(api, "y", y))
    if sqdist is None:
        scale = _range_scale(amax, x3.shape[-1], x3.dtype)
        if scale != 1.0:  # exact power of two: the neighbours of the scaled points are the same
            x3 = x3 * scale
            y3 = x3 if self_query else y3 * scale
        sqdist, idx = _backends.knn(name, x3, y3, k, exclude_self, api=api)
        if scale != 1.0:
            sqdist = _times_pow2(sqdist, -2 * (math.frexp(scale)[1] - 1))  # / scale^2, exactly
            if not bool(torch.isfinite(sqdist).all()):
                raise ValueError(
                    f"naslid_ext.knn: squared distances of x {tuple(x.shape)} (max |value| {amax:.3g}) "
                    f"overflow {sqdist.dtype} (max {torch.finfo(sqdist.dtype).max:.3g}); pass float64 "
                    "input or rescale x (the neighbour indices would be right, the distances are not "
                    "representable)"
                )
    if not batched:
        sqdist, idx = sqdist.squeeze(0), idx.squeeze(0)
    return sqdist, idx


def lid_mle(sqdist: torch.Tensor, *, estimator: str = "naslid", check_finite: bool = True) -> torch.Tensor:
    """Per-point maximum-likelihood LID from sorted k-NN squared distances.

    "naslid": -k / sum_{j=1..k} log(r_j / r_k)   (NAS-LID's released formula; k >= 1)
    "levina": (k-1) / sum_{j=1..k-1} log(r_k / r_j)  (Levina-Bickel, scikit-dimension's MLE; k >= 2)
    with r_j = sqrt(sqdist_j); on the same distances naslid = k/(k-1) * levina.

    Args:
        sqdist: (..., k) squared distances to the k nearest other points, sorted ascending along
            the last dim, >= 0 (e.g. the first output of `knn`).
        estimator: "naslid" | "levina".
        check_finite: raise ValueError on NaN/Inf, negative or unsorted input (default True).
    Returns:
        (...) LID in sqdist's compute dtype (float16/bfloat16 -> float32): 0 where a neighbour is at
        distance 0, the cap 1/eps where all k neighbours are equidistant.
    """
    api = "lid_mle"
    check_choice(api, "estimator", estimator, ESTIMATORS)
    check_tensor(api, "sqdist", sqdist)
    _warn_detached(api, "sqdist", sqdist)
    if sqdist.dim() < 1:
        raise ValueError("naslid_ext.lid_mle: sqdist must be (..., k), got a 0-D tensor")
    if sqdist.shape[-1] < min_k(estimator):
        raise ValueError(
            f"naslid_ext.lid_mle: estimator={estimator!r} needs k >= {min_k(estimator)} neighbours, got "
            f"sqdist of shape {tuple(sqdist.shape)} (k = last dim = {sqdist.shape[-1]})"
        )
    if check_finite and _backends.ext_backend.fused_mle_check(sqdist.device):
        # the contract is checked in the kernel's own pass; the checks below only name what failed
        out, bad = _backends.ext_backend.lid_mle_checked(_prep(sqdist), estimator)
        if not any(bad.tolist()):
            return out
    if check_finite:
        _check_finite(api, "sqdist", sqdist)
        if not torch.compiler.is_compiling() and bool(sqdist.amin() < 0):
            raise ValueError(
                f"naslid_ext.lid_mle: sqdist of shape {tuple(sqdist.shape)} has negative entries; "
                "squared distances are >= 0"
            )
        if not torch.compiler.is_compiling() and bool((sqdist[..., 1:] < sqdist[..., :-1]).any()):
            raise ValueError(
                f"naslid_ext.lid_mle: sqdist of shape {tuple(sqdist.shape)} is not sorted ascending "
                "along its last dim (k)"
            )
    return _backends.lid_mle(_prep(sqdist), estimator)


def _reduce(lid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-point LID (..., N) over the last dim: mean | harmonic | median | none."""
    if reduction == "none":
        return lid
    if reduction == "mean":
        return lid.mean(dim=-1)
    if reduction == "harmonic":
        # N / sum(1/lid): 0 as soon as one point has LID 0 (1/0 = inf), never NaN.
        return 1.0 / (1.0 / lid).mean(dim=-1)
    n = lid.shape[-1]  # median: mean of the two middle values for even N (numpy's convention)
    s = torch.sort(lid, dim=-1).values
    return 0.5 * (s[..., (n - 1) // 2] + s[..., n // 2])


def _point_lid(api: str, name: str, x3: torch.Tensor, k: int, estimator: str) -> torch.Tensor:
    """Per-point LID (B, N) of each set of x3 (B, N, D) with the concrete backend `name`."""
    if name == "ext":
        return _backends.ext_backend.knn_lid(x3, k, estimator)
    sqdist, _ = _backends.knn(name, x3, x3, k, True, api=api)
    return _backends.lid_mle(sqdist, estimator)


def lid(
    x: torch.Tensor,
    k: int = 20,
    *,
    estimator: str = "naslid",
    reduction: str = "mean",
    backend: str = "auto",
    batched: bool = False,
    check_finite: bool = True,
) -> torch.Tensor:
    """MLE local intrinsic dimension of a point set, or of each set of a batch.

    Args:
        x: batched=False (default): one set of N points, (N,) or (N, ...): every trailing dim is
            flattened into the features, so N images (N, C, H, W) are one set of N points of
            dimension C*H*W. batched=True: B sets, (B, N) or (B, N, ...), flattened to (B, N, D).
        k: neighbours per point, 2 <= k <= N - 2 (smaller than the N - 1 candidates).
        estimator: "naslid" | "levina" (see `lid_mle`).
        reduction: "mean" | "harmonic" (N / sum 1/LID) | "median" (mean of the two middle values
            for even N) | "none".
        backend: "auto" | "ext" | "torch" | "faiss".
        batched: whether dim 0 of x indexes independent sets (see x).
        check_finite: raise ValueError on NaN/Inf input (default True).
    Returns:
        batched=False: a 0-D tensor, or (N,) per-point LIDs for reduction="none".
        batched=True: (B,), or (B, N) for reduction="none".
        dtype: x's compute dtype (float16/bfloat16 -> float32).
    """
    api = "lid"
    check_choice(api, "backend", backend, BACKENDS)
    check_choice(api, "estimator", estimator, ESTIMATORS)
    check_choice(api, "reduction", reduction, REDUCTIONS)
    if not isinstance(batched, bool):
        raise TypeError(f"naslid_ext.lid: batched must be a bool, got {batched!r}")
    check_tensor(api, "x", x)
    _warn_detached(api, "x", x)
    if batched and x.dim() < 2:
        raise ValueError(
            f"naslid_ext.lid: batched=True needs x of shape (B, N, ...), got {x.dim()}-D shape "
            f"{tuple(x.shape)}"
        )
    if x.dim() < 1:
        raise ValueError("naslid_ext.lid: x must be (N, ...), got a 0-D tensor")
    n = x.shape[1] if batched else x.shape[0]
    if n < 2:
        raise ValueError(
            f"naslid_ext.lid: need N >= 2 points per set to have neighbours, got N={n} for x of "
            f"shape {tuple(x.shape)} (batched={batched})"
        )
    check_k(api, k, n - 1, estimator, lambda: f"N-1={n - 1} other points per set in x of shape {tuple(x.shape)}")
    fused = check_finite and _backends.ext_backend.fused_check(backend, x.device)
    amax = _check_finite(api, "x", x) if check_finite and not fused else None
    name = _backends.resolve(api, backend, "knn_lid", x.device)
    x3 = _prep(x).reshape(x.shape[0], n, -1) if batched else _prep(x).reshape(1, n, -1)
    per_point = None
    if fused:  # the finiteness check from the row norms; the exact path when it cannot decide
        per_point, sqnorm = _backends.ext_backend.knn_lid_norms(x3, k, estimator)
        if not _norms_verdict(api, "x", x, sqnorm, x3.shape[-1]):
            per_point, amax = None, _check_finite(api, "x", x)
    if per_point is None:
        scale = _range_scale(amax, x3.shape[-1], x3.dtype)
        if scale != 1.0:  # squared distances would overflow/underflow: LID is scale-invariant
            x3 = x3 * scale
        per_point = _point_lid(api, name, x3, k, estimator)  # (B, N)
    out = _reduce(per_point, reduction)
    return out if batched else out.squeeze(0)


def lid_profile(
    features: Sequence[torch.Tensor],
    k: int = 20,
    *,
    estimator: str = "naslid",
    reduction: str = "mean",
    backend: str = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    """LID of each of L layer outputs of the same N samples: the NAS-LID hot path, one call.

    Args:
        features: L >= 1 tensors, layer l of shape (N, ...) (flattened to (N, D_l)); N is shared, the
            trailing shapes may differ. All on one device; floating dtypes, promoted to a common
            compute dtype (float16/bfloat16 -> float32).
        k: neighbours per point, 2 <= k <= N - 2 (smaller than the N - 1 candidates).
        estimator: "naslid" | "levina" (see `lid_mle`).
        reduction: "mean" | "harmonic" | "median" | "none" over the N points of each layer.
        backend: "auto" | "ext" | "torch" | "faiss". With "ext" all layers and rows run in one
            parallel kernel call; the other backends loop over layers.
        check_finite: raise ValueError on NaN/Inf input (default True).
    Returns:
        (L,) one LID per layer, or (L, N) per-point LIDs for reduction="none".
    """
    api = "lid_profile"
    check_choice(api, "backend", backend, BACKENDS)
    check_choice(api, "estimator", estimator, ESTIMATORS)
    check_choice(api, "reduction", reduction, REDUCTIONS)
    if isinstance(features, torch.Tensor) or not isinstance(features, Sequence):
        raise TypeError(
            "naslid_ext.lid_profile: features must be a list or tuple of L tensors (N, ...), got "
            f"{type(features).__name__}" + (f" of shape {tuple(features.shape)}" if isinstance(features, torch.Tensor) else "")
        )
    if len(features) == 0:
        raise ValueError("naslid_ext.lid_profile: features is empty; need at least one layer output (N, ...)")
    f0 = features[0]
    for i, f in enumerate(features):
        check_tensor(api, f"features[{i}]", f)
        if f.requires_grad:
            _warn_detached(api, f"features[{i}]", f)
        if f.dim() < 1:
            raise ValueError(f"naslid_ext.lid_profile: features[{i}] must be (N, ...), got a 0-D tensor")
        if i == 0:
            n = f0.shape[0]
        elif f.shape[0] != n:
            raise ValueError(
                f"naslid_ext.lid_profile: every layer must hold the same N samples, got features[0] of "
                f"shape {tuple(f0.shape)} and features[{i}] of shape {tuple(f.shape)}"
            )
        if f.device != f0.device:
            raise ValueError(
                f"naslid_ext.lid_profile: all features must be on one device, got features[0] on "
                f"{f0.device} and features[{i}] on {f.device}"
            )
    if n < 2:
        raise ValueError(
            f"naslid_ext.lid_profile: need N >= 2 samples to have neighbours, got N={n} "
            f"(features[0] of shape {tuple(f0.shape)})"
        )
    check_k(api, k, n - 1, estimator, lambda: f"N-1={n - 1} other samples (features[0] of shape {tuple(f0.shape)})")
    fused = check_finite and _backends.ext_backend.fused_check(backend, f0.device)
    amax = [_check_finite(api, f"features[{i}]", f) if check_finite and not fused else None
            for i, f in enumerate(features)]
    dtype = f0.dtype
    for f in features[1:]:
        dtype = torch.promote_types(dtype, f.dtype)
    dtype = compute_dtype(dtype)
    flat = [_prep(f if f.dim() == 2 else f.reshape(n, -1), dtype) for f in features]
    if fused:  # the finiteness check from the row norms; the exact path when it cannot decide
        per_point, sqnorm = _backends.ext_backend.lid_profile_norms(flat, k, estimator)
        if _norms_verdicts(api, [f"features[{i}]" for i in range(len(features))], features, sqnorm,
                           [f.shape[-1] for f in flat]):
            return _reduce(per_point, reduction)
        amax = [_check_finite(api, f"features[{i}]", f) for i, f in enumerate(features)]
    for i, f in enumerate(flat):  # squared distances that would overflow/underflow: rescale (exact)
        scale = _range_scale(amax[i], f.shape[-1], dtype)
        if scale != 1.0:
            flat[i] = f * scale
    name = _backends.resolve(api, backend, "lid_profile", f0.device)
    if name == "ext":
        per_point = _backends.ext_backend.lid_profile(flat, k, estimator)  # (L, N)
    else:
        per_point = torch.stack(
            [_point_lid(api, name, f.unsqueeze(0), k, estimator)[0] for f in flat]
        )
    return _reduce(per_point, reduction)
