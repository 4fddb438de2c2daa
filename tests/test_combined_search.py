"""The combined score in a whole (micro) search run: every signal reaches result.json and the
ranking, the found cell's signals are its quantiles' mean; and the spaces that accept which scores
(ProxylessNAS / OFA networks scored by the scores that support them). Seconds on one thread."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import micro_config
from naslid.config import SearchConfig
from naslid.scores.by_name import score_cells
from naslid.run.pipeline import run_search
from naslid.spaces import get_space
from test_pipeline import write_benchmark

torch.set_num_threads(1)
SIGNALS = "loss+params+synflow+naswot"


@pytest.fixture(scope="module")
def combined_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("combined")
    bench = write_benchmark(tmp / "bench.csv")
    cfg = micro_config(tmp / "run", {"benchmark": {"file": str(bench)},
                                     "search": {"score": SIGNALS, "reference_size": 16}})
    return cfg, run_search(cfg)


def test_every_signal_is_ranked_and_kept(combined_run):
    cfg, res = combined_run
    body = json.loads((Path(cfg.out) / "result.json").read_text())
    pts = body["ranking"]["sampled_points"]
    assert pts
    for _, pred, _ in pts:
        assert {"neg_loss", "acc", "params", "synflow", "naswot", "combined"} <= set(pred)  # params: the yardstick
        assert 0.0 < pred["combined"] < 1.0 and not math.isnan(pred["combined"])
    for col in body["ranking"]["sampled"].values():
        assert {"neg_loss", "synflow", "naswot", "combined"} <= set(col)
        assert "precision_at_10" in col["combined"] and "spearman_rho" in col["combined"]
    best = body["search"]["best_signals"]
    assert set(best["quantiles"]) == set(SIGNALS.split("+"))
    assert best["fitness"] == pytest.approx(sum(best["quantiles"].values()) / 4)
    assert body["search"]["reference_size"] == 16
    assert body["timings"]["reference"] >= 0
    # the best-scored cells, best first: the found cell, then the runners-up, each its quantiles' mean
    top = body["search"]["top"]
    assert len(top) == min(10, body["search"]["num_evaluated"]) and len(top) > 1
    assert top[0]["arch"] == body["best_arch"] and top[0]["fitness"] == body["search"]["best_fitness"]
    assert all(a["fitness"] >= b["fitness"] for a, b in zip(top, top[1:]))
    assert len({t["arch"] for t in top}) == len(top)
    for t in top:
        assert t["fitness"] == pytest.approx(sum(t["quantiles"].values()) / 4)


def test_a_pure_supernet_run_has_no_reference(tmp_path):
    cfg = micro_config(tmp_path / "run", {"search": {"score": "loss"}})
    res = run_search(cfg)
    body = json.loads((Path(cfg.out) / "result.json").read_text())
    assert "reference" not in body["timings"] and "best_signals" not in body["search"]
    assert res.best_arch
    top = body["search"]["top"]
    assert top[0]["arch"] == body["best_arch"] and "quantiles" not in top[0]
    assert all(a["fitness"] >= b["fitness"] for a, b in zip(top, top[1:]))


def test_spaces_accept_the_scores_that_support_them():
    for space, ok, bad in [("proxyless", "loss+synflow+naswot+zico+jacov+params+flops", "aznas"),
                           ("ofa", "loss+synflow+zico+jacov", "naswot"), ("nb201", "loss+aznas+lid", None)]:
        c = SearchConfig.preset_config("quick")
        c.space.name, c.search.score = space, ok
        c.validate()
        if bad:
            c.search.score = f"loss+{bad}"
            with pytest.raises(ValueError, match=f"score '{bad}' cannot rate space '{space}'"):
                c.validate()


def test_proxyless_networks_get_finite_scores():
    space = get_space("proxyless", input_size=32, num_classes=10)
    arch = space.sample(None, torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    got = score_cells(["synflow", "naswot", "zico", "jacov"], space, [arch], x=x, y=torch.arange(4), seed=0)
    for name, vals in got.items():
        (v,) = vals.values()
        assert math.isfinite(v), name


def test_free_scores_rate_the_network_of_free_cells(tmp_path):
    """search.free_cells: the training-free scores rate each cell's stand-alone network with that many
    cells per stage (the supernet keeps space.N): every ranked cell's synflow (data-free) is that of
    an independently built N = 3 network under the run's seed, not the searched N = 1 one's."""
    bench = write_benchmark(tmp_path / "bench.csv")
    cfg = micro_config(tmp_path / "run", {"benchmark": {"file": str(bench)},
                                          "search": {"score": "loss+synflow+naswot", "reference_size": 8,
                                                     "free_cells": 3, "free_batch": 24}})
    run_search(cfg)
    body = json.loads((Path(cfg.out) / "result.json").read_text())
    opts = dict(C=cfg.space.C, input_size=cfg.data.image_size, num_classes=10)
    deep, shallow = get_space("nb201", N=3, **opts), get_space("nb201", N=1, **opts)
    pts = body["ranking"]["sampled_points"]
    archs = [deep.arch_from_string(a) for a, _, _ in pts]
    want = score_cells(["synflow"], deep, archs, seed=cfg.seed)["synflow"]
    flat = score_cells(["synflow"], shallow, archs, seed=cfg.seed)["synflow"]
    differ = 0
    for (a, pred, _), arch in zip(pts, archs):
        key = deep.arch_to_string(arch)
        assert pred["synflow"] == pytest.approx(want[key], rel=1e-6)
        differ += want[key] != pytest.approx(flat[key], rel=1e-3)
    assert differ >= len(pts) // 2  # the depth changes the score (cells without a path score 0 at both)
    assert body["config"]["search"]["free_cells"] == 3 and body["config"]["search"]["free_batch"] == 24


def test_free_net_options_are_checked_and_keep_old_run_identities():
    c = SearchConfig.preset_config("cpu")
    assert (c.search.free_cells, c.search.free_batch) == (5, 32)  # the cpu preset scores at NB201's depth
    assert c.run_identity()["search"]["free_cells"] == 5
    at_default = SearchConfig.preset_config("cpu")
    at_default.search.free_cells, at_default.search.free_batch = None, 128
    ident = at_default.run_identity()["search"]
    assert "free_cells" not in ident and "free_batch" not in ident and at_default.config_hash() != c.config_hash()
    pure = SearchConfig.preset_config("cpu")
    pure.search.score = "loss"  # the criteria study's protocol: its runs keep their identity
    ident = pure.run_identity()["search"]
    assert "free_cells" not in ident and "free_batch" not in ident and "reference_size" not in ident
    for field, value, match in [("free_cells", 0, "config.search.free_cells"),
                                ("free_batch", 16, r"config.search.free_batch: the lid score .* free_batch >= 22, got 16"),
                                ("free_batch", 1, "config.search.free_batch")]:
        bad = SearchConfig.preset_config("cpu")
        setattr(bad.search, field, value)
        with pytest.raises(ValueError, match=match):
            bad.validate()
    prox = SearchConfig.preset_config("quick")
    prox.space.name, prox.search.score, prox.search.free_cells = "proxyless", "loss+synflow", 2
    with pytest.raises(ValueError, match="config.search.free_cells: only NB201 has cells per stage"):
        prox.validate()


def test_with_cells_changes_only_the_depth():
    s = get_space("nb201", C=8, N=1, input_size=16, num_classes=10, width=1.5)
    d = s.with_cells(5)
    assert d.options == dict(s.options, N=5) and d.num_lid_layers == 17 and s.N == 1


def test_top_scored_orders_by_fitness_and_ties_by_evaluation_order():
    from naslid.run.final_search import top_scored

    ev = {"a": {"arch": "A", "fitness": 0.5}, "b": {"arch": "B", "fitness": 0.9}, "c": {"arch": "C", "fitness": 0.5},
          "d": {"arch": "D", "fitness": 0.1}}
    assert [t["arch"] for t in top_scored(ev, 3)] == ["B", "A", "C"]
    assert top_scored(ev, 10)[-1] == {"arch": "D", "fitness": 0.1}
