"""The run report (naslid.run.report): scatter panels per predictor, TensorBoard scalars, result.json."""
from __future__ import annotations

import json

import numpy as np
import pytest

from naslid.run import report as R


def _metrics(tau, lo=None, hi=None):
    return {"n": 30, "kendall_tau": tau, "kendall_tau_ci95": None if lo is None else [lo, hi],
            "kendall_p": 0.01, "spearman_rho": tau, "spearman_p": 0.01, "precision_at_10": 0.5,
            "tau_top_half": None, "ties": 0}


def _ranking(n=30, seed=0):
    """A result.json ``ranking`` in the pipeline's shape, over two columns and three predictors."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(10, 90, n)
    pts = [[f"arch{i}", {"acc": float(truth[i] + rng.normal()), "neg_loss": float(-rng.random()),
                         "params": float(i % 4)}, {"a_acc": float(truth[i]), "b_acc": None if i == 3 else float(-truth[i])}]
           for i in range(n)]
    per = {"acc": _metrics(0.9, 0.85, 0.95), "neg_loss": _metrics(None), "params": _metrics(0.2, 0.0, 0.4)}
    return {"top": {"a_acc": per, "b_acc": per}, "sampled": {"a_acc": per, "b_acc": per},
            "settings": {"top_fraction": 0.01, "top_by": "each", "sample_size": n, "sample_seed": 0},
            "sampled_points": pts}


def test_scatter_title():
    assert R.scatter_title("acc", 30, _metrics(0.91234, 0.8, 0.95)) == \
        "acc (30 archs)\nτ = 0.912 [0.800, 0.950], P@10% = 0.50"
    assert R.scatter_title("neg_loss", 30, _metrics(None)) == "neg_loss (30 archs)"
    # the older flat shape {column: metrics} still finds τ
    assert R._metrics_of({"sampled": {"a_acc": _metrics(0.5)}}, "a_acc", "score")["kendall_tau"] == 0.5


def test_points_from_sampled():
    rk = _ranking(5)
    pts = R.points_from_sampled(rk["sampled_points"])
    assert list(pts["predicted"]) == ["acc", "neg_loss", "params"] and list(pts["true"]) == ["a_acc", "b_acc"]
    assert pts["predicted"]["params"] == [0.0, 1.0, 2.0, 3.0, 0.0]
    assert pts["true"]["b_acc"][3] is None
    assert R.points_from_sampled([]) == {}


@pytest.mark.parametrize("pass_points", [True, False])
def test_write_report_plots_and_json(tmp_path, pass_points):
    rk = _ranking()
    tree = {"r": {"id": "r", "parent": None, "children": [], "leaf": True, "num_archs": 30}}
    result = {"best_arch": "arch0", "split_tree": tree, "ranking": rk}
    points = R.points_from_sampled(rk["sampled_points"]) if pass_points else None
    written = R.write_report(tmp_path, result, ranking_points=points, tensorboard=False)
    assert "plots/split_tree.png" in written["plots"]
    for col in ("a_acc", "b_acc"):
        p = tmp_path / "plots" / f"pred_vs_true_{col}.png"
        assert f"plots/pred_vs_true_{col}.png" in written["plots"]
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    body = json.loads((tmp_path / "result.json").read_text())
    assert body["ranking"] == rk and body["artifacts"] == written


def test_plot_accepts_the_old_single_predictor_shape(tmp_path):
    pts = {"predicted": [1.0, 2.0, 3.0], "true": {"a_acc": [1.0, 3.0, 2.0]}}
    assert R.plot_pred_vs_true(pts, {"sampled": {"a_acc": _metrics(0.33)}}, tmp_path) == ["pred_vs_true_a_acc.png"]
    assert R.plot_pred_vs_true({}, {}, tmp_path) == []


def test_tensorboard_scalars_per_predictor(tmp_path):
    pytest.importorskip("tensorboard")
    leaves = dict(R._numeric_leaves("ranking/sampled", _ranking()["sampled"]))
    assert leaves["ranking/sampled/a_acc/acc/kendall_tau"] == 0.9
    assert "ranking/sampled/a_acc/neg_loss/kendall_tau" not in leaves  # None: no point
    assert not any("ci95" in k for k in leaves)
    assert R.write_tensorboard(tmp_path / "tb", {}, [], _ranking())
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
