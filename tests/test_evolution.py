"""Evolutionary and random search over the union of leaf masks (naslid.blocks.evolutionary_search)."""
from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch

from fake_space import FakeSpace
from naslid.blocks.evolutionary_search import EvolutionConfig, MaskUnion, evolutionary_search, random_search
from naslid.spaces.nb201 import NB201Space

OPS = ("a", "b", "c", "d", "e")


def _space(symmetric=False):
    return FakeSpace(n=6, ops=OPS, symmetric=symmetric)  # 5^6 = 15,625 archs, like NB201


def _additive_fitness(space, seed=0):
    """fitness(arch) = sum of per-decision scores (optimum: the argmax op of every decision)."""
    g = torch.Generator().manual_seed(seed)
    w = {k: torch.rand(len(c), generator=g, dtype=torch.float64).tolist()
         for k, c in space.decisions.items()}
    calls = []

    def fitness(arch):
        calls.append(dict(arch))
        return sum(w[k][space.decisions[k].index(v)] for k, v in arch.items())

    best = {k: c[max(range(len(c)), key=lambda i: w[k][i])] for k, c in space.decisions.items()}
    return fitness, calls, best


def _m(space, **allowed):
    """Mask allowing only the given ops on the named decisions (others: all)."""
    m = space.full_mask()
    for k, ops in allowed.items():
        m[k] = torch.tensor([o in ops for o in space.decisions[k]])
    return m


SMALL = EvolutionConfig(population=20, generations=15, parents=5, crossover=6, mutation=6,
                        newcomers=4)


def test_evolution_default_config_finds_the_optimum():
    space = _space()
    fitness, calls, best = _additive_fitness(space)
    res = evolutionary_search(space, None, fitness, generator=torch.Generator().manual_seed(0))
    assert res.best_arch == best
    assert res.best_fitness == pytest.approx(fitness(best))
    assert len(res.history) == 101 and res.history[-1]["best_fitness"] == res.best_fitness
    assert [h["best_fitness"] for h in res.history] == sorted(h["best_fitness"] for h in res.history)


def test_evolution_beats_random_at_equal_budget():
    space = _space()
    evo, rnd, evo_hits = [], [], 0
    for seed in range(5):
        fitness, calls, best = _additive_fitness(space, seed=seed)
        r = evolutionary_search(space, None, fitness, config=SMALL,
                                generator=torch.Generator().manual_seed(seed))
        n = len(r.evaluated)
        assert n <= 20 * 16
        evo.append(r.best_fitness)
        evo_hits += r.best_arch == best
        fitness2, _, _ = _additive_fitness(space, seed=seed)
        rnd.append(random_search(space, None, fitness2, num_samples=n,
                                 generator=torch.Generator().manual_seed(seed)).best_fitness)
    assert sum(e > r for e, r in zip(evo, rnd)) >= 4
    assert evo_hits >= 3  # the exact optimum among 15,625 with ~300 evaluations


def test_children_stay_inside_the_union_of_leaf_masks():
    space = _space()
    # two leaves whose union is not a product set: crossover/mutation can leave it
    leaves = [_m(space, d0="ab", d1="a"), _m(space, d0="cde", d1="bc")]
    union = MaskUnion(space, leaves)
    fitness, calls, _ = _additive_fitness(space, seed=1)
    res = evolutionary_search(space, leaves, fitness, config=SMALL,
                              generator=torch.Generator().manual_seed(0))
    assert calls and all(union.contains(a) for a in calls)
    inside = [union.to_arch(c) for c in itertools.product(range(5), repeat=6)
              if union.contains_code(c)]
    assert len(inside) == 2 * 1 * 5 ** 4 + 3 * 2 * 5 ** 4
    brute = max(fitness(a) for a in inside)
    assert res.best_fitness <= brute
    mid = EvolutionConfig(population=30, generations=30, parents=8, crossover=10, mutation=12,
                          newcomers=8)
    full = evolutionary_search(space, leaves, _additive_fitness(space, seed=1)[0], config=mid,
                               generator=torch.Generator().manual_seed(0))
    assert full.best_fitness == pytest.approx(brute)  # ~900 evaluations find the union's optimum


def test_mutation_and_crossover_primitives():
    import random

    space = _space()
    union = MaskUnion(space, [_m(space, d0="ab")])
    rng = random.Random(0)
    parent = (0,) * 6  # all "a"
    all_flip = union.mutate(parent, 1.0, rng)
    assert all(v != 0 for v in all_flip) and all_flip[0] == 1  # d0 may only become "b"
    assert union.mutate(parent, 0.0, rng) == parent
    flips = sum(v != 0 for _ in range(500) for v in union.mutate(parent, 0.1, rng))
    assert 200 <= flips <= 400  # ~0.1 * 3000
    other = (4,) * 6
    kids = [union.crossover(parent, other, rng) for _ in range(200)]
    assert all(set(k) <= {0, 4} for k in kids)
    share = sum(v == 0 for k in kids for v in k) / (200 * 6)
    assert 0.45 < share < 0.55
    assert union.to_arch(union.to_code({k: "c" for k in space.decisions})) == {k: "c" for k in space.decisions}


def test_union_sampling_is_uniform_with_overlapping_masks():
    space = FakeSpace(n=2, ops=("a", "b", "c"))
    union = MaskUnion(space, [_m(space, d0="ab"), _m(space, d0="bc", d1="ab")])
    # union: d0 in {a, b} x all d1 (6) + d0 = c x {a, b} (2) = 8 archs
    g = torch.Generator().manual_seed(0)
    counts = Counter(space.arch_to_string(union.sample(g)) for _ in range(8000))
    assert len(counts) == 8
    assert all(850 <= c <= 1150 for c in counts.values()), counts  # ~1000 each


def test_cache_by_canonical_key_and_determinism():
    space = _space(symmetric=True)  # permutations of the same ops are one candidate
    fitness, calls, _ = _additive_fitness(space, seed=2)
    keys = lambda: [space.canonical_key(a) for a in calls]  # noqa: E731
    res = evolutionary_search(space, None, fitness, config=SMALL,
                              generator=torch.Generator().manual_seed(3))
    assert len(keys()) == len(set(keys())) == len(res.evaluated)  # each key evaluated once
    again = evolutionary_search(space, None, _additive_fitness(space, seed=2)[0], config=SMALL,
                                generator=torch.Generator().manual_seed(3))
    assert again.history == res.history and again.best_arch == res.best_arch
    # replay with the saved cache: no new evaluation, same result
    calls.clear()
    replay = evolutionary_search(space, None, fitness, config=SMALL, cache=res.evaluated,
                                 generator=torch.Generator().manual_seed(3))
    assert calls == [] and replay.history == res.history


def test_small_union_does_not_hang():
    space = FakeSpace(n=2, ops=("a", "b", "c"))
    leaves = [_m(space, d0="a", d1="ab")]  # 2 archs only
    fitness, calls, _ = _additive_fitness(space)
    res = evolutionary_search(space, leaves, fitness, config=SMALL,
                              generator=torch.Generator().manual_seed(0))
    assert len(res.evaluated) == 2 and res.best_arch["d0"] == "a"
    rs = random_search(space, leaves, fitness, num_samples=10, generator=torch.Generator())
    assert len(rs.evaluated) == 2


def test_random_search_unique_and_best():
    space = _space()
    fitness, calls, _ = _additive_fitness(space)
    res = random_search(space, None, fitness, num_samples=100,
                        generator=torch.Generator().manual_seed(0))
    assert len(calls) == 100 == len({space.canonical_key(a) for a in calls})
    assert res.best_fitness == max(fitness(a) for a in calls[:100])
    assert res.to_dict(space)["num_evaluated"] == 100


@pytest.mark.parametrize("kw, msg", [
    (dict(parents=60), r"parents \(60\) > population"),
    (dict(population=0), "population"),
    (dict(mutation_prob=1.5), "mutation_prob"),
    (dict(generations=-1), "generations"),
    (dict(parents=1), "crossover needs parents >= 2"),
    (dict(newcomers=2.5), "newcomers"),
    (dict(crossover=True), "crossover"),
])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        EvolutionConfig(**kw).validate()
    space = _space()
    with pytest.raises(ValueError, match=msg):
        evolutionary_search(space, None, lambda a: 0.0, config=EvolutionConfig(**kw),
                            generator=torch.Generator())


def test_bad_fitness_and_masks():
    space = _space()
    with pytest.raises(ValueError, match="fitness of"):
        evolutionary_search(space, None, lambda a: float("nan"), config=SMALL,
                            generator=torch.Generator())
    bad = space.full_mask()
    bad["d3"] = torch.zeros(5, dtype=torch.bool)
    with pytest.raises(ValueError, match="disabled"):
        random_search(space, [bad], lambda a: 0.0, num_samples=3, generator=torch.Generator())
    with pytest.raises(ValueError, match="num_samples"):
        random_search(space, None, lambda a: 0.0, num_samples=0, generator=torch.Generator())


def test_nb201_isomorphic_candidates_evaluated_once():
    space = NB201Space(C=4, N=1)
    calls = []

    def fitness(arch):
        calls.append(space.canonical_key(arch))
        return float(sum(len(v) for v in arch.values()))

    evolutionary_search(space, None, fitness, config=SMALL, generator=torch.Generator().manual_seed(0))
    assert len(calls) == len(set(calls))


@pytest.mark.data
def test_nb201_evolution_on_the_real_benchmark(nb201_bench):
    """Ground-truth fitness (cifar10_valid_acc): the default evolution reaches the top 0.5 %."""
    space, bench = nb201_bench
    res = evolutionary_search(space, None, lambda a: bench.acc(a),
                              generator=torch.Generator().manual_seed(0))
    accs = sorted(bench.values("cifar10_valid_acc"), reverse=True)
    assert res.best_fitness >= accs[int(0.005 * len(accs))]
    assert res.best_fitness == bench.acc(res.best_arch)
