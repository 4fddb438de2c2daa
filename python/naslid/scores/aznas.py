"""AZ-NAS (Lee & Ham, CVPR 2024): four training-free terms of a network and their rank aggregation.

AZ-NAS scores a freshly initialised network on one batch of images (train mode, BatchNorm on the
batch statistics) from the feature maps F_0 .. F_{L-1} (each (B, C_l, H_l, W_l)) of its stages, in
forward order (``feature_layers``: NB201's stem and its 3N + 2 cells and reduction blocks; a
MobileNet's stem, blocks and head):

``expressivity``   Σ_l H(F_l): the entropy H = −Σ_i p_i log(p_i + 1e-8), p = λ / Σλ, of the
                   eigenvalues λ of the channel covariance of F_l seen as B·H·W samples of C_l
                   channels (mean removed, divided by B·H·W). Higher: the features use more
                   directions.
``progressivity``  min_l (H(F_{l+1}) − H(F_l)): the smallest step of the entropy from one stage to
                   the next (expressivity should grow with depth).
``trainability``   mean over consecutive pairs (F_{l-1}, F_l) of −σ − 1/σ + 2 (<= 0; 0 at σ = 1),
                   σ the largest singular value of M = G_inᵀ G_out / (B·H·W), G_out (B·H·W, C_l) a
                   random ±1 gradient at F_l and G_in the gradient it backpropagates to F_{l-1}
                   (space-to-depth'ed to F_l's grid when F_l is smaller). A Jacobian whose
                   spectral norm is 1 neither explodes nor vanishes. A pair whose gradient passes
                   unchanged (an identity stage) or not at all (no path) gives −inf, as in the
                   authors' code.
``complexity``     the network's multiply-adds (the space's ``count_macs``; filled in by the
                   caller, ``naslid.scores.by_name``).

Aggregation (``rank_aggregate``): over a population of n networks, each term's values are ranked
ascending (rank 1 = worst, average ranks for ties, a non-finite value ranks lowest), and a network's
AZ-NAS score is Σ_terms log(rank / n) (<= 0, higher = better). The score is therefore relative to
the population it was ranked in; ``naslid.scores.combination`` ranks a cell's terms against the run's
reference sample instead.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: the four terms, in the paper's order
AZNAS_TERMS: tuple[str, ...] = ("expressivity", "progressivity", "trainability", "complexity")


def feature_layers(net: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are a network's stage feature maps, in forward order: NB201's
    ``stem`` + ``cells``, a MobileNet's ``stem`` + ``blocks`` + ``head``, else ``lid_layers()``."""
    if hasattr(net, "stem") and hasattr(net, "cells"):
        return [net.stem, *net.cells]
    if hasattr(net, "stem") and hasattr(net, "blocks") and hasattr(net, "head"):
        return [net.stem, *net.blocks, net.head]
    if hasattr(net, "lid_layers"):
        return list(net.lid_layers())
    raise ValueError(f"feature_layers: {type(net).__name__} has no stem/cells, stem/blocks/head or "
                     "lid_layers(); AZ-NAS and the LID score need its stage modules")


def capture_features(net: nn.Module, x: torch.Tensor, layers: Sequence[nn.Module], *,
                     keep_graph: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run ``net(x)`` once and return (the outputs of ``layers`` in forward order, the logits).
    ``keep_graph``: keep the outputs in the autograd graph (for gradients between them); else
    detached. Each layer must run exactly once."""
    out: dict[int, torch.Tensor] = {}

    def hook(i):
        def fn(module, inputs, output):
            if i in out:
                raise RuntimeError(f"capture_features: layer {i} ({type(module).__name__}) ran twice")
            out[i] = output if keep_graph else output.detach()
        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(layers)]
    try:
        logits = net(x)
    finally:
        for h in handles:
            h.remove()
    missing = [i for i in range(len(layers)) if i not in out]
    if missing:
        raise RuntimeError(f"capture_features: layers {missing} did not run in the forward")
    return [out[i] for i in range(len(layers))], logits


def feature_entropy(feat: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of ``feat`` (B, C, H, W)
    (or (B, C)), in float64; ``-inf`` when the covariance is zero (a constant feature map)."""
    f = feat.detach().to(torch.float64)
    f = f.reshape(f.shape[0], f.shape[1], -1).permute(0, 2, 1).reshape(-1, f.shape[1])  # (BHW, C)
    f = f - f.mean(dim=0, keepdim=True)
    sigma = f.T @ f / f.shape[0]
    lam = torch.linalg.eigvalsh(sigma).clamp_min(0.0)
    total = float(lam.sum())
    if not total > 0 or not math.isfinite(total):
        return float("-inf")
    p = lam / total
    return float(-(p * torch.log(p + 1e-8)).sum())


def jacobian_sigma(f_in: torch.Tensor, f_out: torch.Tensor, g_out: torch.Tensor) -> float | None:
    """σ_max of G_inᵀ G_out / (B·H·W) (see the module docstring) for the random gradient ``g_out``
    (shaped like ``f_out``); None when the gradient passes unchanged or does not reach ``f_in``."""
    (g_in,) = torch.autograd.grad(f_out, f_in, grad_outputs=g_out, retain_graph=True,
                                  allow_unused=True)
    if g_in is None or not bool(g_in.any()):
        return None
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return None
    if g_in.dim() == 4 and g_in.shape[2:] != g_out.shape[2:]:
        g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
    go = g_out.to(torch.float64)
    gi = g_in.to(torch.float64)
    if go.dim() == 4:
        go = go.permute(0, 2, 3, 1).reshape(-1, go.shape[1])
        gi = gi.permute(0, 2, 3, 1).reshape(-1, gi.shape[1])
    mat = gi.T @ go / go.shape[0]
    return float(torch.linalg.matrix_norm(mat, ord=2))


def aznas_terms(net: nn.Module, x: torch.Tensor, *, seed: int = 0,
                layers: Sequence[nn.Module] | None = None) -> dict[str, float]:
    """AZ-NAS's expressivity, progressivity and trainability of ``net`` on images ``x``
    (B, C_in, H, W) (``complexity`` is the caller's: it is the space's MAC count). ``net`` runs in
    train mode on a float32 copy of ``x``; its weights are not changed (no optimiser step; the BN
    running statistics of a fresh network are updated by the forward as in any train-mode pass,
    so pass a copy if they matter). ``seed`` draws the random ±1 gradients. Non-finite terms are
    ``-inf``, never NaN."""
    layers = list(layers) if layers is not None else feature_layers(net)
    if len(layers) < 2:
        raise ValueError(f"aznas_terms: needs at least 2 feature layers, got {len(layers)}")
    net.train()
    with torch.enable_grad():
        feats, _ = capture_features(net, x, layers, keep_graph=True)
        ent = np.array([feature_entropy(f) for f in feats])
        gen = torch.Generator(device=x.device).manual_seed(seed)
        trains = []
        for i in reversed(range(1, len(feats))):
            f_out, f_in = feats[i], feats[i - 1]
            g_out = (torch.randint(0, 2, f_out.shape, generator=gen, device=x.device)
                     .to(f_out.dtype) * 2 - 1)
            s = jacobian_sigma(f_in, f_out, g_out) if f_out.requires_grad else None
            trains.append(float("-inf") if s is None or not s > 0 else -s - 1.0 / s + 2.0)
    with np.errstate(invalid="ignore"):
        steps = ent[1:] - ent[:-1]
    expressivity = float(ent.sum()) if np.all(np.isfinite(ent)) else float("-inf")
    progressivity = float(steps.min()) if np.all(np.isfinite(steps)) else float("-inf")
    trainability = float(np.mean(trains)) if np.all(np.isfinite(trains)) else float("-inf")
    return {"expressivity": expressivity, "progressivity": progressivity,
            "trainability": trainability}


def ascending_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values`` ascending (average ranks for ties); NaN and −inf rank lowest (tied
    among themselves), +inf highest."""
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf, v)
    return rankdata(v, method="average")


def rank_aggregate(terms: Mapping[str, Sequence[float]]) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation: Σ_terms log(rank / n) over a population of n networks
    (``terms``: term name -> n values, higher = better for every term). Returns (n,) float64,
    <= 0, higher = better."""
    if not terms:
        raise ValueError("rank_aggregate: no terms given")
    lengths = {k: len(v) for k, v in terms.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"rank_aggregate: every term needs the same number (>= 1) of values, got "
                         f"{lengths}")
    n = next(iter(lengths.values()))
    return sum(np.log(ascending_ranks(v) / n) for v in terms.values())


__all__ = ["AZNAS_TERMS", "feature_layers", "capture_features", "feature_entropy",
           "jacobian_sigma", "aznas_terms", "ascending_ranks", "rank_aggregate"]
