"""Resume: kill -9 a real `naslid search` process mid-run, --resume, compare with an uninterrupted
run; atomic writes; corrupt and foreign checkpoints; output folders holding another run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from naslid.run.checkpoint import (CheckpointError, RunFolder, atomic_write_bytes, atomic_write_json,
                               load_checkpoint)
from helpers import micro_config
from naslid.config import SearchConfig
from naslid.run.pipeline import run_search

# the micro run with more batches per epoch than test_pipeline's, so that the kill lands mid-stage
RESUME = {"data": {"max_train": 256, "batch_size": 16}, "train": {"warmup_epochs": [2, 3]},
          "plots": False, "tensorboard": False}


def micro(out: Path, **sections) -> SearchConfig:
    return micro_config(out, RESUME, sections)


def content(res_json: dict) -> dict:
    tree = res_json["split_tree"]
    return {
        "tree": {nid: (json.dumps(n["mask"], sort_keys=True), (n.get("split") or {}).get("chosen"),
                       json.dumps((n.get("split") or {}).get("groups")), n["leaf"]) for nid, n in tree.items()},
        # same process, same ops, same seeds: the training itself is reproduced exactly
        "losses": {nid: [h["loss"] for h in n["history"]] for nid, n in tree.items()},
        "best_arch": res_json["best_arch"],
        "best_valid_acc": res_json["best_valid_acc"],
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "naslid.cli", "search", *args]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    cfg = micro(tmp / "ref")
    run_search(cfg)
    cfg.save_yaml(tmp / "micro.yaml")
    return tmp, json.loads((tmp / "ref" / "result.json").read_text())


def _kill_when(proc: subprocess.Popen, path: Path, timeout: float = 240.0) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {path.name} appeared: "
                        f"{proc.stderr.read().decode()[-2000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("kill_after", ["node-r.pt",
                                        pytest.param("split-r-L0.pt", marks=pytest.mark.slow)])
def test_resume_after_kill_equals_uninterrupted(reference, tmp_path, kill_after):
    ref_dir, ref = reference
    out = tmp_path / "killed"
    cfg_file = ref_dir / "micro.yaml"
    proc = subprocess.Popen(cli("--config", str(cfg_file), "--out", str(out), "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _kill_when(proc, out / "ckpt" / kill_after)
    assert not (out / "result.json").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    # a second plain start refuses the folder: it holds this (unfinished) run
    r = subprocess.run(cli("--config", str(cfg_file), "--out", str(out)), capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cli("--config", str(cfg_file), "--out", str(out), "--resume", "--quiet"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads((out / "result.json").read_text())
    assert content(got) == content(ref)
    assert got["config_hash"] == ref["config_hash"]


def test_resume_of_finished_run_reproduces_result(reference, tmp_path):
    ref_dir, ref = reference
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(ref_dir / "ref", out)
    (out / "result.json").unlink()
    cfg = micro(out)
    cfg.resume = True
    res = run_search(cfg)
    assert content(json.loads((out / "result.json").read_text())) == content(ref)
    assert res.best_arch == ref["best_arch"]


def test_corrupt_checkpoint_is_a_clear_error(reference, tmp_path):
    ref_dir, _ = reference
    import shutil

    out = tmp_path / "corrupt"
    shutil.copytree(ref_dir / "ref", out)
    (out / "result.json").unlink()
    p = out / "ckpt" / "node-r.0.pt"
    p.write_bytes(p.read_bytes()[: 200])  # truncated
    cfg = micro(out)
    cfg.resume = True
    with pytest.raises(CheckpointError, match=r"node-r\.0\.pt.*corrupt"):
        run_search(cfg)
    assert not (out / "result.json").exists()


def test_foreign_checkpoint_is_a_clear_error(reference, tmp_path):
    ref_dir, _ = reference
    import shutil

    out = tmp_path / "foreign"
    shutil.copytree(ref_dir / "ref", out)
    (out / "result.json").unlink()
    # a checkpoint of another run (other config hash) dropped into this run's folder
    other = RunFolder(tmp_path / "other", "0123456789abcdef")
    other.ckpt_dir.mkdir(parents=True)
    other.save("node-r.0", {"x": 1})
    (out / "ckpt" / "node-r.0.pt").write_bytes(other.path("node-r.0").read_bytes())
    cfg = micro(out)
    cfg.resume = True
    with pytest.raises(CheckpointError, match="belongs to another run"):
        run_search(cfg)


def test_out_dir_holding_another_run(reference, tmp_path):
    ref_dir, _ = reference
    cfg = micro(ref_dir / "ref", seed=5)
    with pytest.raises(CheckpointError, match="holds another run"):
        run_search(cfg)
    cfg.resume = True
    with pytest.raises(CheckpointError, match="holds another run"):
        run_search(cfg)


def test_out_dir_checks_without_a_run(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty"):
        RunFolder.check(tmp_path / "stuff", "abc", resume=False)
    with pytest.raises(CheckpointError, match="no naslid run to resume"):
        RunFolder.check(tmp_path / "nothing", "abc", resume=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        RunFolder.check(tmp_path / "bad", "abc", resume=True)
    assert RunFolder.check(tmp_path / "fresh", "abc", resume=False) is None
    assert not (tmp_path / "fresh").exists()  # checking writes nothing


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    atomic_write_json(p, {"v": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"{\"v\": 2}")
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"v": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def test_checkpoint_round_trip_and_name_check(tmp_path):
    rf = RunFolder(tmp_path, "hash1")
    rf.ckpt_dir.mkdir()
    state = {"model": {"w": torch.arange(6.0)}, "epoch": 3}
    rf.save("node-r", state)
    back = rf.load("node-r")
    assert back["epoch"] == 3 and torch.equal(back["model"]["w"], torch.arange(6.0))
    assert rf.load("absent") is None
    os.replace(rf.path("node-r"), rf.path("node-x"))
    with pytest.raises(CheckpointError, match="holds 'node-r'"):
        rf.load("node-x")
    torch.save({"weights": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a naslid checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_kill_in_the_ranking_stage_then_resume_equals_uninterrupted(tmp_path):
    """kill -9 once the final search is checkpointed (``search.pt``) and before the ranking
    checkpoint exists, i.e. during the ranking against a benchmark (120 cells sampled); --resume
    then gives the uninterrupted run's result, ranking included. The micro run stands in for the
    ``cpu`` preset (same stages, reduced size)."""
    from helpers import write_nb201_benchmark

    bench = write_nb201_benchmark(tmp_path / "bench.csv", n=300, seed=1)
    extra = {"benchmark": {"file": str(bench), "sample_size": 120, "top_fraction": 0.02}}
    ref_cfg = micro(tmp_path / "ref", **extra)
    run_search(ref_cfg)
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    cfg_file = tmp_path / "cfg.yaml"
    micro(tmp_path / "unused", **extra).save_yaml(cfg_file)
    out = tmp_path / "killed"
    proc = subprocess.Popen(cli("--config", str(cfg_file), "--out", str(out), "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _kill_when(proc, out / "ckpt" / "search.pt")
    assert not (out / "ckpt" / "ranking.pt").exists(), "the ranking finished before the kill landed"
    assert not (out / "result.json").exists()
    r = subprocess.run(cli("--config", str(cfg_file), "--out", str(out), "--resume", "--quiet"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads((out / "result.json").read_text())
    assert content(got) == content(ref)
    assert got["ranking"] == ref["ranking"] and got["best_arch_benchmark"] == ref["best_arch_benchmark"]
