"""Architecture search over the union of the leaves' masks: evolutionary and random.

The caller supplies ``fitness(arch) -> float`` (higher is better), typically
``evaluate.SubnetEvaluator`` (which picks the sub-supernet whose mask contains the arch). Fitness
values are cached here by ``space.canonical_key``: isomorphic candidates count as one and are
evaluated once (the first representative met is the one evaluated and reported).

Evolution (SPOS-style, NAS-LID's settings by default; ``EvolutionConfig``):
1. the initial population: ``population`` distinct (by canonical key) archs drawn uniformly from
   the union of the masks;
2. every generation evaluates its population; the ``parents`` best archs seen so far (all
   generations, ties broken by first evaluation) are the parents;
3. the next population is ``crossover`` children (each decision copied from one of two distinct
   random parents with probability 1/2), ``mutation`` children (each decision of a random parent
   replaced, with probability ``mutation_prob``, by a uniformly drawn *different* candidate allowed
   by some mask) and ``newcomers`` fresh uniform draws; if fewer than ``population`` result, random
   draws fill it up;
4. repeat for ``generations`` generations (generation 0 is the initial population).
Children must lie in the union of the leaf masks and be new (canonical key not seen before): an
invalid or already-seen child is redrawn from scratch (new parents, new coin flips) up to
``max_tries`` times, then replaced by a uniform draw from the union (repair by resampling), which
may be a repeat when the union is nearly exhausted. Everything is driven by one ``torch.Generator``
(one draw seeds a Python ``random.Random`` used inside the loop, for speed).

Random search: ``num_samples`` distinct archs drawn uniformly from the union.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from .evolution_settings import EvolutionConfig
from ..spaces.base import SearchSpace

Fitness = Callable[[Mapping[str, str]], float]


@dataclass
class EvolutionResult:
    """What ``evolutionary_search`` and ``random_search`` return (the whole run's result is
    ``naslid.run.result.SearchResult``): ``best_arch`` (dict), its ``best_fitness``, per-generation
    ``history`` and every evaluated arch (``evaluated``: canonical key -> {"arch": arch string,
    "fitness": value}, in order)."""

    best_arch: dict
    best_fitness: float
    history: list = field(default_factory=list)
    evaluated: dict = field(default_factory=dict)
    method: str = "evolution"

    def to_dict(self, space: SearchSpace) -> dict:
        """JSON-ready form (arch as the space's string)."""
        return {"method": self.method, "best_arch": space.arch_to_string(self.best_arch),
                "best_fitness": self.best_fitness, "num_evaluated": len(self.evaluated),
                "history": self.history}


def best_first(entries) -> list[dict]:
    """Evaluated archs ({"arch", "fitness", ...}, in visiting order) sorted best first; ties keep
    the visiting order (the search's own order: its best is the first)."""
    return sorted(entries, key=lambda v: -v["fitness"])


# ------------------------------------------------------------------------------------------------
# the union of masks (archs handled internally as tuples of candidate indices: "codes")
# ------------------------------------------------------------------------------------------------
def rng_from(generator: torch.Generator) -> random.Random:
    """A Python ``random.Random`` seeded by one draw of ``generator`` (so the search is fully
    determined by the generator's state, and advances it once). Python's RNG is used inside the
    search loops because per-scalar torch draws are slow."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"search: generator must be a torch.Generator, got {type(generator).__name__}")
    return random.Random(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))


class MaskUnion:
    """Sampling, membership, mutation and crossover for the union of several masks of ``space``.

    An arch code is a tuple of candidate indices, one per decision in ``space.decisions`` order.
    """

    def __init__(self, space: SearchSpace, masks: Sequence[Mapping] | None):
        self.space = space
        masks = [space.full_mask()] if not masks else list(masks)
        self.masks = [space.validate_mask(m) for m in masks]
        self.keys = list(space.decisions)
        self.cands = [space.decisions[k] for k in self.keys]
        self.allowed = [[tuple(torch.nonzero(m[k]).flatten().tolist()) for k in self.keys]
                        for m in self.masks]
        self.allowed_sets = [[frozenset(a) for a in per] for per in self.allowed]
        self.sizes = [math.prod(len(a) for a in per) for per in self.allowed]
        # candidates allowed by at least one mask, per decision (mutation targets)
        self.any_allowed = [tuple(sorted(set().union(*(per[d] for per in self.allowed))))
                            for d in range(len(self.keys))]
        self._key_cache: dict[tuple, str] = {}

    @property
    def size_upper_bound(self) -> int:
        return sum(self.sizes)

    def to_arch(self, code: Sequence[int]) -> dict:
        return {k: c[i] for k, c, i in zip(self.keys, self.cands, code)}

    def to_code(self, arch: Mapping[str, str]) -> tuple:
        arch = self.space.validate_arch(arch)
        return tuple(c.index(arch[k]) for k, c in zip(self.keys, self.cands))

    def key(self, code: tuple) -> str:
        """``space.canonical_key`` of a code (memoised)."""
        k = self._key_cache.get(code)
        if k is None:
            k = self._key_cache[code] = self.space.canonical_key(self.to_arch(code))
        return k

    def count_containing_code(self, code: Sequence[int]) -> int:
        return sum(all(i in s for i, s in zip(code, per)) for per in self.allowed_sets)

    def contains_code(self, code: Sequence[int]) -> bool:
        return any(all(i in s for i, s in zip(code, per)) for per in self.allowed_sets)

    def contains(self, arch: Mapping[str, str]) -> bool:
        return self.contains_code(self.to_code(arch))

    def sample_code(self, rng: random.Random) -> tuple:
        """Uniform over the union: pick a mask with probability ∝ its size, draw inside it, and
        accept with probability 1 / (number of masks containing the draw) (exact for overlaps)."""
        while True:
            i = rng.choices(range(len(self.masks)), weights=self.sizes)[0] if len(self.masks) > 1 else 0
            code = tuple(rng.choice(a) for a in self.allowed[i])
            if len(self.masks) == 1:
                return code
            c = self.count_containing_code(code)
            if c == 1 or rng.random() < 1.0 / c:
                return code

    def sample(self, generator: torch.Generator) -> dict:
        """One uniform draw from the union as an arch dict."""
        return self.to_arch(self.sample_code(rng_from(generator)))

    def mutate(self, parent: Sequence[int], prob: float, rng: random.Random) -> tuple:
        """Each decision, with probability ``prob``, takes a uniformly drawn different candidate
        among those some mask allows (the result may fall outside the union: check it)."""
        out = []
        for d, i in enumerate(parent):
            if rng.random() < prob:
                choices = [j for j in self.any_allowed[d] if j != i]
                if choices:
                    out.append(rng.choice(choices))
                    continue
            out.append(i)
        return tuple(out)

    @staticmethod
    def crossover(a: Sequence[int], b: Sequence[int], rng: random.Random) -> tuple:
        """Uniform crossover: every decision from ``a`` or ``b`` with probability 1/2."""
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------------
# searches
# ------------------------------------------------------------------------------------------------
class _Evaluations:
    """Fitness cache by canonical key, plus the keys visited by *this* run (in order)."""

    def __init__(self, union: MaskUnion, fitness: Fitness, initial: Mapping | None):
        self.union, self.fitness = union, fitness
        self.evaluated: dict[str, dict] = {k: dict(v) for k, v in (initial or {}).items()}
        self.run: dict[str, None] = {}  # ordered set

    def __call__(self, code: tuple) -> float:
        k = self.union.key(code)
        if k not in self.evaluated:
            arch = self.union.to_arch(code)
            f = float(self.fitness(arch))
            if not math.isfinite(f):
                raise ValueError(f"search: fitness of {self.union.space.arch_to_string(arch)} "
                                 f"is {f}")
            self.evaluated[k] = {"arch": self.union.space.arch_to_string(arch), "fitness": f}
        self.run.setdefault(k, None)
        return self.evaluated[k]["fitness"]

    def ranked(self) -> list[dict]:
        """This run's evaluated archs, best first; ties by first visit."""
        return best_first(self.evaluated[k] for k in self.run)

    def visited(self) -> dict:
        return {k: self.evaluated[k] for k in self.run}


def _new_code(union: MaskUnion, seen: set, rng: random.Random, make, max_tries: int) -> tuple:
    """A child from ``make()`` inside the union and unseen (by canonical key), else a fresh
    uniform draw that is unseen, else any uniform draw (union nearly exhausted)."""
    for _ in range(max_tries):
        code = make()
        if union.contains_code(code) and union.key(code) not in seen:
            return code
    for _ in range(max_tries):
        code = union.sample_code(rng)
        if union.key(code) not in seen:
            return code
    return union.sample_code(rng)


def evolutionary_search(space: SearchSpace, masks: Sequence[Mapping] | None, fitness: Fitness, *,
                        config: EvolutionConfig | None = None, generator: torch.Generator,
                        cache: Mapping | None = None, progress: bool = False,
                        callback: Callable[[int, EvolutionResult], None] | None = None
                        ) -> EvolutionResult:
    """Evolutionary search (see the module docstring) over the union of ``masks`` (None: full space).

    Args:
        fitness: arch dict -> float, higher is better (e.g. validation accuracy %).
        generator: torch.Generator; the whole search is determined by its state (and a
            deterministic fitness).
        cache: a previous result's ``evaluated`` dict (canonical key -> {"arch", "fitness"});
            cached archs are not re-evaluated, and the search proceeds exactly as without the
            cache (resume: re-run with the same seed and the saved cache to replay cheaply).
        callback: called after every generation with (generation, partial result).
    Returns a EvolutionResult; ``history[g]`` = {generation, best_fitness (so far), best_arch,
    population_mean, num_evaluated (distinct archs so far)}; ``evaluated`` = this run's archs.
    """
    cfg = (config or EvolutionConfig()).validate()
    union = MaskUnion(space, masks)
    rng = rng_from(generator)
    evals = _Evaluations(union, fitness, cache)
    breeder = _Breeder(union, rng, cfg)
    population = breeder.initial()
    bar = tqdm(total=cfg.generations + 1, desc="evolution", leave=False) if progress else None
    result = EvolutionResult({}, -math.inf, [], {}, "evolution")
    try:
        for gen in range(cfg.generations + 1):
            ranked = _record_generation(space, evals, population, gen, result)
            if callback is not None:
                callback(gen, result)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(best=f"{result.best_fitness:.2f}")
            if gen == cfg.generations:
                break
            parents = [union.to_code(space.arch_from_string(v["arch"])) for v in ranked[:cfg.parents]]
            population = breeder.next_population(parents)
    finally:
        if bar is not None:
            bar.close()
    return result


def _record_generation(space: SearchSpace, evals: _Evaluations, population: list[tuple], gen: int,
                       result: EvolutionResult) -> list[dict]:
    """Evaluate generation ``gen``'s ``population``, update ``result`` (best so far, evaluated
    archs, one ``history`` entry); returns every arch evaluated so far, best first."""
    fits = [evals(c) for c in population]
    ranked = evals.ranked()
    best = ranked[0]
    result.best_arch = space.arch_from_string(best["arch"])
    result.best_fitness = best["fitness"]
    result.evaluated = evals.visited()
    result.history.append({"generation": gen, "best_fitness": best["fitness"], "best_arch": best["arch"],
                           "population_mean": float(sum(fits) / len(fits)),
                           "num_evaluated": len(evals.run)})
    return ranked


class _Breeder:
    """Populations of new archs (codes, unseen by canonical key) in the union: the initial one,
    then from parents by crossover, mutation and newcomers (see the module docstring)."""

    def __init__(self, union: MaskUnion, rng: random.Random, cfg: EvolutionConfig):
        self.union, self.rng, self.cfg = union, rng, cfg
        self.seen: set[str] = set()

    def _add(self, population: list, make: Callable[[], tuple], count: int) -> None:
        for _ in range(count):
            code = _new_code(self.union, self.seen, self.rng, make, self.cfg.max_tries)
            self.seen.add(self.union.key(code))
            population.append(code)

    def _newcomer(self) -> tuple:
        return self.union.sample_code(self.rng)

    def initial(self) -> list[tuple]:
        """``population`` uniform draws."""
        population: list[tuple] = []
        self._add(population, self._newcomer, self.cfg.population)
        return population

    def next_population(self, parents: list[tuple]) -> list[tuple]:
        """``crossover`` children of two distinct parents (when there are two), ``mutation``
        children, ``newcomers``, then uniform draws up to ``population``."""
        union, rng, cfg = self.union, self.rng, self.cfg

        def cross():
            i, j = rng.sample(range(len(parents)), 2)
            return union.crossover(parents[i], parents[j], rng)

        def mut():
            return union.mutate(rng.choice(parents), cfg.mutation_prob, rng)

        nxt: list[tuple] = []
        if len(parents) >= 2:
            self._add(nxt, cross, cfg.crossover)
        self._add(nxt, mut, cfg.mutation)
        self._add(nxt, self._newcomer, cfg.newcomers)
        self._add(nxt, self._newcomer, max(0, cfg.population - len(nxt)))
        return nxt


def random_search(space: SearchSpace, masks: Sequence[Mapping] | None, fitness: Fitness, *,
                  num_samples: int, generator: torch.Generator, cache: Mapping | None = None,
                  max_tries: int = 50, progress: bool = False) -> EvolutionResult:
    """Evaluate ``num_samples`` distinct (by canonical key, as far as the union allows) uniform
    draws from the union of ``masks``; return the best. ``history`` has one entry per sample."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"random_search: num_samples must be a positive int, got {num_samples!r}")
    union = MaskUnion(space, masks)
    rng = rng_from(generator)
    evals = _Evaluations(union, fitness, cache)
    seen: set[str] = set()
    history: list[dict] = []
    result = EvolutionResult({}, -math.inf, history, {}, "random")
    it = tqdm(range(num_samples), desc="random search", leave=False) if progress else range(num_samples)
    for i in it:
        code = _new_code(union, seen, rng, lambda: union.sample_code(rng), max_tries)
        seen.add(union.key(code))
        f = evals(code)
        if f > result.best_fitness:
            result.best_arch, result.best_fitness = union.to_arch(code), f
        history.append({"sample": i, "best_fitness": result.best_fitness,
                        "best_arch": space.arch_to_string(result.best_arch),
                        "num_evaluated": len(evals.run)})
    result.evaluated = evals.visited()
    return result
