"""naslid.studies.standalone and studies/standalone_truth.py: stand-alone training at a micro setting
(synthetic 8x8 images, NB201 C=4), per-cell determinism, the resumable cache and its refusals, and
the cell subset of the real NB201 ranking sample (the CSV of `naslid data nb201`)."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from naslid.config import SearchConfig
from naslid.data import DataSplits, TensorImageSet, fixed_batches
from naslid.run.final_search import evaluation_data
from naslid.spaces import get_space
from naslid.studies.standalone import (MIN_CELLS, TRUTH_COLUMN, check_cache, check_cells,
                               data_fingerprint, load_standalone_truth, provenance,
                               run_cells, select_cells, settings_hash, sidecar_path,
                               standalone_settings, train_standalone, truth_report)
from naslid.blocks.supernet_training import OptimConfig

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "studies" / "standalone_truth.py"
CONV = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
POOL = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"


def script():
    spec = importlib.util.spec_from_file_location("standalone_truth_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------------
# a micro setting: 4 classes of 8x8 images, each class one bright quadrant under noise
# ------------------------------------------------------------------------------------------------
def synthetic_splits(n_train: int = 256, n_valid: int = 128, seed: int = 0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)

    def images(n):
        y = torch.arange(n) % 4
        x = torch.randint(0, 120, (n, 3, 8, 8), generator=g)
        for c in range(4):
            r, q = divmod(c, 2)
            x[y == c, :, 4 * r:4 * r + 4, 4 * q:4 * q + 4] += 120
        return TensorImageSet(x.to(torch.uint8), y)

    train, valid = images(n_train), images(n_valid)
    return DataSplits("synthetic", train, valid, valid, 4, (0.4, 0.4, 0.4), (0.25, 0.25, 0.25), augment=False)


@pytest.fixture(scope="module")
def micro():
    data = synthetic_splits()
    space = get_space("nb201", C=4, N=1, num_classes=4, in_channels=3, input_size=8)
    valid = fixed_batches(data, "valid", 64)

    def train(arch, seed=0, epochs=2):
        return train_standalone(space, arch, data, valid, epochs=epochs, batch_size=32,
                                optim=OptimConfig(lr=0.05), seed=seed)
    return train


def fake_row(arch: str, i: int = 0) -> dict:
    return {"arch": arch, "nb201_index": i, TRUTH_COLUMN: 50.0 + i, "params": 1000 + i,
            "standalone_acc": 40.0 + 0.5 * i, "standalone_loss": 2.0 - 0.01 * i, "train_loss": 1.5,
            "train_acc": 45.0, "train_s": 0.1}


ARCHS = [f"|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|{op}~2|"
         for op in ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")]


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
def test_training_learns_an_easy_task(micro):
    r = micro(CONV, epochs=3)
    assert r["standalone_acc"] > 70.0, r          # chance: 25 %
    assert r["standalone_loss"] < 1.0, r           # chance: ln 4 = 1.39
    assert set(r) == {"arch", "params", "standalone_acc", "standalone_loss", "train_loss", "train_acc",
                      "train_s"}
    assert r["params"] == get_space("nb201", C=4, N=1, num_classes=4, input_size=8).count_params(CONV)


def test_result_depends_on_seed_and_arch_only(micro):
    def strip(r):
        return {k: v for k, v in r.items() if k != "train_s"}

    torch.manual_seed(123)
    first = [strip(micro(a)) for a in (CONV, POOL)]
    torch.manual_seed(999)
    rev = [strip(micro(a)) for a in (POOL, CONV)]
    assert first == rev[::-1]                      # bit for bit, whatever ran before
    other = strip(micro(CONV, seed=1))
    assert other["standalone_loss"] != first[0]["standalone_loss"]


# ------------------------------------------------------------------------------------------------
# the cache
# ------------------------------------------------------------------------------------------------
class Killed(RuntimeError):
    pass


def test_resume_skips_finished_cells(tmp_path):
    out, settings = tmp_path / "sa.csv", standalone_settings(epochs=5)
    calls = []

    def train_one(arch, die_after=None):
        if die_after is not None and len(calls) == die_after:
            raise Killed
        calls.append(arch)
        return fake_row(arch, ARCHS.index(arch))

    with pytest.raises(Killed):
        run_cells(ARCHS, out, settings, lambda a: train_one(a, die_after=2), session={"n": 1})
    assert calls == ARCHS[:2]
    with open(out) as f:
        assert [r["arch"] for r in csv.DictReader(f)] == ARCHS[:2]   # finished cells kept
    rows = run_cells(ARCHS, out, settings, train_one, session={"n": 2})
    assert calls == ARCHS                          # only the three missing cells trained
    assert [r["arch"] for r in rows] == ARCHS
    run_cells(ARCHS, out, settings, train_one, session={"n": 3})
    assert len(calls) == len(ARCHS)                # nothing left to train
    meta = json.loads(sidecar_path(out).read_text())
    assert [(s["n"], s["cells_to_train"]) for s in meta["sessions"]] == [(1, 5), (2, 3)]
    truth = load_standalone_truth(out, settings)
    assert truth.archs == ARCHS and truth.settings_hash == settings_hash(settings)
    assert truth.rows[3] == {**fake_row(ARCHS[3], 3), "settings_hash": settings_hash(settings)}  # exact


@pytest.mark.parametrize("change, option", [({"epochs": 6}, "--epochs"), ({"seed": 1}, "--seed")])
def test_cache_of_another_setting_is_refused(tmp_path, change, option):
    out = tmp_path / "sa.csv"
    run_cells(ARCHS[:2], out, standalone_settings(epochs=5), lambda a: fake_row(a))
    other = standalone_settings(**{"epochs": 5, **change})
    for call in (lambda: run_cells(ARCHS, out, other, lambda a: fake_row(a)),
                 lambda: load_standalone_truth(out, other)):
        with pytest.raises(ValueError, match=f"another setting.*{option}"):
            call()
    cfg = SearchConfig.preset_config("cpu")
    cfg.space.C = 16                               # another space: named as the preset's field
    with pytest.raises(ValueError, match=r"space\.C \(the cpu preset\): 8 -> 16"):
        check_cache(out, standalone_settings(cfg, epochs=5))


def test_cache_damage_and_other_data_are_refused(tmp_path):
    out, settings = tmp_path / "sa.csv", standalone_settings()
    run_cells(ARCHS[:2], out, settings, lambda a: fake_row(a), data_fingerprint="aaaa")
    with pytest.raises(ValueError, match="--data: .* other data"):
        run_cells(ARCHS, out, settings, lambda a: fake_row(a), data_fingerprint="bbbb")
    text = out.read_text()
    out.write_text(text.replace(settings_hash(settings), "0123456789abcdef", 1))
    with pytest.raises(ValueError, match="another settings hash"):
        load_standalone_truth(out, settings)
    out.write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(ValueError, match="duplicates line 2"):
        load_standalone_truth(out, None)
    out.write_text(text)
    sidecar_path(out).unlink()
    with pytest.raises(ValueError, match="sidecar"):
        load_standalone_truth(out, settings)
    with pytest.raises(ValueError, match="--out .* exists without"):
        run_cells(ARCHS, out, settings, lambda a: fake_row(a))
    with pytest.raises(FileNotFoundError):
        load_standalone_truth(tmp_path / "absent.csv", settings)


def test_report_and_metrics(tmp_path):
    out, settings = tmp_path / "sa.csv", standalone_settings()
    run_cells(ARCHS, out, settings, lambda a: fake_row(a, ARCHS.index(a)))
    truth = load_standalone_truth(out, settings)
    rep = truth_report(truth.rows)
    assert rep["n"] == 5 and set(rep["predictors"]) == {"standalone_acc", "neg_standalone_loss", "params"}
    for m in rep["predictors"].values():           # fake rows: all rise with the truth
        assert m["kendall_tau"] == pytest.approx(1.0) and m["spearman_rho"] == pytest.approx(1.0)
        assert m["kendall_tau_ci95"] is not None
    scores = {a: -i for i, a in enumerate(ARCHS)}
    assert truth.metrics(scores)["kendall_tau"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="no score for 1 of the 5"):
        truth.metrics({a: 0.0 for a in ARCHS[1:]})
    json.dumps(provenance())


# ------------------------------------------------------------------------------------------------
# the setting and the options
# ------------------------------------------------------------------------------------------------
def test_settings_are_the_cpu_presets():
    cfg = SearchConfig.preset_config("cpu")
    s = standalone_settings(epochs=5, seed=0)
    assert (s["space"]["C"], s["space"]["N"], s["data"]["image_size"]) == (cfg.space.C, cfg.space.N,
                                                                          cfg.data.image_size)
    assert (s["train"]["lr"], s["train"]["batch_size"], s["train"]["grad_clip"]) == (
        cfg.train.lr, cfg.data.batch_size, cfg.train.grad_clip)
    assert s["eval"]["images"] == cfg.search.eval_images and s["data"]["split_seed"] == cfg.seed
    assert s["data"]["dataset"] == "npz" and s["data"]["augment"] is False
    assert settings_hash(s) == settings_hash(standalone_settings())
    assert settings_hash(s) != settings_hash(standalone_settings(epochs=6))
    with pytest.raises(ValueError, match="--epochs"):
        standalone_settings(epochs=0)


def test_evaluation_data_and_fingerprint():
    data = synthetic_splits(n_valid=200)
    sub = evaluation_data(data, 40)
    assert len(sub.valid) == 40 and torch.bincount(sub.valid.labels).tolist() == [10] * 4
    assert evaluation_data(data, 40).valid.labels.tolist() == sub.valid.labels.tolist()
    assert evaluation_data(data, None) is data
    assert data_fingerprint(sub) == data_fingerprint(evaluation_data(data, 40))
    assert data_fingerprint(sub) != data_fingerprint(evaluation_data(data, 41))


def test_too_few_cells_and_missing_files_are_refused(tmp_path):
    st = script()
    with pytest.raises(ValueError, match=r"--cells 10: .* at least 40 .* --allow-few"):
        st.main(["--cells", "10", "--out", str(tmp_path / "x.csv")])
    check_cells(10, allow_few=True)
    check_cells(MIN_CELLS)
    with pytest.raises(ValueError, match="--cells 501"):
        check_cells(501)
    with pytest.raises(ValueError, match=r"--data .*nope\.npz.* not found.*naslid data cifar10"):
        st.main(["--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x.csv")])
    with pytest.raises(ValueError, match=r"--benchmark .*nope\.csv.* not found"):
        st.main(["--benchmark", str(tmp_path / "nope.csv"), "--data", str(SCRIPT),
                 "--out", str(tmp_path / "x.csv")])
    assert not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------------------------------------
# the cells, on the real NB201 benchmark
# ------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_cells_are_a_stratified_subset_of_the_ranking_sample(nb201_bench):
    from naslid.ranking import sample_stratified_archs

    _, bench = nb201_bench
    pool = sample_stratified_archs(bench, 500, seed=0)   # the pipeline's ranking sample
    cells = select_cells(bench, 40)
    assert cells == select_cells(bench, 40)               # deterministic
    assert len(set(cells)) == 40 and set(cells) <= set(pool)
    pos = sorted(pool.index(c) for c in cells)            # pool is in ascending truth order
    edges = [(i * 500) // 40 for i in range(41)]
    assert all(edges[b] <= p < edges[b + 1] for b, p in enumerate(pos))   # one cell per bin
    accs = [bench.acc(c) for c in cells]
    assert accs == sorted(accs)
    assert accs[0] < 70.0 and accs[-1] > 90.0             # spans the sample (68.7 .. 91.0)
    with pytest.raises(ValueError, match="--cells 12"):
        select_cells(bench, 12)
    assert len(select_cells(bench, 12, allow_few=True)) == 12
