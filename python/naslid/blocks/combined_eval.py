"""The search's evaluator for a combined score: supernet signals and training-free scores as quantiles.

``CombinedEvaluator(base, signals, reference, x=..., y=..., seed=...)`` wraps a
``naslid.blocks.inherited_eval.SubnetEvaluator`` (the supernet signals ``loss`` / ``acc`` of a cell with the
weights of the leaf that contains it) and ``naslid.scores.by_name`` (every training-free signal, on the
cell's stand-alone network in ``free_space`` (default: the searched space; ``search.free_cells``
gives NB201 another depth) freshly initialised with the run's seed, on the run's fixed batch
``x`` (N, C_in, H, W), ``y`` (N,)). On construction it computes every signal of the ``reference``
cells once (the run's one reference sample, ``naslid.scores.combination.draw_reference``); a cell's
fitness is then the mean of its signals' quantiles against that sample
(``naslid.scores.combination.Combination``). Same interface as ``SubnetEvaluator`` (``__call__``,
``metrics``, ``masks``, ``leaf_index``), plus ``signals(arch)``: every signal's value, quantile and
the fitness, for ``result.json`` and the ranking stage. Raw values are cached by arch string.
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import torch

from ..choices import FREE_LID_K, SCORES
from ..scores.combination import Combination, free_signals, supernet_value
from .inherited_eval import SubnetEvaluator
from ..scores.by_name import cell_scores


class CombinedEvaluator:
    """See the module docstring. ``reference``: the reference archs (mappings). ``progress``: a
    tqdm bar over the reference cells."""

    def __init__(self, base: SubnetEvaluator, signals: Sequence[str], reference: Sequence[Mapping],
                 *, x: torch.Tensor | None, y: torch.Tensor | None, seed: int, progress: bool = False,
                 free_space=None):
        if not reference:
            raise ValueError("CombinedEvaluator: the reference sample is empty")
        self.base, self.space = base, base.space
        #: the space whose stand-alone networks the training-free scores rate (default: the searched one)
        self.free_space = free_space if free_space is not None else self.space
        self.signals_used = tuple(signals)
        self.free = free_signals(self.signals_used)
        self.x, self.y, self.seed = x, y, int(seed)
        self.raw_cache: dict[str, dict] = {}
        #: wall seconds spent in the training-free scores
        self.free_seconds = 0.0
        self.reference = [self.space.arch_to_string(a) for a in reference]
        items = reference
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(reference, desc="reference", leave=False)
        raws = [self.raw(a) for a in items]
        self.combination = Combination(self.signals_used, {s: [r[s] for r in raws] for s in self.signals_used})

    # ----- SubnetEvaluator's interface ---------------------------------------------------------
    @property
    def masks(self) -> list[dict]:
        return self.base.masks

    def leaf_index(self, arch: Mapping[str, str]) -> int:
        return self.base.leaf_index(arch)

    def metrics(self, arch: Mapping[str, str]) -> dict:
        return self.base.metrics(arch)

    def __call__(self, arch: Mapping[str, str]) -> float:
        return self.combination.fitness(self.raw(arch))

    # ----- signals -----------------------------------------------------------------------------
    def raw(self, arch: Mapping[str, str]) -> dict:
        """Every signal's raw value of ``arch`` (supernet: ``supernet_value``; aznas: its terms)."""
        key = self.space.arch_to_string(arch)
        if key not in self.raw_cache:
            out: dict = {}
            if any(s in SCORES for s in self.signals_used):
                m = self.base.metrics(arch)
                out.update({s: supernet_value(s, m) for s in self.signals_used if s in SCORES})
            if self.free:
                t0 = time.perf_counter()
                out.update(cell_scores(self.free, self.free_space, arch, x=self.x, y=self.y, seed=self.seed,
                                       lid_k=FREE_LID_K))
                self.free_seconds += time.perf_counter() - t0
            self.raw_cache[key] = out
        return self.raw_cache[key]

    def signals(self, arch: Mapping[str, str]) -> dict:
        """{"values": {signal: the value it is ranked by}, "quantiles": {signal: q}, "fitness"}."""
        raw = self.raw(arch)
        values = {s: self.combination.value(s, raw[s]) for s in self.signals_used}
        q = self.combination.quantiles(raw)
        return {"values": values, "quantiles": q, "fitness": float(sum(q.values()) / len(q))}


__all__ = ["CombinedEvaluator"]
