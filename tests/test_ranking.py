"""Benchmark reading (naslid.benchmark) and ranking quality (naslid.ranking)."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from fake_space import FakeSpace
from naslid.benchmark import Benchmark, load_benchmark, load_csv_benchmark
from helpers import SHARED_DATA
from naslid.ranking import (best_arch_benchmark, rank_correlations, ranking_report,
                            sample_unique_archs, top_archs)



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
    r = ranking_report(b, lambda a: float(a["d0"] == "z"), top_fraction=1.0, sample_size=3)
    assert r["sample"]["columns"]["a_acc"]["n"] == 2  # the NaN row is dropped
    assert best_arch_benchmark(b, {"d0": "y"}) == {"a_acc": None}


# ------------------------------------------------------------------------------------------------
# subsets and the report
# ------------------------------------------------------------------------------------------------
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
    assert sample_unique_archs(b, 4, seed=1) == sample_unique_archs(b, 4, seed=1)
    assert sample_unique_archs(b, 4, seed=1) != sample_unique_archs(b, 4, seed=2)
    with pytest.raises(ValueError, match="fraction"):
        top_archs(b, 0.0)


def test_ranking_report_values_and_json(tmp_path):
    space = FakeSpace(n=3, ops=("x", "y", "z"))
    b = load_csv_benchmark(_fake_csv(tmp_path, space), space)
    calls = []

    def predict(arch):
        calls.append(space.arch_to_string(arch))
        return 3.0 * b.acc(arch) + 1.0  # a monotone transform of a_acc

    r = ranking_report(b, predict, top_fraction=0.2, sample_size=20, seed=0)
    json.dumps(r, allow_nan=False)
    assert r["top"]["columns"]["a_acc"]["kendall_tau"] == pytest.approx(1.0)
    assert r["top"]["columns"]["a_acc"]["n"] == 5
    assert r["sample"]["columns"]["a_acc"]["spearman_rho"] == pytest.approx(1.0)
    assert len(calls) == len(set(calls))  # each arch predicted once
    sample = sample_unique_archs(b, 20, seed=0)
    pred = [3.0 * b.acc(s) + 1.0 for s in sample]
    bb = [b.acc(s, "b_acc") for s in sample]
    assert r["sample"]["columns"]["b_acc"]["kendall_tau"] == pytest.approx(stats.kendalltau(pred, bb).statistic)
    assert r["sample"]["columns"]["b_acc"]["spearman_rho"] == pytest.approx(stats.spearmanr(pred, bb).statistic)
    assert [p[0] for p in r["points"]["sample"]] == sample
    # a mapping works as well; "first" uses a_acc's top set for both columns
    table = {s: 3.0 * b.acc(s) + 1.0 for s in b.arch_strings}
    r2 = ranking_report(b, table, top_fraction=0.2, top_by="first", sample_size=20)
    assert r2["sample"] == r["sample"]
    assert [p[0] for p in r2["points"]["top"]["b_acc"]] == top_archs(b, 0.2)
    with pytest.raises(ValueError, match="top_by"):
        ranking_report(b, table, top_by="all")


# ------------------------------------------------------------------------------------------------
# the real NB201 benchmark (../shared/data; the nb201_bench fixture is in conftest.py)
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
    r = ranking_report(b, noisy)
    col = r["sample"]["columns"]["cifar10_valid_acc"]
    assert col["n"] == 500 and 0.3 < col["kendall_tau"] < 0.95
    assert r["top"]["columns"]["cifar10_valid_acc"]["n"] == 156


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
