"""Exact min-cut against brute force; spectral / GMM validity; edge rules; similarity oracles."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from naslid.split import (SplitConfig, choose_decision, gmm_partition, mincut_partition, partition_scores,
                          random_partition, set_partitions, similarity_matrix, spectral_partition, stirling2)
from naslid.split.partition import PartitionResult


def _random_sim(n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-1, 1, size=(n, n))
    s = (a + a.T) / 2
    np.fill_diagonal(s, 1.0)
    return s


def _brute_force(s: np.ndarray, g: int, balanced: bool = False) -> tuple[float, set]:
    """Independent oracle: every labelling in product(range(g))**n, keep those using all g labels,
    score by a double loop; returns best score and the set of canonical optimal partitions."""
    n = s.shape[0]
    best, winners = -np.inf, set()
    for lab in itertools.product(range(g), repeat=n):
        if len(set(lab)) != g:
            continue
        if balanced:
            sizes = [lab.count(c) for c in range(g)]
            if max(sizes) - min(sizes) > 1:
                continue
        w = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                if lab[i] == lab[j]:
                    w += s[i, j]
        canon = frozenset(frozenset(i for i in range(n) if lab[i] == c) for c in range(g))
        if w > best + 1e-12:
            best, winners = w, {canon}
        elif abs(w - best) <= 1e-12:
            winners.add(canon)
    return best, winners


@pytest.mark.parametrize("n", range(2, 9))
@pytest.mark.parametrize("g", [2, 3, 4])
def test_mincut_equals_brute_force(n, g):
    if g > n:
        pytest.skip("more groups than ops")
    rng = np.random.default_rng(1000 * n + g)
    for _ in range(3):
        s = _random_sim(n, rng)
        res = mincut_partition(s, g)
        best, winners = _brute_force(s, g)
        assert res.within == pytest.approx(best, abs=1e-9)
        assert frozenset(frozenset(x) for x in res.groups) in winners
        assert len(res.groups) == g and all(res.groups)
        assert sorted(i for grp in res.groups for i in grp) == list(range(n))
        # within + between = all pairs
        assert res.within + res.between == pytest.approx(s[np.triu_indices(n, 1)].sum(), abs=1e-9)


@pytest.mark.parametrize("n,g", [(5, 2), (6, 3), (7, 2), (7, 3)])
def test_balanced_mincut_equals_brute_force(n, g):
    rng = np.random.default_rng(n * 7 + g)
    s = _random_sim(n, rng)
    res = mincut_partition(s, g, balanced=True)
    best, winners = _brute_force(s, g, balanced=True)
    assert res.within == pytest.approx(best, abs=1e-9)
    assert frozenset(frozenset(x) for x in res.groups) in winners
    sizes = [len(x) for x in res.groups]
    assert max(sizes) - min(sizes) <= 1


def test_set_partitions_count_and_uniqueness():
    for n in range(1, 9):
        for g in range(1, n + 1):
            parts = list(set_partitions(n, g))
            assert len(parts) == stirling2(n, g)
            assert len(set(parts)) == len(parts)
    assert stirling2(5, 2) == 15 and stirling2(8, 4) == 1701


def test_mincut_finds_planted_blocks():
    # ops {0, 2, 4} alike, {1, 3} alike, weak across
    s = np.full((5, 5), 0.1)
    for grp in ([0, 2, 4], [1, 3]):
        for i in grp:
            for j in grp:
                s[i, j] = 0.9
    np.fill_diagonal(s, 1)
    res = mincut_partition(s, 2)
    assert res.groups == [[0, 2, 4], [1, 3]]
    assert res.within == pytest.approx(0.9 * 4)
    assert res.between == pytest.approx(0.1 * 6)
    assert res.between_distance == pytest.approx(0.9 * 6)


@pytest.mark.parametrize("method", ["spectral", "gmm"])
@pytest.mark.parametrize("n,g", [(2, 2), (3, 2), (5, 2), (5, 3), (7, 4)])
def test_spectral_and_gmm_return_valid_partitions(method, n, g):
    rng = np.random.default_rng(n + 10 * g)
    feats = rng.normal(size=(n, 17))
    s = similarity_matrix(torch.from_numpy(feats), "cosine")
    if method == "spectral":
        res = spectral_partition(s, g, seed=3)
    else:
        res = gmm_partition(s, feats, g, seed=3)
    assert len(res.groups) == g and all(res.groups)
    assert sorted(i for grp in res.groups for i in grp) == list(range(n))
    w, b, nb = partition_scores(s, res.groups)
    assert (res.within, res.between, res.n_between_pairs) == (w, b, nb)
    again = spectral_partition(s, g, seed=3) if method == "spectral" else gmm_partition(s, feats, g, seed=3)
    assert again.groups == res.groups  # seeded: deterministic


def test_spectral_separates_planted_blocks():
    s = np.full((6, 6), 0.05)
    for grp in ([0, 1, 5], [2, 3, 4]):
        for i in grp:
            for j in grp:
                s[i, j] = 0.95
    res = spectral_partition(s, 2, seed=0)
    assert res.groups == [[0, 1, 5], [2, 3, 4]]


def test_random_partition_seeded_and_valid():
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    seen = set()
    for _ in range(40):
        a = random_partition(5, 2, g1)
        assert a == random_partition(5, 2, g2)
        assert len(a) == 2 and sorted(sum(a, [])) == list(range(5))
        seen.add(tuple(map(tuple, a)))
    assert len(seen) > 5  # actually random


@pytest.mark.parametrize("bad", [
    lambda: mincut_partition(np.eye(3), 4),
    lambda: mincut_partition(np.eye(3), 1),
    lambda: mincut_partition(np.ones((3, 4)), 2),
    lambda: mincut_partition(np.array([[1, np.nan], [np.nan, 1]]), 2),
    lambda: mincut_partition(np.eye(30), 5),
    lambda: spectral_partition(np.eye(2), 3),
])
def test_partition_bad_input(bad):
    with pytest.raises(ValueError, match="partition"):
        bad()


# ----------------------------------------------------------------------------------------- edge rules
def _res(within, between, nb):
    return PartitionResult([[0], [1]], within, between, nb, "mincut")


def test_edge_rules_pick_what_they_claim():
    # A: most within similarity; B: most between similarity; C: most between distance (many pairs)
    results = {"A": _res(5.0, 0.5, 4), "B": _res(1.0, 3.0, 4), "C": _res(2.0, 1.0, 6)}
    assert choose_decision(results, "paper") == ("A", {"A": 5.0, "B": 1.0, "C": 2.0})
    key, vals = choose_decision(results, "code")
    assert key == "B" and vals["B"] == 3.0
    key, vals = choose_decision(results, "gm")
    assert key == "C" and vals == {"A": 3.5, "B": 1.0, "C": 5.0}


def test_edge_rules_on_constructed_similarity_matrices():
    # decision X: two tight clusters -> high within; decision Y: everything alike -> high between
    x = np.array([[1, .95, .0, .0], [.95, 1, .0, .0], [.0, .0, 1, .95], [.0, .0, .95, 1]])
    y = np.full((4, 4), 0.6); np.fill_diagonal(y, 1)
    z = np.full((4, 4), -0.5); np.fill_diagonal(z, 1)  # mutually dissimilar -> largest GM distance
    res = {k: mincut_partition(m, 2) for k, m in (("X", x), ("Y", y), ("Z", z))}
    assert res["X"].groups == [[0, 1], [2, 3]]
    assert res["X"].within == pytest.approx(1.9) and res["Y"].within == pytest.approx(1.8)
    assert choose_decision(res, "paper")[0] == "X"
    assert choose_decision(res, "code")[0] == "Y"
    assert choose_decision(res, "gm")[0] == "Z"


def test_edge_rule_ties_go_to_first_and_bad_rule():
    r = {"b": _res(1, 1, 1), "a": _res(1, 1, 1)}
    assert choose_decision(r, "paper")[0] == "b"
    with pytest.raises(ValueError, match="rule"):
        choose_decision(r, "best")
    with pytest.raises(ValueError, match="empty"):
        choose_decision({}, "paper")


# ----------------------------------------------------------------------------------------- similarity
def test_similarity_oracles():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 40))
    t = torch.from_numpy(v).float()
    cos = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in v] for a in v])
    np.testing.assert_allclose(similarity_matrix(t, "cosine"), cos, atol=1e-6)
    np.testing.assert_allclose(similarity_matrix(t, "correlation"), np.corrcoef(v), atol=1e-6)
    euc = np.array([[1 / (1 + np.linalg.norm(a - b)) for b in v] for a in v])
    np.testing.assert_allclose(similarity_matrix(t, "euclidean"), euc, atol=1e-6)


def test_similarity_degenerate_vectors_are_finite():
    v = torch.tensor([[0.0, 0, 0], [1.0, 2, 3], [2.0, 2, 2]])
    for m in ("cosine", "correlation", "euclidean"):
        s = similarity_matrix(v, m)
        assert np.isfinite(s).all() and np.allclose(np.diag(s), 1)
    with pytest.raises(ValueError, match="method"):
        similarity_matrix(v, "manhattan")
    with pytest.raises(ValueError, match="NaN"):
        similarity_matrix(torch.tensor([[float("nan"), 1.0]]), "cosine")


def test_similarity_long_vectors_chunked():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 200_000, generator=g)
    ref = torch.nn.functional.cosine_similarity(v.double()[:, None], v.double()[None], dim=-1).numpy()
    np.testing.assert_allclose(similarity_matrix(v, "cosine"), ref, atol=1e-10)


# ----------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("kw,name", [
    (dict(criterion="ID"), "criterion"), (dict(repeats=0), "repeats"), (dict(similarity="mse"), "similarity"),
    (dict(partition="cut"), "partition"), (dict(n_groups=1), "n_groups"), (dict(edge_rule="max"), "edge_rule"),
    (dict(k=0), "k"), (dict(lid_estimator="mle"), "lid_estimator"), (dict(lid_backend="gpu"), "lid_backend"),
    (dict(bn_mode="frozen"), "bn_mode"), (dict(average="median"), "average"), (dict(balanced=1), "balanced"),
    (dict(repeats=True), "repeats"),
])
def test_config_bad_values(kw, name):
    with pytest.raises(ValueError, match=name):
        SplitConfig(**kw)


def test_config_roundtrip_and_resolution():
    c = SplitConfig(criterion="grad", repeats=3, similarity="euclidean")
    assert SplitConfig.from_dict(c.to_dict()) == c
    assert c.resolved_edge_rule == "gm" and c.resolved_similarity == "cosine"
    assert SplitConfig().resolved_edge_rule == "paper"
    assert SplitConfig(criterion="grad", edge_rule="paper").resolved_edge_rule == "paper"
    with pytest.raises(ValueError, match="unknown options"):
        SplitConfig.from_dict({"criterion": "lid", "foo": 1})


def test_similarity_accepts_a_list_of_rows_without_stacking():
    g = torch.Generator().manual_seed(1)
    rows = [torch.randn(70_000, generator=g) for _ in range(4)]
    for m in ("cosine", "correlation", "euclidean"):
        np.testing.assert_allclose(similarity_matrix(rows, m), similarity_matrix(torch.stack(rows), m), atol=1e-12)
    with pytest.raises(ValueError, match="different lengths"):
        similarity_matrix([torch.ones(3), torch.ones(4)], "cosine")
