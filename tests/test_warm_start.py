"""config.warm_start: a run adopts another run's root warm-up and then computes exactly what it
would have computed from its own; mismatched or unusable sources are refused before any work."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import micro_config
from naslid.run.checkpoint import RunFolder
from naslid.run.pipeline import run_search
from naslid.run.warm_start import warmup_identity

NO_REPORT = {"plots": False, "tensorboard": False, "train": {"warmup_epochs": [2]}}


def micro(out: Path, **sections):
    return micro_config(out, NO_REPORT, sections)


def content(out: Path) -> dict:
    r = json.loads((Path(out) / "result.json").read_text())
    tree = r["split_tree"]
    return {"tree": {nid: ((n.get("split") or {}).get("chosen"), json.dumps((n.get("split") or {}).get("groups")))
                     for nid, n in tree.items()},
            "losses": {nid: [h["loss"] for h in n["history"]] for nid, n in tree.items()},
            "best_arch": r["best_arch"], "best_valid_loss": r["best_valid_loss"]}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("warm")
    run_search(micro(tmp / "lid"))
    return tmp


def none_config(out: Path):
    return micro(out, split={"criterion": "none"}, train={"leaf_epochs": 2})


@pytest.fixture(scope="module")
def none_fresh(source) -> Path:
    """A fresh criterion-none run (its root trains on past the warm-up), shared by the tests."""
    run_search(none_config(source / "none-fresh"))
    return source / "none-fresh"


def test_warm_started_run_equals_a_fresh_run(source):
    fresh = micro(source / "random-fresh", split={"criterion": "random"})
    warm = micro(source / "random-warm", split={"criterion": "random"})
    warm.warm_start = str(source / "lid")
    assert fresh.config_hash() == warm.config_hash()        # warm_start is not part of the identity
    run_search(fresh)
    res = run_search(warm)
    assert content(source / "random-warm") == content(source / "random-fresh")
    assert res.timings.get("warmup", 0.0) == 0.0             # the warm-up was adopted, not trained
    a = RunFolder(source / "lid", "").path("node-r")
    b = torch.load(a, weights_only=False)["state"]["model"]
    c = torch.load(RunFolder(source / "random-warm", "").path("node-r"), weights_only=False)["state"]["model"]
    assert all(torch.equal(b[k], c[k]) for k in b)           # random splits: the root keeps its warm-up


def test_none_run_shares_the_warm_up(source, none_fresh):
    """criterion none trains the adopted checkpoint on (leaf epochs) like a fresh none run."""
    warm = none_config(source / "none-warm")
    warm.warm_start = str(source / "lid")
    run_search(warm)
    assert content(source / "none-warm") == content(none_fresh)


def test_leaf_fields_do_not_change_the_warm_up_identity(tmp_path):
    a, b = micro(tmp_path / "a"), micro(tmp_path / "b", train={"leaf_epochs": 9}, split={"criterion": "grad"})
    assert warmup_identity(a) == warmup_identity(b)
    c = micro(tmp_path / "c", train={"lr": 0.01})
    assert warmup_identity(a) != warmup_identity(c)


@pytest.mark.parametrize("change, message", [
    ({"seed": 3}, "seed (0 there, 3 here)"),
    ({"train": {"lr": 0.01}}, "train.lr"),
    ({"train": {"warmup_epochs": [3]}}, "train.warmup_epochs"),
    ({"data": {"max_train": 160}}, "data.max_train"),
])
def test_mismatched_source_is_refused_before_work(source, tmp_path, change, message):
    cfg = micro(tmp_path / "out", **change)
    cfg.warm_start = str(source / "lid")
    with pytest.raises(ValueError, match=r"config\.warm_start") as e:
        run_search(cfg)
    assert message in str(e.value)
    assert not (tmp_path / "out").exists()


def test_unusable_sources_are_refused(source, none_fresh, tmp_path):
    cfg = micro(tmp_path / "out", split={"criterion": "random"})
    cfg.warm_start = str(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no naslid run"):
        run_search(cfg)
    # a none run trains its root on past the warm-up: nothing to adopt
    cfg.warm_start = str(none_fresh)
    with pytest.raises(ValueError, match="past the warm-up"):
        run_search(cfg)
    # an unfinished warm-up
    src = tmp_path / "half"
    RunFolder.open(src, "abc", resume=False)
    (src / "config.yaml").write_text((source / "lid" / "config.yaml").read_text())
    state = torch.load(RunFolder(source / "lid", "").path("node-r"), weights_only=False)["state"]
    state["epoch"] = 1
    RunFolder(src, "abc").save("node-r", state)
    cfg.warm_start = str(src)
    with pytest.raises(ValueError, match="not finished"):
        run_search(cfg)
    assert not (tmp_path / "out").exists()


def test_source_readiness(source, tmp_path):
    from naslid.run.warm_start import WarmStartNotReady, check_source_ready

    check_source_ready(source / "lid")                   # a finished lid run
    with pytest.raises(WarmStartNotReady, match="holds no naslid run"):
        check_source_ready(tmp_path / "not-yet")
    src = tmp_path / "half"
    RunFolder.open(src, "abc", resume=False)
    (src / "config.yaml").write_text((source / "lid" / "config.yaml").read_text())
    with pytest.raises(WarmStartNotReady, match="has not started"):
        check_source_ready(src)
    state = torch.load(RunFolder(source / "lid", "").path("node-r"), weights_only=False)["state"]
    RunFolder(src, "abc").save("node-r", dict(state, epoch=1))
    with pytest.raises(WarmStartNotReady, match="not finished"):
        check_source_ready(src)
    RunFolder(src, "abc").save("node-r", dict(state, stage="leaf"))
    with pytest.raises(ValueError, match="past the warm-up") as e:
        check_source_ready(src)
    assert not isinstance(e.value, WarmStartNotReady)    # it never will be ready
