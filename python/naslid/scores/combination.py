"""The combined score: several signals of a cell turned into quantiles against one reference sample.

A *signal* (``naslid.choices.SIGNALS``) is the supernet's ``loss`` (minus the held-out cross-entropy
of the cell with inherited weights) or ``acc``, or any training-free score of ``naslid.scores.by_name``.
``search.score`` names one signal or a combination joined with ``+`` (``"loss+naswot+synflow"``).

For a combination, every run draws one reference sample of de-isomorphic cells with the run's seed
(``draw_reference``) and computes every signal on it once. A cell's value of signal s becomes its
mid-rank quantile among the reference's values of s,

    q_s(v) = (#{r < v} + ½ #{r = v} + ½) / (n + 1)        in (0, 1),

and the cell's fitness is the mean of its quantiles (equal weights; nothing is fitted to any
benchmark). A cell that a score cannot rate (a non-finite value: NASWOT's −inf for a singular
kernel, NaN) gets the lowest quantile ½ / (n + 1), never NaN; unratable reference values count as
−inf. ``aznas`` (four terms) enters as AZ-NAS's own aggregation taken against the reference:
Σ_terms ln q_term(v_term), whose quantile among the reference cells' own aggregates (computed the
same way, each against the whole reference) is the signal's quantile.

A single supernet signal (``"loss"`` or ``"acc"``) is the pure-supernet protocol: no reference, no
quantiles, the fitness is the signal itself (``is_pure_supernet``).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from .aznas import AZNAS_TERMS
from .spec import free_signals, is_pure_supernet, parse_signals


def draw_reference(space, n: int, generator: torch.Generator, *, max_draws: int | None = None) -> list[dict]:
    """``n`` archs of ``space`` with distinct canonical keys (one per isomorphism class), drawn
    uniformly with ``generator`` (in draw order). ValueError when ``max_draws`` (default 200 n)
    draws do not find ``n`` classes."""
    seen: dict[str, dict] = {}
    limit = max_draws if max_draws is not None else 200 * n
    for _ in range(limit):
        a = space.sample(None, generator)
        seen.setdefault(space.canonical_key(a), a)
        if len(seen) == n:
            return list(seen.values())
    raise ValueError(f"draw_reference: found only {len(seen)} distinct cells of {space.name} in {limit} "
                     f"draws; search.reference_size = {n} is too large for the space")


def count_classes(space) -> int:
    """Number of isomorphism classes of ``space`` (NB201: 6,466, enumerated); the number of archs
    for spaces without isomorphisms listed here."""
    if space.name == "nb201":
        return len({space.canonical_key(a) for a in space.iter_archs()})
    return space.num_archs(space.full_mask())


def _clean(v) -> float:
    v = float(v) if v is not None else float("nan")
    return v if math.isfinite(v) else float("-inf")


def quantile(sorted_ref: np.ndarray, v: float) -> float:
    """Mid-rank quantile of ``v`` among the ascending reference values ``sorted_ref`` (n,);
    ``½ / (n + 1)`` when ``v`` is not finite (see the module docstring)."""
    n = len(sorted_ref)
    v = _clean(v)
    if v == float("-inf"):
        return 0.5 / (n + 1)
    lo = int(np.searchsorted(sorted_ref, v, side="left"))
    hi = int(np.searchsorted(sorted_ref, v, side="right"))
    return (lo + 0.5 * (hi - lo) + 0.5) / (n + 1)


def _sorted(values) -> np.ndarray:
    return np.sort(np.array([_clean(v) for v in values], dtype=np.float64))


def supernet_value(signal: str, metrics: Mapping[str, float]) -> float:
    """The supernet signal of ``classify`` metrics: ``-loss`` or ``acc`` (higher = better)."""
    return float(metrics["acc"]) if signal == "acc" else -float(metrics["loss"])


class Combination:
    """Quantiles and fitness of cells against one reference sample.

    ``reference``: signal -> the reference cells' raw values (``aznas``: a list of term dicts;
    the supernet signals: ``supernet_value``'s values). ``quantiles(raw)`` maps a cell's raw
    values (same form) to {signal: q}; ``fitness(raw)`` is their mean."""

    def __init__(self, signals: Sequence[str], reference: Mapping[str, Sequence]):
        self.signals = tuple(signals)
        missing = [s for s in self.signals if s not in reference]
        if missing:
            raise ValueError(f"Combination: no reference values for {missing}")
        sizes = {s: len(reference[s]) for s in self.signals}
        if len(set(sizes.values())) != 1 or min(sizes.values()) < 1:
            raise ValueError(f"Combination: every signal needs the same number (>= 1) of reference values, "
                             f"got {sizes}")
        self.n = next(iter(sizes.values()))
        self._ref: dict[str, np.ndarray] = {}
        for s in self.signals:
            if s == "aznas":
                terms = {t: _sorted(r[t] for r in reference[s]) for t in AZNAS_TERMS}
                self._terms = terms
                self._ref[s] = _sorted(self.aznas_value(r) for r in reference[s])
            else:
                self._ref[s] = _sorted(reference[s])

    def aznas_value(self, terms: Mapping[str, float]) -> float:
        """AZ-NAS's aggregate of one cell's terms against the reference: Σ ln q_term."""
        return float(sum(math.log(quantile(self._terms[t], terms[t])) for t in AZNAS_TERMS))

    def value(self, signal: str, raw) -> float:
        """The scalar a signal is ranked by (aznas: its aggregate; others: the raw value)."""
        return self.aznas_value(raw) if signal == "aznas" else _clean(raw)

    def quantiles(self, raw: Mapping[str, object]) -> dict[str, float]:
        return {s: quantile(self._ref[s], self.value(s, raw[s])) for s in self.signals}

    def fitness(self, raw: Mapping[str, object]) -> float:
        q = self.quantiles(raw)
        return float(sum(q.values()) / len(q))


__all__ = ["parse_signals", "is_pure_supernet", "free_signals", "draw_reference", "count_classes",
           "quantile", "supernet_value", "Combination"]
