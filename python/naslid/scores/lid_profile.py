"""LID as a training-free score: the layer-wise LID profile of a freshly initialised network.

``lid_profile(net, x, k)``: one forward of the images ``x`` (N, C_in, H, W) in train mode
(BatchNorm on the batch statistics, as a fresh network's first pass), without gradients, with
``naslid.spaces.taps.FeatureTap(reduce="lid")`` on the network's ``lid_layers()`` (NB201: the
3N + 2 cells and reduction blocks): the MLE LID (NAS-LID's estimator, ``naslid_ext.lid``, k
nearest neighbours among the N samples) of every layer's output, (L,) float.

Scores read from the profile (``PROFILE_SCORES``; every one "higher = better" as written):

``last``             the last LID layer's value. Rationale for the direction: at initialisation a
                     network that keeps a high-dimensional representation of its input up to the
                     head has not collapsed it (a cell whose paths multiply into a few directions,
                     or a zero cell, gives a low LID) — the same reading as NASWOT's and AZ-NAS's
                     expressivity. This is *not* Ansuini et al.'s finding, which is about trained
                     networks (there a lower last-layer ID goes with higher accuracy).
``mean``             the mean over the layers.
``peak_minus_last``  max − last: NAS-LID's "rise then fall" shape of trained good cells.
``last_minus_first`` last − first: growth of LID through the network.

A layer whose outputs are all identical (e.g. the output of a zero cell) has LID 0; a non-finite
LID is mapped to ``-inf`` by the callers (``naslid.scores.by_name``), never NaN.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..spaces.taps import FeatureTap

PROFILE_SCORES: tuple[str, ...] = ("last", "mean", "peak_minus_last", "last_minus_first")


def lid_profile(net: nn.Module, x: torch.Tensor, k: int = 20, *, copy_net: bool = True
                ) -> torch.Tensor:
    """LID of each of ``net.lid_layers()``'s outputs on ``x`` (N > k + 1 images): (L,) float64.
    ``copy_net``: run a deep copy (the BN running statistics of ``net`` stay as they are)."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < k + 2:
        raise ValueError(f"lid_profile: x must be (N, ...) with N >= k + 2 = {k + 2} images, got "
                         f"{tuple(getattr(x, 'shape', ()))}")
    work = copy.deepcopy(net) if copy_net else net
    work.train()
    with torch.no_grad(), FeatureTap(work, reduce="lid", k=k) as tap:
        work(x)
        return tap.lid_vector().to(torch.float64)


def profile_score(profile: torch.Tensor, which: str) -> float:
    """The score ``which`` (one of ``PROFILE_SCORES``) of a LID profile (L,)."""
    p = profile.to(torch.float64)
    if which == "last":
        v = p[-1]
    elif which == "mean":
        v = p.mean()
    elif which == "peak_minus_last":
        v = p.max() - p[-1]
    elif which == "last_minus_first":
        v = p[-1] - p[0]
    else:
        raise ValueError(f"profile_score: which must be one of {list(PROFILE_SCORES)}, got {which!r}")
    return float(v)


__all__ = ["PROFILE_SCORES", "lid_profile", "profile_score"]
