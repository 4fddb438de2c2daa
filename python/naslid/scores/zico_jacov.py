"""Two gradient-based training-free scores of a freshly initialised network: ZiCo and jacov.

``zico``   Li et al., ICLR 2023 ("ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
           Gradients"). The labelled batch is cut into ``splits`` (>= 2) equal parts; each part's
           cross-entropy (mean over its samples) is backpropagated through the network in train
           mode, and the gradient g_s of every conv / linear ``weight`` is kept. Per layer,
           with μ = mean_s |g_s| and σ = std_s g_s (population std, elementwise over the parts),
           t = Σ_{σ_i > 0} μ_i / σ_i, and the score is Σ_{layers with t > 0} ln t. Layers whose
           weight gets no gradient (never reaches the loss) add nothing. Higher = better.
``jacov``  Mellor et al. 2020 (NASWOT's first version, "jacob_cov"). J (N, D): the gradient of
           the sum of the logits with respect to each input image (train mode), one row per image;
           R = corrcoef(J) (N, N); with the eigenvalues v of R and k = 1e-5, the score is
           −Σ (ln(v + k) + 1 / (v + k)) (higher = better: R close to the identity, the images'
           Jacobians decorrelated). A row of J that is constant (zero Jacobian: a network whose
           output does not depend on its input) makes R undefined: ``-inf``, never NaN.

Both work in float64 where the sums are taken; the networks given are not modified (deep copies).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _check_xy(fn: str, x, y, splits: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"{fn}: x must be a floating (N, C_in, H, W) tensor, got "
                         f"{type(x).__name__} {getattr(x, 'shape', '')}")
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]):
        raise ValueError(f"{fn}: y must be an int tensor (N,) = ({x.shape[0]},), got "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if splits is not None and (splits < 2 or x.shape[0] < splits):
        raise ValueError(f"{fn}: splits must be >= 2 and <= N = {x.shape[0]}, got {splits}")
    if x.shape[0] < 2:
        raise ValueError(f"{fn}: needs N >= 2 images, got {tuple(x.shape)}")


def zico_from_grads(grads: list[dict[str, torch.Tensor]]) -> float:
    """ZiCo of per-part weight gradients: ``grads[s][layer]`` the gradient of part s (same keys and
    shapes in every part). See the module docstring."""
    if len(grads) < 2:
        raise ValueError(f"zico: needs the gradients of >= 2 parts, got {len(grads)}")
    score = 0.0
    for name in grads[0]:
        g = torch.stack([gs[name].reshape(-1).to(torch.float64) for gs in grads])  # (S, P)
        sd = g.std(dim=0, unbiased=False)
        mu = g.abs().mean(dim=0)
        nz = sd > 0
        t = float((mu[nz] / sd[nz]).sum())
        if t > 0:
            score += math.log(t)
    return score


def zico(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, splits: int = 2) -> float:
    """ZiCo of ``net`` on the labelled batch ``x`` (N, C_in, H, W), ``y`` (N,) cut into ``splits``
    equal parts (the last ``N mod splits`` images unused)."""
    _check_xy("zico", x, y, splits)
    work = copy.deepcopy(net).train()
    layers = {n: m for n, m in work.named_modules() if isinstance(m, _WEIGHT_LAYERS)}
    part = x.shape[0] // splits
    grads: list[dict[str, torch.Tensor]] = []
    for s in range(splits):
        work.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = F.cross_entropy(work(x[s * part:(s + 1) * part]), y[s * part:(s + 1) * part])
            loss.backward()
        grads.append({n: m.weight.grad.detach().clone() for n, m in layers.items()
                      if m.weight.grad is not None})
    common = set.intersection(*(set(g) for g in grads))
    return zico_from_grads([{n: g[n] for n in g if n in common} for g in grads])


def jacov_from_jacobian(jac: torch.Tensor) -> float:
    """jacov of input Jacobians ``jac`` (N, D); ``-inf`` when a row is constant."""
    j = jac.reshape(jac.shape[0], -1).detach().to(torch.float64).cpu().numpy()
    if np.any(j.std(axis=1) == 0) or not np.all(np.isfinite(j)):
        return float("-inf")
    corr = np.corrcoef(j)
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    with np.errstate(invalid="ignore", divide="ignore"):
        s = -float(np.sum(np.log(v + k) + 1.0 / (v + k)))
    return s if math.isfinite(s) else float("-inf")


def jacov(net: nn.Module, x: torch.Tensor) -> float:
    """jacov of ``net`` on images ``x`` (N >= 2, C_in, H, W): the Jacobian of the summed logits
    with respect to each image, in train mode (see the module docstring)."""
    _check_xy("jacov", x, None)
    work = copy.deepcopy(net).train()
    xx = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = work(xx)
        (g,) = torch.autograd.grad(out.sum(), xx, allow_unused=True)
    if g is None:
        return float("-inf")
    return jacov_from_jacobian(g)


__all__ = ["zico", "zico_from_grads", "jacov", "jacov_from_jacobian"]
