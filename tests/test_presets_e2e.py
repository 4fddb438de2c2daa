"""Every shipped preset runs end to end: ``paper`` (the released code's settings, GPU-scale) at a
reduced size through ``--set`` — 8x8 digits instead of CIFAR-10, C = 4 and one cell per stage,
one epoch per level, a small search — keeping every option it sets: its four warm-up levels
(16 leaves), min-cut partition into balanced groups, 5 repeats, leaf initialisation ``inherit``,
BN recalibration over 4 batches, ``device: auto``, and the ranking against a benchmark.
(ProxylessNAS / OFA with each criterion: tests/test_pipeline.py; quick: tests/test_cli.py.)"""
from __future__ import annotations

import json

from helpers import write_nb201_benchmark
from naslid.cli import main

REDUCED = ["data.dataset=digits", "data.image_size=8", "data.max_train=160", "data.max_valid=64",
           "data.batch_size=32", "space.C=4", "space.N=1", "split.batch_size=32", "split.k=8",
           "train.warmup_epochs=[1,2,3,4]", "train.leaf_epochs=1", "search.population=6",
           "search.generations=2", "search.parents=2", "search.crossover=2", "search.mutation=2",
           "search.newcomers=2", "search.eval_batch_size=64", "benchmark.sample_size=12",
           "threads=1", "plots=false", "tensorboard=false"]


def test_paper_preset_end_to_end_at_reduced_size(tmp_path, capsys):
    bench = write_nb201_benchmark(tmp_path / "bench.csv", n=120, seed=3)
    out = tmp_path / "run"
    args = ["search", "--preset", "paper", "--benchmark", str(bench), "--out", str(out), "--quiet"]
    for s in REDUCED:
        args += ["--set", s]
    rc = main(args)
    cap = capsys.readouterr()
    assert rc == 0, cap.err[-3000:]
    res = json.loads((out / "result.json").read_text())
    cfg = res["config"]
    # the preset's own options survived the reduction
    assert cfg["preset"] == "paper" and cfg["device"] == "auto"
    assert cfg["split"]["partition"] == "mincut" and cfg["split"]["balanced"] is True
    assert cfg["split"]["repeats"] == 5 and cfg["train"]["leaf_init"] == "inherit"
    assert cfg["search"]["bn"] == "recalibrate" and cfg["search"]["bn_batches"] == 4
    tree = res["split_tree"]
    leaves = [nid for nid, n in tree.items() if n["leaf"]]
    assert len(leaves) == 16 and all(nid.count(".") == 4 for nid in leaves)  # four levels of splits
    for nid, node in tree.items():  # balanced 2-way splits: group sizes differ by at most one
        if not node["leaf"]:
            sizes = sorted(len(g) for g in node["split"]["groups"])
            assert len(sizes) == 2 and sizes[1] - sizes[0] <= 1, (nid, node["split"]["groups"])
    assert "x_acc" in json.dumps(res["ranking"]) and res["best_arch"] is not None
    assert res["best_arch"] in cap.out
