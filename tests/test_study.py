"""The criteria study: its report (naslid.studies.criteria_study) on synthetic finished runs, and the driver's
refusals of bad input before any run starts (studies/search_quality.py)."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from naslid.studies import criteria_study as study

ROOT = Path(__file__).resolve().parents[1]
CELLS = [f"arch{i}" for i in range(80)]


def fake_result(pred: np.ndarray, truth: np.ndarray, seed: int, split_s: float = 1.0, found: float = 90.0,
                warm=(2.0, 1.5)) -> dict:
    """The parts of a result.json the study reads."""
    pts = [[a, {"acc": float(np.round(p, 0)), "neg_loss": float(p), "params": float(t + 0.5 * np.sin(i)),
                "flops": float(-t)}, {"cifar10_valid_acc": float(t)}]
           for i, (a, p, t) in enumerate(zip(CELLS, pred, truth))]
    tau = stats.kendalltau(pred, truth).statistic
    m = {"kendall_tau": tau, "kendall_tau_ci95": [tau - 0.1, tau + 0.1], "spearman_rho": 0.5,
         "precision_at_10": 0.2, "n": len(pred)}
    return {"ranking": {"sampled_points": pts, "sampled": {"cifar10_valid_acc": {"neg_loss": m, "acc": m}},
                        "top": {"cifar10_valid_acc": {"neg_loss": m}}},
            "split_tree": {"r": {"history": [{"stage": "warmup-0", "loss": x} for x in warm],
                                 "split": {"split": True, "chosen": "edge-1", "lid_seconds": 0.25}}},
            "timings": {"warmup": 10.0, "split": split_s, "leaf_training": 20.0},
            "extra_memory_bytes": {"split": 2**20}, "best_arch": "x",
            "best_arch_benchmark": {"cifar10_valid_acc": found},
            "config": {k: {} for k in ("space", "data", "split", "train", "search", "benchmark")}}


def fake_runs(seeds=range(5), criteria=("lid", "grad", "random", "none")):
    g = np.random.default_rng(0)
    runs = {}
    for s in seeds:
        truth = g.normal(size=len(CELLS)) * 10 + 80
        for c in criteria:
            noise = {"lid": 2.0, "grad": 8.0, "random": 8.0, "none": 30.0}[c]
            runs[(c, s)] = fake_result(truth + g.normal(size=len(CELLS)) * noise, truth, s,
                                       split_s={"lid": 1.0, "grad": 3.0}.get(c, 0.1))
    return runs


def test_report_tables_and_paired_differences():
    runs = fake_runs()
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                              resamples=300)
    assert rep["resolves"] and rep["seeds_complete"] == [0, 1, 2, 3, 4]
    assert all(p["shared_warmup"] and p["cells"] == 80 for p in rep["pairing"].values())
    taus = [stats.kendalltau(study.sampled_cells(runs[("lid", s)])[1]["neg_loss"],
                             study.sampled_cells(runs[("lid", s)])[2]).statistic for s in range(5)]
    assert rep["table"]["lid"]["tau"]["mean"] == pytest.approx(statistics.mean(taus))
    assert rep["table"]["grad"]["split_s"]["mean"] == pytest.approx(3.0)
    # per-seed paired Δτ is the difference of the two runs' τ
    ln = rep["paired"]["lid-none"]
    for s, d in zip(range(5), ln["per_seed"]):
        t_none = stats.kendalltau(study.sampled_cells(runs[("none", s)])[1]["neg_loss"],
                                  study.sampled_cells(runs[("none", s)])[2]).statistic
        assert d == pytest.approx(taus[s] - t_none)
    assert ln["ci95"][0] > 0.05 and ln["verdict"] == "lid better"
    # the free baselines on the same cells
    pt = [stats.kendalltau(study.sampled_cells(runs[("lid", s)])[1]["params"],
                           study.sampled_cells(runs[("lid", s)])[2]).statistic for s in range(5)]
    assert rep["baselines"]["params"]["tau"]["mean"] == pytest.approx(statistics.mean(pt))
    assert rep["baselines"]["flops"]["tau"]["mean"] == pytest.approx(-1.0)
    md = study.markdown(rep)
    assert "| lid |" in md and "lid-none" in md and "lid better" in md


def test_identical_criteria_read_as_no_difference():
    runs = fake_runs(criteria=("lid",))
    for (c, s), r in list(runs.items()):
        runs[("none", s)] = json.loads(json.dumps(r))
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "none"], resamples=200)
    assert rep["paired"]["lid-none"]["per_seed"] == [0.0] * 5
    assert rep["paired"]["lid-none"]["verdict"].startswith("no difference")


def test_too_few_seeds_and_partial_reports():
    runs = fake_runs(seeds=range(3))
    with pytest.raises(ValueError, match=r"--seeds: 3 seed\(s\).*--min-seeds 5"):
        study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"])
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                              partial=True, resamples=100)
    assert not rep["resolves"] and rep["seeds_complete"] == [0, 1, 2]
    assert all(r["verdict"].startswith("not resolved") for r in rep["paired"].values())
    del runs[("none", 1)]            # a seed counts only when every criterion finished
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                              partial=True, resamples=100)
    assert rep["seeds_complete"] == [0, 2]


def test_runs_of_another_sample_or_warm_up_are_caught():
    runs = fake_runs()
    runs[("grad", 2)]["ranking"]["sampled_points"][0][0] = "other"
    with pytest.raises(ValueError, match="seed 2: the runs scored different cells"):
        study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"])
    runs = fake_runs()
    runs[("none", 4)]["split_tree"]["r"]["history"][1]["loss"] = 1.4
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"], resamples=50)
    assert not rep["pairing"][4]["shared_warmup"] and rep["pairing"][3]["shared_warmup"]


def test_standalone_and_proxy_baselines():
    runs = fake_runs()
    truth = study.sampled_cells(runs[("lid", 0)])[2]
    from naslid.studies.standalone import StandaloneTruth

    rows = [{"arch": a, "standalone_acc": t + 1.0, "cifar10_valid_acc": t, "params": 10 * i}
            for i, (a, t) in enumerate(list(zip(CELLS, truth))[:40])]
    sa = StandaloneTruth("sa.csv", {}, "", rows, {})
    proxies = {"scores": {"synflow": {str(s): {a: float(i) for i, a in enumerate(CELLS)} for s in range(5)}}}
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                              proxies=proxies, standalone=sa, resamples=50)
    assert rep["standalone"]["cells"] == 40
    assert rep["standalone"]["tau_standalone_vs_benchmark"] == pytest.approx(1.0)
    # stand-alone acc = truth + 1 on the first 40 cells: τ(supernet, stand-alone) = τ on those cells
    per_seed = []
    for s in range(5):
        archs, scores, _ = study.sampled_cells(runs[("lid", s)])
        sa_acc = {a: t + 1.0 for a, t in zip(CELLS[:40], truth[:40])}
        keys = sorted(sa_acc)
        per_seed.append(stats.kendalltau([scores["neg_loss"][archs.index(a)] for a in keys],
                                         [sa_acc[a] for a in keys]).statistic)
    got = rep["standalone"]["tau_supernet_vs_standalone"]["lid"]
    assert got["n"] == 5 and got["mean"] == pytest.approx(statistics.mean(per_seed))
    syn = [stats.kendalltau(np.arange(80), study.sampled_cells(runs[("lid", s)])[2]).statistic for s in range(5)]
    assert rep["baselines"]["synflow"]["tau"]["mean"] == pytest.approx(statistics.mean(syn))
    sa.rows.append({"arch": "missing_arch", "standalone_acc": 50.0, "cifar10_valid_acc": 50.0, "params": 1})
    with pytest.raises(ValueError, match="--standalone: 1 stand-alone cells are not in the runs"):
        study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                            standalone=sa, resamples=50)


# ------------------------------------------------------------------------------------------------
# the driver: bad input refused before work
# ------------------------------------------------------------------------------------------------
@pytest.fixture()
def driver(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "studies"))
    sys.modules.pop("search_quality", None)
    import search_quality

    return search_quality


def test_driver_refuses_bad_input(driver, tmp_path, capsys):
    data = tmp_path / "c.npz"
    data.write_bytes(b"x")
    bench = tmp_path / "b.csv"
    bench.write_text("arch\n")
    base = ["--work", str(tmp_path / "w"), "--data", str(data), "--benchmark", str(bench)]
    cases = [(["run", *base, "--seeds", "0", "1"], "--seeds: 2 seed(s)"),
             (["run", *base, "--seeds", "0", "0", "1", "2", "3"], "--seeds: repeated"),
             (["run", *base, "--data", str(tmp_path / "nope.npz")], "--data: "),
             (["run", *base, "--benchmark", str(tmp_path / "nope.csv")], "--benchmark: "),
             (["run", *base, "--criteria", "none", "lid"], "--criteria: ['none', 'lid']: lid must come first"),
             (["run", *base, "--workers", "0"], "--workers: must be >= 1"),
             (["report", *base, "--min-seeds", "1"], "--min-seeds: ")]
    for argv, msg in cases:
        assert driver.main(argv) == 2, argv
        assert msg in capsys.readouterr().err, argv
    assert not (tmp_path / "w" / "lid-s0").exists()


def test_driver_refuses_a_work_folder_of_another_protocol(driver, tmp_path, capsys):
    from naslid.config import SearchConfig

    data = tmp_path / "c.npz"
    data.write_bytes(b"x")
    bench = tmp_path / "b.csv"
    bench.write_text("arch\n")
    other = SearchConfig.preset_config("cpu")
    other.seed, other.train.lr = 0, 0.1
    (tmp_path / "w" / "lid-s0").mkdir(parents=True)
    other.save_yaml(tmp_path / "w" / "lid-s0" / "config.yaml")
    argv = ["run", "--work", str(tmp_path / "w"), "--data", str(data), "--benchmark", str(bench)]
    assert driver.main(argv) == 2
    err = capsys.readouterr().err
    assert "lid-s0' holds a run of another protocol" in err and "'train'" in err


def test_proxy_search_is_set_beside_the_found_cells():
    runs = fake_runs()
    doc = {"best": {"naswot": {str(s): {"arch": "a", "cifar10_valid_acc": 91.0, "cells": 6466} for s in range(5)}},
           "seconds": {"naswot": {str(s): 100.0 + s for s in range(5)}}}
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                              proxy_search=[doc], resamples=50)
    r = rep["proxy_search"]["naswot"][3]
    assert r["acc"] == 91.0 and r["seconds"] == 103.0 and r["found"]["lid"] == 90.0
    # a run that adopted the warm-up is charged the lid run's warm-up time
    assert r["run_seconds"]["grad"] == pytest.approx(30.0 + 3.0 + 10.0)
    assert r["run_seconds"]["lid"] == pytest.approx(31.0)
    assert "naswot over all 6466 cells (103 s) picks a cell of 91.00 %" in study.markdown(rep)


def test_run_locks(driver, tmp_path):
    d = tmp_path / "lid-s0"
    lock = driver.claim(d)
    assert lock is not None and lock.read_text() == str(__import__("os").getpid())
    assert driver.claim(d) is None                       # held by a live process (this one)
    lock.write_text("999999999")                         # a dead process's lock is taken over
    assert driver.claim(d) is not None


def test_job_queue_order_and_warm_up_wait(driver, tmp_path, monkeypatch):
    args = type("A", (), {"work": tmp_path, "seeds": [0, 1], "criteria": ["lid", "grad", "none"]})()
    ready = {0: False, 1: False}
    monkeypatch.setattr(driver, "warmup_ready", lambda a, s: ready[s])
    q = driver.JobQueue(args)
    c, s, lock = q.take()
    assert (c, s) == ("lid", 0)                          # seed-major, lid first
    c, s, lock = q.take()
    assert (c, s) == ("lid", 1)                          # seed 0's others wait for its warm-up
    assert q.take() == "wait"
    ready[0] = True
    assert q.take()[:2] == ("grad", 0)
    (tmp_path / "none-s0").mkdir()
    (tmp_path / "none-s0" / "result.json").write_text("{}")   # finished: skipped
    assert q.take() == "wait"
    ready[1] = True
    assert [q.take()[:2] for _ in range(2)] == [("grad", 1), ("none", 1)]
    assert q.take() is None


def test_proxy_files_of_another_setting_are_refused(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"settings": {"C": 16, "N": 5, "image_size": 32}, "scores": {}}))
    with pytest.raises(ValueError, match=r"--proxies: .* another setting: C \(16 there, 8 here\)"):
        study.load_proxies(f, "--proxies", {"C": 8, "N": 5, "image_size": 32})
    assert study.load_proxies(f, "--proxies", {"C": 16})["settings"]["N"] == 5
    with pytest.raises(ValueError, match="--proxy-search: .* does not exist"):
        study.load_proxies(tmp_path / "nope.json", "--proxy-search")
    f.write_text("{}")
    with pytest.raises(ValueError, match="not a proxy score file"):
        study.load_proxies(f)


def test_trimmed_results_give_the_same_report():
    runs = fake_runs()
    for r in runs.values():
        r["split_tree"]["r"]["split"]["vectors"] = [[1.0] * 50]
        r["search"] = {"history": list(range(100))}
    trimmed = {k: json.loads(json.dumps(study.trim_result(r))) for k, r in runs.items()}
    assert "vectors" not in trimmed[("lid", 0)]["split_tree"]["r"]["split"] and "search" not in trimmed[("lid", 0)]
    kw = dict(seeds=list(range(5)), criteria=["lid", "grad", "random", "none"], resamples=100)
    assert study.paired_report(trimmed, **kw) == study.paired_report(runs, **kw)


def test_found_cells_in_the_top_fraction_are_counted():
    runs = fake_runs()
    for s, acc in enumerate([89.0, 89.65, 91.0, None, 89.64]):
        runs[("lid", s)]["best_arch_benchmark"] = {"cifar10_valid_acc": acc} if acc is not None else None
    rep = study.paired_report(runs, seeds=list(range(5)), criteria=["lid", "grad", "random", "none"],
                              resamples=50, top_threshold=89.65)
    # fake_result's found cell is 90.0 for the other criteria; lid: 89.65 and 91.0 reach 89.65
    assert rep["found_top10"]["count"] == {"lid": 2, "grad": 5, "random": 5, "none": 5}
    assert "lid 2 of 5 seeds" in study.markdown(rep)
    assert "found_top10" not in study.paired_report(runs, seeds=list(range(5)),
                                                    criteria=["lid", "none"], resamples=50)


def test_top_fraction_threshold_against_a_sorted_list():
    values = list(range(1, 101)) + [float("nan")]        # 1..100: the best 10 % are 91..100
    assert study.top_fraction_threshold(values) == pytest.approx(np.quantile(np.arange(1, 101), 0.9))
    assert 90 < study.top_fraction_threshold(values) <= 91
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            study.top_fraction_threshold(values, bad)
    with pytest.raises(ValueError, match="finite"):
        study.top_fraction_threshold([float("nan")])


def test_nb201_top_ten_percent_threshold():
    """NB201's cifar10_valid_acc: 15,625 cells, the best 10 % at 89.65 % or more (the issue's figure)."""
    path = ROOT.parent / "shared" / "data" / "nb201_cifar10_valid.csv"
    if not path.is_file():
        pytest.skip(f"NB201 ground truth not found at {path} (`naslid data nb201` builds it)")
    from naslid.groundtruth.table import load_benchmark
    from naslid.spaces import get_space

    values = load_benchmark(str(path), get_space("nb201")).values("cifar10_valid_acc")
    t = study.top_fraction_threshold(values)
    assert round(t, 2) == 89.65
    assert np.mean(np.asarray(values) >= t) == pytest.approx(0.1, abs=1e-3)


def test_committed_criteria_study_report_recomputes_from_its_raw_results():
    """results/search/criteria_study: the trimmed runs, proxy scores and the stand-alone cache
    committed with the study give back the committed report.json, number for number."""
    from naslid.studies.standalone import load_standalone_truth

    d = ROOT / "results" / "search" / "criteria_study"
    committed = json.loads((d / "report.json").read_text())
    seeds, criteria = committed["seeds_complete"], committed["criteria"]
    runs = study.load_runs(d, seeds, criteria)
    rep = study.paired_report(
        runs, seeds=seeds, criteria=criteria, proxies=study.load_proxies(d / "proxies_sample.json"),
        standalone=load_standalone_truth(ROOT / "results" / "standalone" / "standalone_cpu.csv", None),
        proxy_search=[study.load_proxies(d / f) for f in ("synflow_all_best.json", "naswot_all_best.json")],
        top_threshold=committed["found_top10"]["threshold"])
    assert json.loads(json.dumps(rep)) == committed
    assert len(seeds) >= 5 and committed["resolves"]
