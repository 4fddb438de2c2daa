"""studies/combined_runs.py: the combined search's end-to-end runs tabulated against the issue's marks."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
import combined_runs  # noqa: E402

FREE = ROOT / "results" / "search" / "free_scores"


def _metric(tau: float) -> dict:
    return {"kendall_tau": tau, "kendall_tau_ci95": [tau - 0.02, tau + 0.02], "precision_at_10": 0.5}


def _run(path: Path, seed: int, found: float, taus: dict, warm: bool) -> Path:
    t = {"prepare": 6.0, "split": 60.0, "leaf_training": 120.0, "reference": 60.0, "search": 60.0, "ranking": 300.0}
    if not warm:
        t["warmup"] = 600.0
    d = {"config": {"seed": seed, "threads": 1, "search": {"score": "loss+naswot", "free_cells": 5, "free_batch": 32}},
         "best_arch": f"cell{seed}", "best_arch_benchmark": {"cifar10_valid_acc": found},
         "ranking": {"sampled": {"cifar10_valid_acc": {k: _metric(v) for k, v in taus.items()}}},
         "timings": t, "search": {"free_score_seconds": 180.0}}
    path.write_text(json.dumps(d))
    return path


def test_rows_count_the_marks_and_the_margin_by_hand(tmp_path):
    accs = np.arange(1000, dtype=np.float64) / 10.0           # 0.0 ... 99.9; the 1 %-th best is 99.0
    a = _run(tmp_path / "a.json", 1, 99.5, {"combined": 0.75, "neg_loss": 0.30, "naswot": 0.68}, warm=False)
    b = _run(tmp_path / "b.json", 0, 50.0, {"combined": 0.70, "neg_loss": 0.66, "naswot": 0.60}, warm=True)
    doc = combined_runs.build_doc([a, b], accs)
    assert [r["seed"] for r in doc["runs"]] == [0, 1]
    r0, r1 = doc["runs"]
    assert r1["better_cells"] == 4 and r0["better_cells"] == 499          # 99.6 ... 99.9 / 50.1 ... 99.9
    assert r1["best_single"] == "naswot" and r1["margin_over_best_single"] == pytest.approx(0.07)
    assert r0["best_single"] == "neg_loss" and r0["margin_over_best_single"] == pytest.approx(0.04)
    s = doc["summary"]
    assert doc["top1_percent_acc"] == 99.0
    assert s["in_top1_percent"] == 1 and s["above_synflow_pick"] == 1
    assert s["margin_min"] == pytest.approx(0.04) and s["combined_tau_min"] == 0.70
    # the warm-started run has no warm-up: only the whole run's minutes count as a run's total
    assert r0["warm_started"] and not r1["warm_started"]
    assert r0["search_seconds"] == pytest.approx(306.0) and r1["search_seconds"] == pytest.approx(906.0)
    assert s["total_minutes_max"] == pytest.approx((906.0 + 300.0) / 60)
    md = combined_runs.markdown(doc)
    assert "warm-started" in md and "(+0.070)" in md and "N = 5, batch 32" in md


@pytest.mark.parametrize("pattern", ["cpu-combined-s*.json", "cpu-n5-s*.json"])
def test_committed_runs_give_their_committed_summaries(pattern):
    """Each committed table is what its run files give (the benchmark's accuracies come from the
    run files' own found cells here, so only what does not need NB201's table is compared)."""
    runs = sorted(FREE.glob(pattern))
    if not runs:
        pytest.skip(f"no committed runs {pattern} under {FREE}")
    doc = combined_runs.build_doc(runs, np.array([0.0]))
    for r, p in zip(doc["runs"], runs):
        d = json.loads(p.read_text())
        m = d["ranking"]["sampled"]["cifar10_valid_acc"]
        singles = {k: v["kendall_tau"] for k, v in m.items() if k != "combined"}
        assert r["margin_over_best_single"] == pytest.approx(m["combined"]["kendall_tau"] - max(singles.values()))
        assert r["found_acc"] == d["best_arch_benchmark"]["cifar10_valid_acc"]


def test_top_scored_counts_runs_at_and_within_each_rank_by_hand():
    import top_scored

    accs = np.arange(1000, dtype=np.float64) / 10.0                 # the 1 %-th best: 99.0
    tops = {0: [{"arch": "a", "fitness": 0.9}, {"arch": "b", "fitness": 0.8}, {"arch": "c", "fitness": 0.7}],
            1: [{"arch": "d", "fitness": 0.9}, {"arch": "e", "fitness": 0.8}, {"arch": "f", "fitness": 0.7}]}
    acc_of = {"a": 10.0, "b": 99.5, "c": 95.0, "d": 99.1, "e": 20.0, "f": 99.9}
    doc = top_scored.build_doc(tops, acc_of, accs, 3)
    t1 = doc["summary"]["top1_percent"]
    assert t1["threshold"] == 99.0
    assert t1["runs_at_rank"] == [1, 1, 1] and t1["runs_within_rank"] == [1, 2, 2]
    s = doc["summary"]["synflow_pick"]                                 # 90.1987: c (95.0) counts too
    assert s["runs_at_rank"] == [1, 1, 2] and s["runs_within_rank"] == [1, 2, 2]
    assert doc["runs"]["0"][1]["better_cells"] == 4                      # 99.6 ... 99.9
    assert "| 1 | 99.10 | 20.00 | 99.90 |" in top_scored.markdown(doc)
