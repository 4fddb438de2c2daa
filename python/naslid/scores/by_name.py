"""Every training-free score of an architecture, by name, on one freshly initialised network.

``FREE_SCORES`` (``naslid.choices``): ``params`` and ``flops`` (the space's counts), ``synflow`` and
``naswot`` (``naslid.scores.proxies``), ``aznas`` (``naslid.scores.aznas``: its four terms), ``zico`` and
``jacov`` (``naslid.scores.zico_jacov``), ``lid`` (``naslid.scores.lid_profile``: the last LID layer's value of
the fresh network). Higher = better for each.

``score_cells(names, space, archs, x=..., y=..., seed=...)`` builds each arch's stand-alone network
once under ``seed`` (``naslid.scores.proxies.fresh_subnet``) and computes every requested score on it:
{name: {arch string: value}}; ``aznas``'s value is the dict of its four terms (aggregate them over
a population with ``naslid.scores.aznas.rank_aggregate``, or against a reference sample with
``naslid.scores.combination``). Values that are not finite are ``-inf`` (unratable), never NaN.
Data: ``x`` (N, C_in, H, W) float images for every data-dependent score (N >= 2; ``lid`` needs
N >= ``lid_k`` + 2), ``y`` (N,) labels for ``zico`` (its two halves are its two batches).

Spaces: ``FREE_SCORE_SPACES`` says which spaces a score can rate; ``check_free_scores`` refuses the
others naming the score and the space.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import torch

from ..choices import FREE_SCORE_SPACES, FREE_SCORES
from .proxies import fresh_subnet, naswot, synflow, unique_archs
from .aznas import aznas_terms
from .zico_jacov import jacov, zico
from .lid_profile import lid_profile, profile_score
from ..spaces.base import SearchSpace

#: scores that need the images ``x``; ``zico`` needs the labels ``y`` too
DATA_SCORES: tuple[str, ...] = ("naswot", "aznas", "zico", "jacov", "lid")


def check_free_scores(names: Sequence[str], space_name: str, where: str = "free_scores") -> tuple[str, ...]:
    """``names`` as a tuple after checking each is a known score that can rate ``space_name``;
    ValueError naming ``where``, the score and the space otherwise."""
    out = []
    for n in names:
        if n not in FREE_SCORES:
            raise ValueError(f"{where}: unknown training-free score {n!r}; choose from {list(FREE_SCORES)}")
        ok = FREE_SCORE_SPACES.get(n)
        if ok is not None and space_name not in ok:
            raise ValueError(f"{where}: score {n!r} cannot rate space {space_name!r} (it supports {list(ok)})")
        out.append(n)
    return tuple(out)


def _finite(v: float) -> float:
    return float(v) if math.isfinite(v) else float("-inf")


def _check_data(names, x, y, lid_k: int) -> None:
    if any(n in DATA_SCORES for n in names):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] < 2 or not x.is_floating_point():
            raise ValueError(f"score_cells: scores {[n for n in names if n in DATA_SCORES]} need x, a float "
                             f"(N >= 2, C_in, H, W) tensor; got {tuple(getattr(x, 'shape', ())) or x!r}")
    if "lid" in names and x.shape[0] < lid_k + 2:
        raise ValueError(f"score_cells: lid with k = {lid_k} needs x of N >= {lid_k + 2} images, got {x.shape[0]}")
    if "zico" in names and (not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]):
        raise ValueError(f"score_cells: zico needs y, the (N,) = ({x.shape[0]},) labels of x; got "
                         f"{tuple(getattr(y, 'shape', ())) or y!r}")


def cell_scores(names: Sequence[str], space: SearchSpace, arch, *, x=None, y=None, seed: int = 0,
                lid_k: int = 20) -> dict:
    """Every score of ``names`` for one arch (mapping or arch string); see the module docstring."""
    if isinstance(arch, str):
        arch = space.arch_from_string(arch)
    net = fresh_subnet(space, arch, seed) if any(n not in ("params", "flops") for n in names) else None
    out: dict = {}
    for n in names:
        if n == "params":
            out[n] = float(space.count_params(arch))
        elif n == "flops":
            out[n] = float(space.count_macs(arch))
        elif n == "synflow":
            shape = (1, int(space.in_channels), int(space.input_size), int(space.input_size))
            out[n] = _finite(synflow(net, shape).score)
        elif n == "naswot":
            out[n] = _finite(naswot(net, x))
        elif n == "zico":
            out[n] = _finite(zico(net, x, y))
        elif n == "jacov":
            out[n] = _finite(jacov(net, x))
        elif n == "lid":
            out[n] = _finite(profile_score(lid_profile(net, x, lid_k), "last"))
        elif n == "aznas":
            import copy

            terms = aznas_terms(copy.deepcopy(net), x, seed=seed)
            terms["complexity"] = float(space.count_macs(arch))
            out[n] = terms
    return out


def score_cells(names: Sequence[str], space: SearchSpace, archs: Iterable, *, x=None, y=None,
                seed: int = 0, lid_k: int = 20, progress: bool = False) -> dict[str, dict]:
    """{name: {arch string: value}} for every arch of ``archs`` (duplicates once); every argument
    is checked before any network is built."""
    names = check_free_scores(list(names), space.name, "score_cells")
    if not names:
        raise ValueError("score_cells: names is empty; give at least one training-free score")
    _check_data(names, x, y, lid_k)
    items = unique_archs(space, archs, progress=progress, desc="free scores")
    out: dict[str, dict] = {n: {} for n in names}
    for key, arch in items:
        for n, v in cell_scores(names, space, arch, x=x, y=y, seed=seed, lid_k=lid_k).items():
            out[n][key] = v
    return out


__all__ = ["FREE_SCORES", "FREE_SCORE_SPACES", "DATA_SCORES", "check_free_scores", "cell_scores",
           "score_cells"]
