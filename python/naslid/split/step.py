"""``split_step``: one NAS-LID (or GM-NAS, random, none) split of one (sub-)supernet.

Procedure (the method: docs/method.md, sections 3 and 4; options: docs/split.md), deterministic given ``generator`` and ``batches``:

1. Candidate decisions: those whose mask is all true (not yet split) with at least
   ``max(2, n_groups)`` candidates, in the space's order.
2. For each candidate d, for each repeat r = 0..R-1 (batch r of ``batches``): draw one random path
   in the mask (``space.sample(mask, generator)``), shared by all ops of d in this repeat; for every
   op o of d set d = o and compute v(d, o): the LID vector (criterion lid, no grad) or the flattened
   gradient of the loss w.r.t. ``supernet.shared_parameters(exclude=d)`` (criterion grad).
3. Average over repeats (the vectors, or the similarity matrices: ``cfg.average``), similarity
   matrix (cosine / euclidean / correlation; grad: cosine), best partition (mincut / spectral / gmm;
   spectral and gmm seeded from ``generator``), scores.
4. The edge rule picks d; the child masks are the parent mask with d restricted to each group.

criterion random: a seeded random candidate decision and a uniformly random partition into
``n_groups``; criterion none: no split. The supernet's mode and BatchNorm statistics are restored.
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import SplitConfig
from .edge_rule import choose_decision
from .partition import (PartitionResult, gmm_partition, mincut_partition, partition_scores,
                        random_partition, spectral_partition)
from .record import DecisionRecord, SplitRecord
from .similarity import row_norms, similarity_matrix
from .vectors import grad_vector, lid_vector, probe_state

log = logging.getLogger(__name__)


def candidate_decisions(space, mask, n_groups: int) -> list[str]:
    """Decisions not yet split (mask all true) with at least max(2, n_groups) candidates."""
    need = max(2, n_groups)
    return [k for k, v in mask.items() if bool(v.all()) and v.numel() >= need]


def child_masks(mask: dict, key: str, groups: list[list[int]]) -> list[dict]:
    """The parent ``mask`` with decision ``key`` restricted to each group of candidate positions."""
    out = []
    for g in groups:
        m = {k: v.clone() for k, v in mask.items()}
        sel = torch.zeros_like(mask[key])
        sel[list(g)] = True
        m[key] = mask[key] & sel
        out.append(m)
    return out


def _take_batches(batches: Iterable, repeats: int) -> list:
    if isinstance(batches, (tuple, list)) and len(batches) == 2 and isinstance(batches[0], torch.Tensor) \
            and isinstance(batches[1], torch.Tensor) and batches[0].dim() >= 2 and batches[1].dim() == 1:
        raise TypeError("split_step: batches must be an iterable of (x, y) pairs, got a single (x, y) pair; "
                        "wrap it in a list")
    got = list(itertools.islice(iter(batches), repeats))
    if len(got) < repeats:
        raise ValueError(f"split_step: batches yielded {len(got)} batch(es); repeats={repeats} needs {repeats}")
    for i, b in enumerate(got):
        if not (isinstance(b, (tuple, list)) and len(b) >= 2 and isinstance(b[0], torch.Tensor)):
            raise TypeError(f"split_step: batch {i} must be an (x, y) pair of tensors, got {type(b).__name__}")
    return got


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(2**31 - 1, (1,), generator=generator))


def _partition(sim: np.ndarray, vectors: torch.Tensor | None, cfg: SplitConfig, generator) -> PartitionResult:
    if cfg.partition == "mincut":
        return mincut_partition(sim, cfg.n_groups, balanced=cfg.balanced)
    seed = _seed_from(generator)
    if cfg.partition == "spectral":
        return spectral_partition(sim, cfg.n_groups, seed=seed)
    feats = vectors.numpy() if vectors is not None and vectors.shape[1] <= 256 else sim
    return gmm_partition(sim, feats, cfg.n_groups, seed=seed)


def split_step(space, supernet: nn.Module, mask, batches: Iterable, cfg: SplitConfig, *,
               generator: torch.Generator, device: torch.device | str | None = None,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
               decisions: Sequence[str] | None = None, progress: bool = False) -> SplitRecord:
    """Split ``supernet`` (of ``space``, restricted to ``mask``) once; see the module docstring.

    batches   iterable of (x (B, C, H, W), y (B,)) pairs; the first ``cfg.repeats`` are used (the
              same ones for every decision); B >= ``cfg.k`` + 2 for criterion lid
    generator seeded ``torch.Generator`` (CPU): random paths, random split, clusterer seeds
    device    where batches are moved (default: the supernet's parameters' device)
    loss_fn   criterion grad's loss (default cross-entropy)
    decisions restrict the candidate decisions to these keys (default: all unsplit ones); used by
              ``naslid.studies.peak_memory`` to measure one decision's step
    Returns a ``SplitRecord`` (``record.child_masks`` are JSON masks; ``child_mask_tensors(space)``).
    """
    t0 = time.perf_counter()
    _check_step_args(cfg, generator)
    mask = space.validate_mask(mask)
    rec = SplitRecord(split=False, criterion=cfg.criterion, edge_rule=cfg.resolved_edge_rule,
                      similarity=cfg.resolved_similarity, config=cfg.to_dict(),
                      parent_mask=space.mask_to_json(mask))
    if cfg.criterion == "none":
        return _unsplit(rec, "criterion none: plain one-shot, no split", t0)
    cands = _wanted_candidates(space, mask, cfg.n_groups, decisions)
    if not cands:
        return _unsplit(rec, f"no decision left to split (none is all-true with >= {max(2, cfg.n_groups)} "
                             f"candidates)", t0)
    if cfg.criterion == "random":
        key = cands[int(torch.randint(len(cands), (1,), generator=generator))]
        groups = random_partition(len(space.decisions[key]), cfg.n_groups, generator, balanced=cfg.balanced)
        return _finish(rec, space, mask, key, groups, t0)
    batches = _take_batches(batches, cfg.repeats)
    probe = _Probe(space, supernet, mask, batches, cfg, generator,
                   device if device is not None else _device_of(supernet),
                   loss_fn or nn.functional.cross_entropy)
    _check_lid_batch(cfg, batches)
    results = _examine(probe, cands, rec, progress)
    key = _choose(rec, results, cfg)
    return _finish(rec, space, mask, key, results[key].groups, t0)


def _check_step_args(cfg, generator) -> None:
    if not isinstance(cfg, SplitConfig):
        raise TypeError(f"split_step: cfg must be a SplitConfig, got {type(cfg).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"split_step: generator must be a torch.Generator, got {type(generator).__name__}")


def _unsplit(rec: SplitRecord, reason: str, t0: float) -> SplitRecord:
    """``rec`` as the record of a step that splits nothing, for ``reason``."""
    rec.reason = reason
    rec.seconds = time.perf_counter() - t0
    return rec


def _device_of(supernet: nn.Module) -> torch.device:
    """The device of the supernet's parameters (CPU for a supernet without any)."""
    p = next(supernet.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@dataclass
class _Probe:
    """What the op vectors of every decision of one step are computed with: the supernet restricted
    to ``mask``, the repeats' (x (B, C, H, W), y (B,)) ``batches`` (moved to ``device`` per use),
    the step's generator (random paths, clusterer seeds), criterion grad's ``loss_fn``; ``bar``
    (a tqdm bar or None) advances once per op and repeat, ``lid_stats`` collects the LID ops' time."""

    space: Any
    supernet: nn.Module
    mask: dict
    batches: list
    cfg: SplitConfig
    generator: torch.Generator
    device: torch.device | str
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lid_stats: dict = field(default_factory=dict)
    bar: Any = None  # a tqdm bar or None


def _examine(probe: _Probe, cands: list[str], rec: SplitRecord, progress: bool) -> dict[str, PartitionResult]:
    """The best partition of every candidate decision (in order); records each decision in
    ``rec.decisions`` and the LID ops' time in ``rec.lid_seconds``. The supernet's mode and BN
    statistics are restored afterwards."""
    cfg = probe.cfg
    if progress:
        total = sum(len(probe.space.decisions[d]) for d in cands) * cfg.repeats
        probe.bar = tqdm(total=total, desc=f"split ({cfg.criterion})", leave=False)
    results: dict[str, PartitionResult] = {}
    try:
        with probe_state(probe.supernet, cfg.bn_mode):
            for d in cands:
                results[d], rec.decisions[d] = _examine_decision(probe, d)
    finally:
        if probe.bar is not None:
            probe.bar.close()
    rec.lid_seconds = probe.lid_stats.get("lid_seconds", 0.0)
    return results


def _examine_decision(probe: _Probe, d: str) -> tuple[PartitionResult, DecisionRecord]:
    """Decision ``d``'s best partition and its record (rule value filled in by ``_choose``)."""
    cfg = probe.cfg
    ops = list(probe.space.decisions[d])
    params = probe.supernet.shared_parameters(exclude=d) if cfg.criterion == "grad" else None
    vectors, sim, paths = _op_vectors(probe, d, params)
    part = _partition(sim, torch.stack(vectors) if cfg.criterion == "lid" else None, cfg, probe.generator)
    keep = cfg.criterion == "lid" or cfg.record_grad_vectors
    record = DecisionRecord(
        ops=ops, vectors=[v.tolist() for v in vectors] if keep else None, vector_dim=int(vectors[0].numel()),
        vector_norms=row_norms(vectors), similarity=sim.tolist(),
        partition=[[ops[i] for i in g] for g in part.groups], partition_index=part.groups,
        within=part.within, between=part.between, between_distance=part.between_distance,
        rule_value=0.0, partition_method=part.method, partition_repaired=part.repaired,
        paths=paths)
    return part, record


def _choose(rec: SplitRecord, results: dict[str, PartitionResult], cfg: SplitConfig) -> str:
    """The decision the edge rule picks; every examined decision's rule value goes to ``rec``."""
    key, values = choose_decision(results, cfg.resolved_edge_rule)
    for d, v in values.items():
        rec.decisions[d].rule_value = v
    log.info("split: %s chosen by rule %s (value %.6g) into %s", key, cfg.resolved_edge_rule, values[key],
             rec.decisions[key].partition)
    return key


def _wanted_candidates(space, mask, n_groups: int, decisions: Sequence[str] | None) -> list[str]:
    """The unsplit decisions of ``mask`` (``candidate_decisions``), restricted to ``decisions``."""
    cands = candidate_decisions(space, mask, n_groups)
    if decisions is None:
        return cands
    wanted = list(decisions)
    unknown = [k for k in wanted if k not in space.decisions]
    if unknown:
        raise ValueError(f"split_step: decisions {unknown} are not decisions of space {space.name!r}")
    return [k for k in cands if k in wanted]


def _check_lid_batch(cfg: SplitConfig, batches: list) -> None:
    """LID needs k < B - 1 neighbour candidates per batch (naslid_ext's rule: one left out)."""
    if cfg.criterion != "lid":
        return
    b = batches[0][0].shape[0]
    if cfg.k > b - 2:
        raise ValueError(f"split_step: k={cfg.k} needs a batch of at least k + 2 = {cfg.k + 2} images "
                         f"(k must be smaller than the B - 1 neighbour candidates), got batch size {b}")


def _op_vectors(probe: _Probe, d: str, params: list[nn.Parameter] | None):
    """The op vectors of decision ``d`` (one per candidate, averaged over ``cfg.repeats`` batches
    and random paths), their similarity matrix and the paths used: (vectors, sim, paths).
    ``params``: criterion grad's shared parameters (the vectors are gradients with respect to them).

    Vectors are kept as a list of rows, allocated as produced and accumulated in place over repeats:
    never stacked or copied (GM-NAS holds one gradient per op)."""
    space, supernet, cfg, bar = probe.space, probe.supernet, probe.cfg, probe.bar
    ops = list(space.decisions[d])
    acc: list[torch.Tensor] | None = None
    sim_acc: np.ndarray | None = None
    paths = []
    for r in range(cfg.repeats):
        x, y = probe.batches[r][0].to(probe.device), probe.batches[r][1].to(probe.device)
        path = space.sample(probe.mask, probe.generator)
        paths.append({k: v for k, v in path.items() if k != d})
        rows: list[torch.Tensor] = []
        for i, o in enumerate(ops):
            arch = dict(path)
            arch[d] = o
            supernet.set_arch(arch)
            if cfg.criterion == "lid":
                v = lid_vector(supernet, x, k=cfg.k, estimator=cfg.lid_estimator,
                               backend=cfg.lid_backend, stats=probe.lid_stats,
                               probe_chunks=cfg.probe_chunks)
            else:
                v = grad_vector(supernet, x, y, params, probe.loss_fn)
            if acc is not None and cfg.average == "vector":
                acc[i].add_(v)  # later repeats: accumulate at once, keep nothing
            else:
                rows.append(v)
            del v
            if bar is not None:
                bar.update(1)
        if cfg.average == "similarity":
            s = similarity_matrix(rows, cfg.resolved_similarity)
            sim_acc = s if sim_acc is None else sim_acc + s
            if acc is not None:
                for i, v in enumerate(rows):
                    acc[i].add_(v)
        if acc is None:
            acc = rows
        del rows
    vectors = [v.div_(cfg.repeats) for v in acc] if cfg.repeats > 1 else acc
    del acc
    sim = (sim_acc / cfg.repeats if cfg.average == "similarity"
           else similarity_matrix(vectors, cfg.resolved_similarity))
    return vectors, sim, paths


def _finish(rec: SplitRecord, space, mask, key: str, groups: list[list[int]], t0: float) -> SplitRecord:
    ops = space.decisions[key]
    rec.split = True
    rec.chosen = key
    rec.groups = [[ops[i] for i in g] for g in groups]
    rec.child_masks = [space.mask_to_json(m) for m in child_masks(mask, key, groups)]
    rec.seconds = time.perf_counter() - t0
    return rec


__all__ = ["split_step", "candidate_decisions", "child_masks", "partition_scores"]
