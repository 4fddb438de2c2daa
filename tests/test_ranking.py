"""Benchmark reading (naslid.groundtruth.table) and ranking quality (naslid.ranking)."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from fake_space import FakeSpace
from naslid.groundtruth.table import Benchmark, load_benchmark, load_csv_benchmark
from helpers import SHARED_DATA
from naslid.ranking import (best_arch_benchmark, bootstrap_indices, bootstrap_kendall_ci,
                            bootstrap_kendall_taus, check_sample_request, count_ties, precision_at,
                            rank_correlations, ranking_metrics, ranking_report, sample_classes,
                            sample_stratified_archs, sample_unique_archs, top_archs)



# ------------------------------------------------------------------------------------------------
# correlations against naive float64 oracles and scipy
# ------------------------------------------------------------------------------------------------
def _kendall_tau_b(x, y):
    """O(n^2) tau-b: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    n = len(x)
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(n), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            c += 1
        else:
            d += 1
    return (c - d) / math.sqrt((c + d + tx) * (c + d + ty))


def _avg_ranks(v):
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def _spearman(x, y):
    rx, ry = _avg_ranks(x), _avg_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum()))


@pytest.mark.parametrize("n, ties", [(10, False), (40, True), (2, False)])
def test_rank_correlations_match_oracles(n, ties):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    if ties:
        x, y = np.round(x), np.round(y * 2) / 2
    r = rank_correlations(x, y)
    assert r["n"] == n
    assert r["kendall_tau"] == pytest.approx(_kendall_tau_b(x, y), abs=1e-12)
    assert r["spearman_rho"] == pytest.approx(_spearman(x, y), abs=1e-12)
    assert r["kendall_tau"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert r["spearman_p"] is None or 0.0 <= r["spearman_p"] <= 1.0


def test_rank_correlations_edge_cases():
    assert rank_correlations([1, 2, 3], [3, 2, 1])["kendall_tau"] == pytest.approx(-1.0)
    r = rank_correlations([1, 2, float("nan"), 4], [1, 2, 3, float("nan")])
    assert r["n"] == 2 and r["kendall_tau"] == pytest.approx(1.0)
    const = rank_correlations([1, 1, 1], [1, 2, 3])
    assert const["kendall_tau"] is None and const["spearman_rho"] is None and const["n"] == 3
    assert rank_correlations([], [])["n"] == 0
    with pytest.raises(ValueError, match="equal-length"):
        rank_correlations([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------------------------------
# benchmark CSV
# ------------------------------------------------------------------------------------------------
def _fake_csv(tmp_path, space, *, rows=None, header="idx,arch,a_acc,b_acc,params", name="b.csv"):
    if rows is None:
        archs = list(space.all_archs())
        rows = []
        for i, a in enumerate(archs):
            s = space.arch_to_string(a)
            score = sum(space.decisions[k].index(v) * 10 ** j for j, (k, v) in enumerate(a.items()))
            rows.append(f"{i},{s},{score},{-score + (i % 3)},{i * 0.5}")
    p = tmp_path / name
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


def test_csv_benchmark_reads_columns_and_looks_up(tmp_path):
    space = FakeSpace(n=3, ops=("x", "y", "z"))
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    assert len(b) == 27 and b.acc_columns == ["a_acc", "b_acc"]
    assert b.columns == ["idx", "a_acc", "b_acc", "params"]
    arch = {"d0": "z", "d1": "x", "d2": "y"}  # score 2 + 0 * 10 + 1 * 100
    row = b.lookup(arch)
    assert row["a_acc"] == 102.0 and isinstance(row["idx"], int) and row["params"] == row["idx"] * 0.5
    assert b.lookup(space.arch_to_string(arch)) == row
    assert b.acc(arch) == 102.0 and b.acc(arch, "b_acc") == row["b_acc"]
    assert arch in b
    assert best_arch_benchmark(b, arch) == row
    with pytest.raises(ValueError, match="unknown column"):
        b.acc(arch, "params")


@pytest.mark.parametrize("header, rows, msg", [
    ("idx,name,a_acc", ["0,d0=x|d1=x|d2=x,1"], r"no 'arch' column"),
    ("idx,arch,params", ["0,d0=x|d1=x|d2=x,1"], r"no '\*_acc'"),
    ("idx,arch,a_acc", ["0,d0=x|d1=x|d2=x,1", "1,d0=x|d1=w|d2=x,2"], r"line 3: arch 'd0=x\|d1=w\|d2=x' is not in"),
    ("idx,arch,a_acc", ["0,d0=x|d1=x|d2=x,1", "1,garbage,2"], r"line 3"),
    ("idx,arch,a_acc", ["0,d0=x|d1=x|d2=x,1", "1,d0=x|d1=x|d2=x,2"], r"line 3.*duplicates line 2"),
    ("idx,arch,a_acc", ["0,d0=x|d1=x|d2=x,high"], r"line 2: column 'a_acc' value 'high'"),
    ("idx,arch,a_acc", ["0,d0=x|d1=x|d2=x"], r"line 2 has 2 fields"),
    ("idx,arch,a_acc", [], r"no data rows"),
])
def test_csv_benchmark_bad_input(tmp_path, header, rows, msg):
    space = FakeSpace(n=3, ops=("x", "y", "z"))
    p = _fake_csv(tmp_path, space, header=header, rows=rows, name="bad.csv")
    with pytest.raises(ValueError, match=msg) as e:
        load_csv_benchmark(p, space)
    assert "bad.csv" in str(e.value)


def test_csv_benchmark_missing_file_and_empty_acc(tmp_path):
    space = FakeSpace(n=1, ops=("x", "y", "z"))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_benchmark(tmp_path / "nope.csv", space)
    p = _fake_csv(tmp_path, space, header="arch,a_acc", rows=["d0=x,1", "d0=y,", "d0=z,3"])
    b = load_csv_benchmark(p, space)
    assert math.isnan(b.acc({"d0": "y"}))
    r = ranking_report(b, lambda a: float(a["d0"] == "z"), top_fraction=1.0, sample_size=3,
                       sample="uniform", yardsticks=())
    assert r["sample"]["columns"]["a_acc"]["score"]["n"] == 2  # the NaN row is dropped
    # stratified sampling drops NaN classes up front: 2 are left
    r = ranking_report(b, lambda a: float(a["d0"] == "z"), sample_size=2, yardsticks=())
    assert r["sample"]["n"] == 2 and r["sample"]["columns"]["a_acc"]["score"]["n"] == 2
    with pytest.raises(ValueError, match="asks for 3 cells but the benchmark has 2 isomorphism"):
        ranking_report(b, lambda a: 1.0, sample_size=3, yardsticks=())
    assert best_arch_benchmark(b, {"d0": "y"}) == {"a_acc": None}


# ------------------------------------------------------------------------------------------------
# the new metrics against brute-force oracles
# ------------------------------------------------------------------------------------------------
def _top_marginals(v, k):
    """P(cell in the top k) under uniformly random tie-breaking, by enumerating every order."""
    n = len(v)
    hits = np.zeros(n)
    perms = list(itertools.permutations(range(n)))
    for perm in perms:
        tb = {c: r for r, c in enumerate(perm)}
        order = sorted(range(n), key=lambda i: (-v[i], tb[i]))
        hits[order[:k]] += 1
    return hits / len(perms)


@pytest.mark.parametrize("pred, true", [
    ([5, 4, 3, 2, 1, 0, -1], [6, 5, 4, 3, 2, 1, 0]),        # no ties: plain top-k overlap
    ([1, 1, 1, 0, 0, 0, 0], [3, 2, 1, 0, 0, 0, 0]),          # ties at the predictor's cut
    ([2, 2, 1, 1, 0, 5, 5], [1, 1, 1, 0, 9, 9, 0]),          # ties at both cuts
])
def test_precision_at_matches_brute_force(pred, true):
    n = len(pred)
    for frac in (0.1, 0.3, 0.5):
        k = math.ceil(frac * n)
        want = float((_top_marginals(pred, k) * _top_marginals(true, k)).sum() / k)
        assert precision_at(pred, true, frac) == pytest.approx(want, abs=1e-12)
    # ceil(0.1 * 7) = 1: the best predicted cell is the truth's best
    assert precision_at([5, 4, 3, 2, 1, 0, -1], [6, 5, 4, 3, 2, 1, 0]) == 1.0
    assert precision_at([0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0]) == 0.0


def test_precision_at_10_of_a_plain_example():
    # 20 cells: k = 2; the predictor's top-2 are cells 0 and 19, the truth's top-2 are 0 and 1
    truth = list(range(20, 0, -1))
    pred = [100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 99]
    assert precision_at(pred, truth, 0.1) == 0.5


def test_bootstrap_taus_match_a_loop_over_resamples():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=15))          # heavy ties in the predictor
    y = np.round(x + rng.normal(size=15), 1)
    idx = bootstrap_indices(15, 60, seed=7)
    assert idx.shape == (60, 15)
    want = np.array([np.nan if (np.all(x[i] == x[i][0]) or np.all(y[i] == y[i][0]))
                     else _kendall_tau_b(x[i], y[i]) for i in idx])
    for method in ("matrix", "scipy", "auto"):
        got = bootstrap_kendall_taus(x, y, 60, seed=7, method=method)
        np.testing.assert_allclose(got, want, atol=1e-9, equal_nan=True)
    lo, hi = bootstrap_kendall_ci(x, y, 60, seed=7)
    ok = want[np.isfinite(want)]
    assert [lo, hi] == pytest.approx(list(np.percentile(ok, [2.5, 97.5])), abs=1e-9)
    assert lo <= _kendall_tau_b(x, y) <= hi
    assert bootstrap_kendall_ci([1, 1, 1], [1, 2, 3]) is None
    assert bootstrap_kendall_ci([1], [1]) is None


def test_ranking_metrics_fields_against_oracles():
    truth = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    pred = [3, 5, 5, 1, 0, 2, 2, 2, -1, -2]
    m = ranking_metrics(pred, truth, seed=0)
    assert list(m) == ["n", "kendall_tau", "kendall_tau_ci95", "kendall_p", "spearman_rho",
                       "spearman_p", "precision_at_10", "tau_top_half", "ties"]
    assert m["n"] == 10 and m["ties"] == 5  # 5, 5 and 2, 2, 2
    assert m["kendall_tau"] == pytest.approx(_kendall_tau_b(pred, truth), abs=1e-12)
    assert m["spearman_rho"] == pytest.approx(_spearman(pred, truth), abs=1e-12)
    # top half of the truth: 9..5 (>= median 4.5), i.e. the first 5 cells
    assert m["tau_top_half"] == pytest.approx(_kendall_tau_b(pred[:5], truth[:5]), abs=1e-12)
    # k = 1: the predictor's top cell is a tie between cells 1 and 2, neither the truth's best
    assert m["precision_at_10"] == 0.0
    lo, hi = m["kendall_tau_ci95"]
    assert -1 <= lo <= m["kendall_tau"] <= hi <= 1
    # a perfect predictor (the truth itself)
    p = ranking_metrics(truth, truth)
    assert p["kendall_tau"] == pytest.approx(1.0) and p["tau_top_half"] == pytest.approx(1.0)
    assert p["precision_at_10"] == 1.0 and p["ties"] == 0
    assert p["kendall_tau_ci95"] == pytest.approx([1.0, 1.0])
    # undefined: a constant predictor, no cells
    c = ranking_metrics([1.0] * 10, truth)
    assert c["kendall_tau"] is None and c["kendall_tau_ci95"] is None and c["ties"] == 10
    assert c["precision_at_10"] == pytest.approx(0.1)  # 1 of 10 tied cells drawn at random
    e = ranking_metrics([], [])
    assert e["n"] == 0 and e["precision_at_10"] is None and e["tau_top_half"] is None
    assert count_ties([1, 2, 2, float("nan"), float("nan"), 3, 3, 3]) == 5


# ------------------------------------------------------------------------------------------------
# subsets and the report
# ------------------------------------------------------------------------------------------------
class CountingSpace(FakeSpace):
    """FakeSpace with analytic yardsticks: params = 10 * #x + #y, MACs = #x (many ties)."""

    def count_params(self, arch):
        a = self.arch_from_string(arch) if isinstance(arch, str) else self.validate_arch(arch)
        return 10 * sum(v == "x" for v in a.values()) + sum(v == "y" for v in a.values())

    def count_macs(self, arch, input_size=None):
        a = self.arch_from_string(arch) if isinstance(arch, str) else self.validate_arch(arch)
        return sum(v == "x" for v in a.values())


def test_top_archs_and_unique_sample(tmp_path):
    space = FakeSpace(n=3, ops=("x", "y", "z"), symmetric=True)
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    top = top_archs(b, 0.2)  # floor(0.2 * 27) = 5
    ref = sorted(b.arch_strings, key=lambda s: -b.acc(s))[:5]
    assert top == ref
    assert top_archs(b, 0.2, "b_acc") == sorted(b.arch_strings, key=lambda s: -b.acc(s, "b_acc"))[:5]
    assert top_archs(b, 0.2, "b_acc")[0] == "d0=x|d1=x|d2=x"  # b_acc = -0 + 0 % 3 = 0: the max
    assert len(top_archs(b, 0.01)) == 2  # at least 2
    s = sample_unique_archs(b, 100, seed=0)
    keys = [space.canonical_key(space.arch_from_string(a)) for a in s]
    assert len(s) == 10 == len(set(keys))  # multisets of 3 from 3 ops: C(5, 3) = 10
    # the representative of a class is its first row in file order
    first = {}
    for a in b.arch_strings:
        first.setdefault(space.canonical_key(space.arch_from_string(a)), a)
    assert sorted(s) == sorted(first.values())
    assert sample_unique_archs(b, 4, seed=1) == sample_unique_archs(b, 4, seed=1)
    assert sample_unique_archs(b, 4, seed=1) != sample_unique_archs(b, 4, seed=2)
    with pytest.raises(ValueError, match="fraction"):
        top_archs(b, 0.0)


def test_stratified_sample_spans_the_truth(tmp_path):
    space = FakeSpace(n=3, ops=("x", "y", "z"), symmetric=True)
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    first = {}
    for a in b.arch_strings:
        first.setdefault(space.canonical_key(space.arch_from_string(a)), a)
    by_truth = sorted(first.values(), key=lambda a: (b.acc(a), b.arch_strings.index(a)))
    # every class once: the whole sorted list
    assert sample_stratified_archs(b, 10, seed=3) == by_truth
    # 5 of 10 classes: one from each pair of consecutive classes (bins of 2)
    for seed in range(5):
        s = sample_stratified_archs(b, 5, seed=seed)
        assert [by_truth.index(a) // 2 for a in s] == [0, 1, 2, 3, 4]
        keys = [space.canonical_key(space.arch_from_string(a)) for a in s]
        assert len(set(keys)) == 5
    assert sample_stratified_archs(b, 5, seed=1) == sample_stratified_archs(b, 5, seed=1)
    assert len({tuple(sample_stratified_archs(b, 5, seed=k)) for k in range(6)}) > 1
    # by another column
    s = sample_stratified_archs(b, 10, seed=0, column="b_acc")
    assert [b.acc(a, "b_acc") for a in s] == sorted(b.acc(a, "b_acc") for a in s)
    with pytest.raises(ValueError, match="asks for 11 cells but the benchmark has 10 isomorphism classes"):
        sample_stratified_archs(b, 11)


def test_ranking_report_values_and_json(tmp_path):
    space = FakeSpace(n=3, ops=("x", "y", "z"))
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    calls = []

    def predict(arch):
        calls.append(space.arch_to_string(arch))
        return 3.0 * b.acc(arch) + 1.0  # a monotone transform of a_acc

    r = ranking_report(b, predict, top_fraction=0.2, sample_size=20, seed=0, sample="uniform",
                       yardsticks=())
    json.dumps(r, allow_nan=False)
    assert r["top"]["columns"]["a_acc"]["score"]["kendall_tau"] == pytest.approx(1.0)
    assert r["top"]["columns"]["a_acc"]["score"]["n"] == 5
    assert r["sample"]["columns"]["a_acc"]["score"]["spearman_rho"] == pytest.approx(1.0)
    assert r["sample"]["columns"]["a_acc"]["score"]["precision_at_10"] == 1.0
    assert {k: r["sample"][k] for k in ("size_requested", "n", "seed", "method", "unique_by")} == {
        "size_requested": 20, "n": 20, "seed": 0, "method": "uniform", "unique_by": "canonical_key"}
    assert len(calls) == len(set(calls))  # each arch predicted once
    sample = sample_unique_archs(b, 20, seed=0)
    pred = [3.0 * b.acc(s) + 1.0 for s in sample]
    bb = [b.acc(s, "b_acc") for s in sample]
    got = r["sample"]["columns"]["b_acc"]["score"]
    assert got["kendall_tau"] == pytest.approx(stats.kendalltau(pred, bb).statistic)
    assert got["spearman_rho"] == pytest.approx(stats.spearmanr(pred, bb).statistic)
    assert [p[0] for p in r["points"]["sample"]] == sample
    assert r["points"]["sample"][0][1] == {"score": pred[0]}
    assert r["points"]["sample"][0][2] == {"a_acc": b.acc(sample[0]), "b_acc": bb[0]}
    assert r["points"]["top"]["a_acc"][0] == [top_archs(b, 0.2)[0], {"score": 3 * b.acc(top_archs(b, 0.2)[0]) + 1},
                                              b.acc(top_archs(b, 0.2)[0])]
    # a mapping works as well; "first" uses a_acc's top set for both columns
    table = {s: 3.0 * b.acc(s) + 1.0 for s in b.arch_strings}
    r2 = ranking_report(b, table, top_fraction=0.2, top_by="first", sample_size=20, sample="uniform",
                        yardsticks=())
    assert r2["sample"] == r["sample"]
    assert [p[0] for p in r2["points"]["top"]["b_acc"]] == top_archs(b, 0.2)
    assert "points" not in ranking_report(b, table, sample_size=5, yardsticks=(), include_points=False)
    with pytest.raises(ValueError, match="top_by"):
        ranking_report(b, table, top_by="all")


def test_ranking_report_named_scores_and_yardsticks(tmp_path):
    space = CountingSpace(n=3, ops=("x", "y", "z"))
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    calls = []

    def predict(arch):
        calls.append(space.arch_to_string(arch))
        return {"acc": b.acc(arch), "neg_loss": -float(space.count_params(arch))}

    r = ranking_report(b, predict, top_fraction=0.2, sample_size=12, seed=4)
    json.dumps(r, allow_nan=False)
    assert len(calls) == len(set(calls))
    assert r["sample"]["method"] == "stratified" and r["sample"]["yardsticks"] == ["params", "flops"]
    for subset in ("top", "sample"):
        for col, per in r[subset]["columns"].items():
            assert list(per) == ["acc", "neg_loss", "params", "flops"]
            # neg_loss = -params: the mirror image
            if per["params"]["kendall_tau"] is not None:
                assert per["neg_loss"]["kendall_tau"] == pytest.approx(-per["params"]["kendall_tau"])
    sample = sample_stratified_archs(b, 12, seed=4)
    assert [p[0] for p in r["points"]["sample"]] == sample
    for s, vals, _ in r["points"]["sample"]:
        assert vals == {"acc": b.acc(s), "neg_loss": -space.count_params(s),
                        "params": space.count_params(s), "flops": space.count_macs(s)}
    params = [space.count_params(s) for s in sample]
    flops = [space.count_macs(s) for s in sample]
    a = [b.acc(s) for s in sample]
    m = r["sample"]["columns"]["a_acc"]
    assert m["params"]["kendall_tau"] == pytest.approx(_kendall_tau_b(params, a), abs=1e-12)
    assert m["flops"]["kendall_tau"] == pytest.approx(_kendall_tau_b(flops, a), abs=1e-12)
    assert m["flops"]["ties"] == count_ties(flops) > 0
    assert m["acc"]["kendall_tau"] == pytest.approx(1.0) and m["acc"]["precision_at_10"] == 1.0
    # a mapping of named scores; a plain-float mapping is "score"
    table = {s: {"acc": b.acc(s)} for s in b.arch_strings}
    assert list(ranking_report(b, table, sample_size=5, yardsticks=["flops"])["sample"]["columns"]["a_acc"]) == ["acc", "flops"]


def test_ranking_report_yardsticks_a_space_cannot_count(tmp_path):
    space = FakeSpace(n=2, ops=("x", "y", "z"))  # count_params / count_macs not implemented
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    r = ranking_report(b, lambda a: b.acc(a), sample_size=5)
    assert r["sample"]["yardsticks"] == [] and set(r["sample"]["yardsticks_skipped"]) == {"params", "flops"}
    assert list(r["sample"]["columns"]["a_acc"]) == ["score"]
    assert all(list(p[1]) == ["score"] for p in r["points"]["sample"])
    json.dumps(r, allow_nan=False)


def test_ranking_report_errors(tmp_path):
    space = FakeSpace(n=3, ops=("x", "y", "z"), symmetric=True)  # 10 classes
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    f = lambda a: b.acc(a)  # noqa: E731
    for method in ("stratified", "uniform"):
        with pytest.raises(ValueError, match=r"benchmark\.sample_size asks for 11 cells but the "
                                             r"benchmark has 10 isomorphism classes"):
            ranking_report(b, f, sample_size=11, sample=method, yardsticks=())
    assert sample_classes(b, "uniform") == sample_classes(b) == 10
    check_sample_request(b, 10, "uniform")
    with pytest.raises(ValueError, match="asks for 11 cells"):
        check_sample_request(b, 11)
    with pytest.raises(ValueError, match=r"benchmark\.sample .*stratified, uniform.*'random'"):
        ranking_report(b, f, sample="random")
    with pytest.raises(ValueError, match=r"unknown yardstick.*'macs'"):
        ranking_report(b, f, yardsticks=("params", "macs"))
    with pytest.raises(ValueError, match="sample_size must be a positive int"):
        ranking_report(b, f, sample_size=0)
    flip = iter(range(1000))
    with pytest.raises(ValueError, match=r"predict returned scores \['b'\].*\['a'\] before"):
        ranking_report(b, lambda a: {"a" if next(flip) == 0 else "b": 1.0}, sample_size=5, yardsticks=())
    with pytest.raises(ValueError, match="clash with the yardsticks"):
        ranking_report(CountingBench(tmp_path), lambda a: {"params": 1.0}, sample_size=5)
    with pytest.raises(ValueError, match="no predicted score for"):
        ranking_report(b, {b.arch_strings[0]: 1.0}, sample_size=5, yardsticks=())
    with pytest.raises(ValueError, match="not a number"):
        ranking_report(b, lambda a: {"acc": "high"}, sample_size=5, yardsticks=())


def CountingBench(tmp_path):
    space = CountingSpace(n=2, ops=("x", "y", "z"))
    return load_csv_benchmark(_fake_csv(tmp_path, space, name="counting.csv"), space)


# ------------------------------------------------------------------------------------------------
# the real NB201 benchmark (`naslid data nb201`; the nb201_bench fixture is in conftest.py)
# ------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_nb201_csv_top1_and_sample(nb201_bench):
    space, b = nb201_bench
    assert len(b) == 15625 and b.acc_columns == ["cifar10_valid_acc"]
    top = top_archs(b, 0.01)
    assert len(top) == 156
    assert b.acc(top[0]) == pytest.approx(91.6067)
    best = best_arch_benchmark(b, top[0])
    assert set(best) == {"index", "cifar10_valid_acc", "params_m_cifar10", "n_seeds", "unique_id"}
    sample = sample_unique_archs(b, 500, seed=0)
    assert len(sample) == 500
    # independent check of uniqueness: the benchmark's own isomorphism ids are all distinct
    assert len({b.lookup(s)["unique_id"] for s in sample}) == 500
    rng = np.random.default_rng(0)
    noisy = {s: b.acc(s) + rng.normal(0, 1.0) for s in b.arch_strings}
    r = ranking_report(b, noisy, sample="uniform")
    col = r["sample"]["columns"]["cifar10_valid_acc"]["score"]
    assert col["n"] == 500 and 0.3 < col["kendall_tau"] < 0.95
    assert r["top"]["columns"]["cifar10_valid_acc"]["score"]["n"] == 156


@pytest.mark.data
def test_nb201_stratified_sample_and_params_yardstick(nb201_bench):
    space, b = nb201_bench
    truth = {s: b.acc(s) for s in b.arch_strings}
    r = ranking_report(b, truth, sample_size=500, seed=0)  # a perfect predictor + the yardsticks
    s = r["sample"]
    assert s["n"] == 500 and s["method"] == "stratified"
    archs = [p[0] for p in r["points"]["sample"]]
    # unique by the benchmark's own isomorphism ids; each the first row of its class
    ids = [b.lookup(a)["unique_id"] for a in archs]
    assert len(set(ids)) == 500
    first = {}
    for a in b.arch_strings:
        first.setdefault(b.lookup(a)["unique_id"], a)
    assert all(first[i] == a for i, a in zip(ids, archs))
    # spans the ground truth: 500 equal-count bins over the classes, one cell each
    cls_vals = sorted(b.acc(a) for a in first.values())
    m = len(cls_vals)
    vals = sorted(p[2]["cifar10_valid_acc"] for p in r["points"]["sample"])
    assert vals[0] <= cls_vals[m // 500] and vals[-1] >= cls_vals[m - m // 500 - 1]
    assert vals[-1] > 91.0 and vals[0] < 35.0
    for q in (0.25, 0.5, 0.75):  # quantiles of the sample match the classes'
        assert np.quantile(vals, q) == pytest.approx(np.quantile(cls_vals, q), abs=1.0)
    c = s["columns"]["cifar10_valid_acc"]
    assert list(c) == ["score", "params", "flops"]
    assert c["score"]["kendall_tau"] == pytest.approx(1.0) and c["score"]["precision_at_10"] == 1.0
    assert c["score"]["kendall_tau_ci95"] == pytest.approx([1.0, 1.0])
    # the literature's "#params" baseline: tau ~ 0.5-0.6 on NB201 CIFAR-10
    tau = c["params"]["kendall_tau"]
    assert 0.5 <= tau <= 0.6
    lo, hi = c["params"]["kendall_tau_ci95"]
    assert lo < tau < hi and hi - lo < 0.15
    assert c["params"]["ties"] > 400  # NB201 params take few distinct values: a coarse ranking
    params = [space.count_params(a) for a in archs]
    assert tau == pytest.approx(stats.kendalltau(params, [truth[a] for a in archs]).statistic, abs=1e-12)
    assert r["top"]["columns"]["cifar10_valid_acc"]["params"]["n"] == 156
    json.dumps(r, allow_nan=False)


@pytest.mark.data
def test_nb201_csv_with_an_arch_outside_the_space(nb201_bench, tmp_path):
    space, _ = nb201_bench
    lines = (SHARED_DATA / "nb201_cifar10_valid.csv").read_text().splitlines()[:4]
    lines[3] = lines[3].replace("skip_connect", "sep_conv_5x5", 1).replace("none", "sep_conv_5x5", 1)
    if "sep_conv_5x5" not in lines[3]:
        lines[3] = lines[3].replace("~0|", "~9|", 1)
    p = tmp_path / "out_of_space.csv"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"out_of_space\.csv.*line 4"):
        load_csv_benchmark(p, space)


def test_benchmark_needs_an_acc_column():
    space = FakeSpace(n=1, ops=("x",))
    with pytest.raises(ValueError, match=r"\*_acc"):
        Benchmark(space, [{"arch": "d0=x", "p": 1}], columns=["arch", "p"])


# ------------------------------------------------------------------------------------------------
# paired Δτ over seeds (the criteria study)
# ------------------------------------------------------------------------------------------------
def _loop_delta(a_s, b_s, t_s, resamples, seed, level=0.95):
    """Oracle: the same two-level bootstrap written as explicit loops with scipy's kendalltau."""
    from naslid.ranking import bootstrap_indices

    k = len(a_s)
    d = np.full((k, resamples), np.nan)
    for i in range(k):
        idx = bootstrap_indices(len(t_s[i]), resamples, seed + i)
        for r in range(resamples):
            a, b, t = (np.asarray(v)[idx[r]] for v in (a_s[i], b_s[i], t_s[i]))
            d[i, r] = stats.kendalltau(a, t).statistic - stats.kendalltau(b, t).statistic
    pick = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    means = np.array([np.mean([d[pick[r, j], r] for j in range(k)]) for r in range(resamples)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    per = [stats.kendalltau(a_s[i], t_s[i]).statistic - stats.kendalltau(b_s[i], t_s[i]).statistic
           for i in range(k)]
    return per, [lo, hi]


def test_paired_delta_tau_matches_a_loop_oracle():
    from naslid.ranking import paired_delta_tau

    g = np.random.default_rng(3)
    t_s = [g.normal(size=30) for _ in range(3)]
    a_s = [t + g.normal(scale=0.7, size=30) for t in t_s]
    b_s = [t + g.normal(scale=1.5, size=30) for t in t_s]
    got = paired_delta_tau(a_s, b_s, t_s, resamples=200, seed=5)
    per, ci = _loop_delta(a_s, b_s, t_s, 200, 5)
    assert got["n_seeds"] == 3
    assert np.allclose(got["per_seed"], per, atol=1e-12)
    assert got["mean"] == pytest.approx(np.mean(per))
    assert np.allclose(got["ci95"], ci, atol=1e-6)


def test_paired_delta_tau_identical_predictors_and_a_clear_winner():
    from naslid.ranking import paired_delta_tau

    g = np.random.default_rng(0)
    t_s = [g.normal(size=60) for _ in range(5)]
    same = paired_delta_tau(t_s, t_s, t_s, resamples=100)
    assert same["per_seed"] == [0.0] * 5 and same["ci95"] == [0.0, 0.0]
    good = [t + g.normal(scale=0.2, size=60) for t in t_s]
    noise = [g.normal(size=60) for _ in t_s]
    r = paired_delta_tau(good, noise, t_s, resamples=300)
    assert r["ci95"][0] > 0.3 and r["mean"] > 0.5


def test_paired_delta_tau_bad_input():
    from naslid.ranking import paired_delta_tau

    with pytest.raises(ValueError, match="one entry per seed"):
        paired_delta_tau([[1.0, 2.0]], [], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="one length"):
        paired_delta_tau([[1.0, 2.0, 3.0]], [[1.0, 2.0]], [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="non-finite"):
        paired_delta_tau([[1.0, float("nan"), 3.0]], [[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="undefined"):
        paired_delta_tau([[1.0, 1.0, 1.0]], [[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])
