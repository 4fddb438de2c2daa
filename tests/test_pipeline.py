"""End-to-end search runs at micro scale on digits: result.json, split tree, ranking, plots, GM, none."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

import naslid
from helpers import MICRO, micro_config
from naslid.config import SearchConfig
from naslid.run.pipeline import derive_seed, run_search
from naslid.spaces import get_space


def micro(tmp_path: Path, name: str = "run", **sections) -> SearchConfig:
    return micro_config(tmp_path / name, sections)


def write_benchmark(path: Path, n: int = 40, seed: int = 0) -> Path:
    """A synthetic ground truth over n NB201 archs with two *_acc columns."""
    space = get_space("nb201", C=4, N=1, input_size=8)
    g = torch.Generator().manual_seed(seed)
    rows, seen = [], set()
    while len(rows) < n:
        a = space.arch_to_string(space.sample(None, g))
        if a in seen:
            continue
        seen.add(a)
        rows.append({"arch": a, "fake_acc": float(torch.rand(1, generator=g)) * 100,
                     "other_acc": float(torch.rand(1, generator=g)) * 100, "note": "x"})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["arch", "fake_acc", "other_acc", "note"])
        w.writeheader()
        w.writerows(rows)
    return path


def tree_content(tree: dict) -> dict:
    """What must be identical between equivalent runs: masks, decisions, partitions, leaves."""
    return {nid: (json.dumps(n["mask"], sort_keys=True), (n.get("split") or {}).get("chosen"),
                  json.dumps((n.get("split") or {}).get("groups")), n["leaf"], tuple(n["children"]))
            for nid, n in tree.items()}


@pytest.fixture(scope="module")
def lid_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lid")
    bench = write_benchmark(tmp / "bench.csv")
    cfg = micro(tmp, benchmark={"file": str(bench)})
    return cfg, run_search(cfg), bench


def test_result_json_has_every_key(lid_run):
    cfg, res, _ = lid_run
    out = Path(cfg.out)
    body = json.loads((out / "result.json").read_text())
    for key in ("best_arch", "best_arch_benchmark", "split_tree", "ranking", "timings", "peak_memory_bytes"):
        assert key in body, key
    assert body["best_arch"] == res.best_arch
    for stage in ("prepare", "warmup", "split", "leaf_training", "search", "ranking", "report"):
        assert body["timings"][stage] >= 0, stage
        assert body["peak_memory_bytes"][stage] > 0, stage
        if stage != "prepare":  # measured from the process start, not a stage
            assert 0 <= body["extra_memory_bytes"][stage] <= body["peak_memory_bytes"][stage], stage
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert SearchConfig.from_yaml(out / "config.yaml").config_hash() == cfg.config_hash()


def test_split_tree_partitions_the_space(lid_run):
    cfg, res, _ = lid_run
    space = get_space("nb201", C=4, N=1, input_size=8)
    tree = res.split_tree
    assert set(tree) == {"r", "r.0", "r.1", "r.0.0", "r.0.1", "r.1.0", "r.1.1"}
    for nid, node in tree.items():
        rec = node["split"]
        if not node["children"]:
            assert node["leaf"] and rec is None
            continue
        assert rec["split"] and rec["criterion"] == "lid"
        parent = space.mask_from_json(node["mask"])
        kids = [space.mask_from_json(tree[c]["mask"]) for c in node["children"]]
        # children differ from the parent on exactly the chosen decision, whose ops they partition
        for k in parent:
            if k == rec["chosen"]:
                stacked = torch.stack([m[k] for m in kids]).int()
                assert torch.equal(stacked.sum(0), parent[k].int())
            else:
                assert all(torch.equal(m[k], parent[k]) for m in kids)
        # the record holds what the report promises: LID vectors and similarity per decision
        d = rec["decisions"][rec["chosen"]]
        n_ops = len(d["ops"])
        assert len(d["similarity"]) == n_ops and len(d["vectors"]) == n_ops
        assert all(len(v) == 3 * 1 + 2 for v in d["vectors"])  # 3N cells + 2 reduction blocks
        assert all(math.isfinite(x) for v in d["vectors"] for x in v)
    leaves = [n for n in tree.values() if n["leaf"]]
    assert sum(n["num_archs"] for n in leaves) == 5 ** 6
    # epochs: cumulative warm-up [1, 2] then 1 leaf epoch
    assert tree["r"]["epochs"] == 1 and tree["r.0"]["epochs"] == 2
    assert all(n["epochs"] == 3 for n in leaves)
    # the best arch lies in exactly one leaf: the one that evaluated it
    best = space.arch_from_string(res.best_arch)
    owners = [nid for nid, n in tree.items() if n["leaf"] and space.mask_contains(space.mask_from_json(n["mask"]), best)]
    assert owners == [res.best_leaf]
    assert 0.0 <= res.best_valid_acc <= 1.0


def test_ranking_matches_scipy(lid_run):
    cfg, res, bench = lid_run
    r = res.ranking
    assert set(r["top"]) == {"fake_acc", "other_acc"} and set(r["sampled"]) == {"fake_acc", "other_acc"}
    pts = r["sampled_points"]
    assert len(pts) == 12 and len({p[0] for p in pts}) == 12
    truth = {row["arch"]: row for row in csv.DictReader(open(bench))}
    for col in ("fake_acc", "other_acc"):
        for name in ("neg_loss", "acc", "params"):
            pred = [p[1][name] for p in pts]
            true = [float(truth[p[0]][col]) for p in pts]
            want = stats.kendalltau(pred, true).statistic
            got = r["sampled"][col][name]["kendall_tau"]
            if got is None:
                assert math.isnan(want) or len(set(pred)) == 1
            else:
                assert got == pytest.approx(want, abs=1e-12)
    # the fitness is minus the loss (search.score: loss, the default): the evaluator's loss on the
    # fixed evaluation images; accuracy and loss of one cell come from the same forward pass
    assert all(p[1]["neg_loss"] < 0 and 0 <= p[1]["acc"] <= 100 for p in pts)
    if res.best_arch in truth:
        assert res.best_arch_benchmark["fake_acc"] == pytest.approx(float(truth[res.best_arch]["fake_acc"]))
    else:
        assert res.best_arch_benchmark is None


def test_report_artifacts(lid_run):
    cfg, res, _ = lid_run
    out = Path(cfg.out)
    for png in ("split_tree.png", "similarity_r.png", "lid_r.png", "pred_vs_true_fake_acc.png",
                "pred_vs_true_other_acc.png"):
        p = out / "plots" / png
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert any((out / "tb").glob("events.out.tfevents.*"))


def test_gm_criterion_same_engine(tmp_path):
    res = run_search(micro(tmp_path, split={"criterion": "grad"}, search={"generations": 1}))
    rec = res.split_tree["r"]["split"]
    assert rec["criterion"] == "grad" and rec["edge_rule"] == "gm" and rec["split"]
    d = rec["decisions"][rec["chosen"]]
    assert d["vector_dim"] > 100  # a flattened gradient, not an LID vector
    assert len([n for n in res.split_tree.values() if n["leaf"]]) == 4


def test_none_criterion_is_plain_one_shot(tmp_path):
    res = run_search(micro(tmp_path, split={"criterion": "none"}, search={"generations": 1}))
    assert list(res.split_tree) == ["r"]
    root = res.split_tree["r"]
    assert root["leaf"] and root["epochs"] == 3 and root["num_archs"] == 5 ** 6
    assert res.best_leaf == "r"


def test_python_api_and_reinit(tmp_path):
    res = naslid.search({**MICRO, "out": str(tmp_path / "api"), "split": {**MICRO["split"], "criterion": "random"},
                         "train": {"warmup_epochs": [1], "leaf_epochs": 1, "leaf_init": "reinit"},
                         "search": {**MICRO["search"], "method": "random", "generations": 1}})
    assert isinstance(res, naslid.SearchResult)
    leaves = [n for n in res.split_tree.values() if n["leaf"]]
    assert len(leaves) == 2
    # reinit: the leaf's history restarts (1 leaf epoch, nothing inherited)
    assert all(n["epochs"] == 1 and len(n["history"]) == 1 for n in leaves)
    assert (tmp_path / "api" / "result.json").exists()


def test_derive_seed_is_stable_and_label_sensitive():
    assert derive_seed(0, "arch", "r", 1) == derive_seed(0, "arch", "r", 1)
    assert len({derive_seed(0, "arch", "r", 1), derive_seed(0, "arch", "r", 2), derive_seed(1, "arch", "r", 1),
                derive_seed(0, "arch", "r.0", 1)}) == 4
    assert 0 <= derive_seed(123, "x") < 2 ** 31


@pytest.mark.parametrize("criterion", ["lid", "grad", "random", "none"])
@pytest.mark.parametrize("space_name", ["proxyless", "ofa"])
def test_mobile_spaces_end_to_end(tmp_path, space_name, criterion):
    """ProxylessNAS and OFA go through the same engine with every split criterion: a split on one
    decision (none: no split, the root is the only leaf), leaves inside the parent's mask, and a
    best arch that is a valid arch of the space inside a leaf's mask."""
    cfg = micro(tmp_path, space_name,
                space={"name": space_name, "width": 0.25},
                data={"image_size": 32, "max_train": 64, "max_valid": 32, "batch_size": 16},
                split={"criterion": criterion, "k": 5, "batch_size": 16},
                train={"warmup_epochs": [1], "leaf_epochs": 0},
                search={"population": 3, "generations": 1, "parents": 2, "crossover": 1,
                        "mutation": 1, "newcomers": 1, "eval_batch_size": 32})
    cfg.plots = False
    cfg.tensorboard = False
    result = run_search(cfg)
    out = json.loads((Path(cfg.out) / "result.json").read_text())
    space = get_space(space_name, width=0.25, input_size=32)
    arch = space.arch_from_string(out["best_arch"]) if isinstance(out["best_arch"], str) else out["best_arch"]
    space.validate_arch(arch)
    tree = out["split_tree"]
    leaves = [n for n in tree.values() if n["leaf"]]
    masks = [space.mask_from_json(n["mask"]) for n in leaves]
    assert any(space.mask_contains(m, arch) for m in masks)
    assert result.best_arch is not None
    if criterion == "none":
        assert len(leaves) == 1 and all(bool(v.all()) for v in masks[0].values())
        return
    root = tree["r"]
    assert root["split"]["chosen"] in space.decisions
    assert len(leaves) == 2
    chosen = root["split"]["chosen"]
    union = masks[0][chosen] | masks[1][chosen]
    assert bool(union.all()) and not bool((masks[0][chosen] & masks[1][chosen]).any())
