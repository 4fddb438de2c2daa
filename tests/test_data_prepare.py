"""``naslid data``: cifar10.npz from the official CIFAR-10 archive, the ground-truth CSV from the
official NAS-Bench-201 / NATS-Bench files. Fixtures are written in the official formats
(tests/official_formats.py); the oracles are the arrays / rows they were written from."""
from __future__ import annotations

import csv
import urllib.error
import urllib.request

import numpy as np
import pytest

from naslid.cli import main
from official_formats import (CLASS_NAMES, arch_state, trial, write_cifar10_archive, write_nats_full,
                              write_nats_simple, write_nb201_pth)
from helpers import SHARED_DATA


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


# ----- CIFAR-10 -----------------------------------------------------------------------------------
def _check_npz(path, x_train, y_train, x_test, y_test):
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["class_names", "x_test", "x_train", "y_test", "y_train"]
        for k, want in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
            assert z[k].dtype == np.uint8 and z[k].shape == want.shape, k
            assert np.array_equal(z[k], want), k
        assert list(z["class_names"]) == CLASS_NAMES


def test_cifar10_npz_from_archive(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _images(rng, 23), _images(rng, 7)
    archive = write_cifar10_archive(tmp_path / "cifar-10-python.tar.gz", xtr, ytr, xte, yte)
    out = tmp_path / "d" / "cifar10.npz"
    assert main(["data", "cifar10", "--from", str(archive), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    _check_npz(out, xtr, ytr, xte, yte)
    # ... and the search's reader takes it (channel-major -> NCHW is the transpose back)
    from naslid.data import load_npz

    train, test = load_npz(out)
    assert len(train) == 23 and len(test) == 7


@pytest.mark.data
def test_cifar10_npz_reproduces_the_test_input(tmp_path):
    """The first images of the tests' cifar10.npz, written as an official archive, come back
    exactly (pixels, labels, dtypes, class names)."""
    path = SHARED_DATA / "cifar10.npz"
    if not path.is_file():
        pytest.skip(f"cifar10.npz absent ({path.name}; `naslid data cifar10` builds it)")
    with np.load(path) as z:
        xtr, ytr, xte, yte = z["x_train"][:40], z["y_train"][:40], z["x_test"][:15], z["y_test"][:15]
        assert list(z["class_names"]) == CLASS_NAMES
    archive = write_cifar10_archive(tmp_path / "cifar-10-python.tar.gz", xtr, ytr, xte, yte)
    out = tmp_path / "cifar10.npz"
    assert main(["data", "cifar10", "--from", str(archive), "--out", str(out)]) == 0
    _check_npz(out, xtr, ytr, xte, yte)


def test_cifar10_offline_names_the_file_and_the_option(tmp_path, capsys, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    rc = main(["data", "cifar10", "--out", str(tmp_path / "cifar10.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    for needle in ("naslid data: error:", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                   "--from", "cifar-10-python.tar.gz"):
        assert needle in err[0], (needle, err[0])
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def test_cifar10_foreign_archive(tmp_path, capsys):
    import tarfile

    bad = tmp_path / "x.tar.gz"
    with tarfile.open(bad, "w:gz"):
        pass
    assert main(["data", "cifar10", "--from", str(bad), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "data_batch_1" in err and "x.tar.gz" in err
    assert main(["data", "cifar10", "--from", str(tmp_path / "missing.tar.gz")]) == 2
    assert "missing.tar.gz" in capsys.readouterr().err


# ----- NAS-Bench-201 / NATS-Bench -----------------------------------------------------------------
def _space():
    from naslid.spaces.nb201 import NB201Space

    return NB201Space()


def _states_from_rows(rows):
    """Official arch states whose seeds average back to each row's numbers: per-seed accuracies
    v-0.001, v+0.001, v (for 3, 2, 1 seeds), the other datasets' numbers set to something else."""
    offsets = {1: [0.0], 2: [-0.001, 0.001], 3: [-0.001, 0.001, 0.0]}
    states = {}
    for r in rows:
        v, n, p = float(r["cifar10_valid_acc"]), int(r["n_seeds"]), float(r["params_m_cifar10"])
        seeds = [777, 888, 999][:n]
        trials = [trial("cifar10-valid", s, p, {"x-valid": v + d, "ori-test": v - 5}) for s, d in zip(seeds, offsets[n])]
        trials += [trial("cifar10", s, p, {"ori-test": v + 1}) for s in seeds]
        trials += [trial("cifar100", 777, p + 0.01, {"x-valid": v - 20, "x-test": v - 21})]
        trials += [trial("ImageNet16-120", 777, p + 0.02, {"x-valid": v - 50, "x-test": v - 51})]
        states[int(r["index"])] = arch_state(int(r["index"]), r["arch"], trials)
    return states


def _write_all_formats(tmp_path, meta, states):
    return {"simple": write_nats_simple(tmp_path / "NATS-tss-v1_0-3ffb9-simple", meta, states),
            "full": write_nats_full(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", meta, states),
            "pth": write_nb201_pth(tmp_path / "NAS-Bench-201-v1_1-096897.pth", meta, states)}




def test_nb201_csv_by_hand(tmp_path, capsys):
    space = _space()
    meta = [space.arch_to_string(a) for a in space.iter_archs()]
    # two isomorphic cells: only the edge into node 1 differs, and node 1 feeds nothing
    # (edges 1->2 and 1->3 are none), so both are the same network
    iso_a = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    iso_b = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert space.canonical_key(iso_a) == space.canonical_key(iso_b)
    ia, ib = sorted((meta.index(iso_a), meta.index(iso_b)))
    states = {
        0: arch_state(0, meta[0], [trial("cifar10-valid", 777, 0.5, {"x-valid": 80.0}),
                                   trial("cifar10-valid", 888, 0.5, {"x-valid": 81.0}),
                                   trial("cifar10", 777, 0.25, {"ori-test": 90.0})]),
        ia: arch_state(ia, meta[ia], [trial("cifar10-valid", 777, 0.1234564, {"x-valid": 70.123456})]),
        ib: arch_state(ib, meta[ib], [trial("cifar10-valid", 888, 0.2, {"x-valid": 85.0})]),
    }
    want = [["index", "arch", "cifar10_valid_acc", "params_m_cifar10", "n_seeds", "unique_id"],
            ["0", meta[0], "80.5", "0.250000", "2", "0"],
            [str(ia), meta[ia], "70.1235", "0.123456", "1", str(ia)],
            [str(ib), meta[ib], "85.0", "0.200000", "1", str(ia)]]
    for kind, src in _write_all_formats(tmp_path, meta, states).items():
        out = tmp_path / f"{kind}.csv"
        assert main(["data", "nb201", "--from", str(src), "--out", str(out)]) == 0, capsys.readouterr().err
        with open(out, newline="") as f:
            assert list(csv.reader(f)) == want, kind


@pytest.mark.data
def test_nb201_csv_reproduces_the_test_input(tmp_path):
    """The first 400 rows of the tests' ground-truth CSV, written as official files in all three
    layouts, come back byte for byte (same columns, formatting, line ends, unique ids)."""
    path = SHARED_DATA / "nb201_cifar10_valid.csv"
    if not path.is_file():
        pytest.skip(f"{path.name} absent (`naslid data nb201 --from ...` builds it)")
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    head = lines[:401]
    rows = list(csv.DictReader(head))
    space = _space()
    meta = [space.arch_to_string(a) for a in space.iter_archs()]
    for kind, src in _write_all_formats(tmp_path, meta, _states_from_rows(rows)).items():
        out = tmp_path / f"{kind}.csv"
        assert main(["data", "nb201", "--from", str(src), "--out", str(out)]) == 0
        assert out.read_bytes() == "".join(head).encode(), kind


def test_benchmark_reads_official_files_with_the_csv_column_names(tmp_path):
    """``--benchmark`` on an official file: ``cifar10_valid_acc`` (not ``cifar10_valid_valid_acc``)
    and the other datasets' columns, equal to the CSV built from the same file."""
    from naslid.groundtruth.table import load_benchmark

    space = _space()
    meta = [space.arch_to_string(a) for a in space.iter_archs()]
    rows = [{"index": i, "arch": meta[i], "cifar10_valid_acc": 60 + i, "n_seeds": 1 + i % 3,
             "params_m_cifar10": 0.1 * (i + 1)} for i in (3, 10, 42)]
    srcs = _write_all_formats(tmp_path, meta, _states_from_rows(rows))
    assert main(["data", "nb201", "--from", str(srcs["simple"]), "--out", str(tmp_path / "b.csv")]) == 0
    from_csv = load_benchmark(tmp_path / "b.csv", space)
    for src in srcs.values():
        bench = load_benchmark(src, space)
        assert bench.acc_columns == ["cifar10_valid_acc", "cifar10_test_acc", "cifar100_valid_acc",
                                     "cifar100_test_acc", "imagenet16_120_valid_acc", "imagenet16_120_test_acc"]
        for r in rows:
            assert bench.acc(r["arch"]) == pytest.approx(r["cifar10_valid_acc"], abs=1e-9)
            assert bench.acc(r["arch"]) == pytest.approx(from_csv.acc(r["arch"]), abs=5e-5)
            assert bench.acc(r["arch"], "cifar10_test_acc") == pytest.approx(r["cifar10_valid_acc"] + 1)
            assert bench.acc(r["arch"], "imagenet16_120_test_acc") == pytest.approx(r["cifar10_valid_acc"] - 51)


def test_nb201_bad_sources(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "nb201", "--from", str(tmp_path / "empty")]) == 2
    assert "meta.pickle.pbz2" in capsys.readouterr().err
    junk = tmp_path / "NAS-Bench-201.pth"
    junk.write_bytes(b"not a torch file")
    assert main(["data", "nb201", "--from", str(junk)]) == 2
    assert "NAS-Bench-201.pth" in capsys.readouterr().err
    assert main(["data", "nb201", "--from", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
