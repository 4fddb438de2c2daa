"""Writers of small fixtures in the official file formats (CIFAR-10 python archive, NATS-Bench
topology folder / file, NAS-Bench-201 .pth), for the tests of ``naslid data``.

The layouts follow the official readers (``nats_bench.api_utils``: ``ArchResults.state_dict``,
``ResultsCount.state_dict``, ``pickle_save``; the CIFAR-10 page's python pickles), written here
from first principles with plain dicts.
"""
from __future__ import annotations

import bz2
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ----- CIFAR-10 -----------------------------------------------------------------------------------
def write_cifar10_archive(path: Path, x_train, y_train, x_test, y_test) -> Path:
    """cifar-10-python.tar.gz with the NHWC uint8 images cut into 5 train batches (the official
    split is 10,000 each; here N/5, rounded up) and a test batch."""
    def batch(x, y, label):
        data = np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(x), -1)
        return {b"batch_label": label.encode(), b"labels": [int(v) for v in y], b"data": data,
                b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]}

    members = {}
    bounds = np.array_split(np.arange(len(x_train)), 5)
    for i, idx in enumerate(bounds, start=1):
        members[f"data_batch_{i}"] = batch(x_train[idx], y_train[idx], f"training batch {i} of 5")
    members["test_batch"] = batch(x_test, y_test, "testing batch 1 of 1")
    members["batches.meta"] = {b"num_cases_per_batch": 10000, b"label_names": [n.encode() for n in CLASS_NAMES],
                               b"num_vis": 3072}
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            raw = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


# ----- NAS-Bench-201 / NATS-Bench ------------------------------------------------------------------
def trial(dataset: str, seed: int, params: float, accs: dict[str, float], epochs: int = 200) -> dict:
    """A ``ResultsCount.state_dict()``: ``accs`` maps an eval set (``x-valid``, ``ori-test``, ...) to
    the last epoch's accuracy; epoch 0 gets a different (lower) value, so a reader that does not
    take the last epoch fails."""
    acc1, losses, times = {}, {}, {}
    for name, acc in accs.items():
        for ep, v in ((0, acc / 3), (epochs - 1, acc)):
            acc1[f"{name}@{ep}"], losses[f"{name}@{ep}"], times[f"{name}@{ep}"] = v, 1.0, 0.1
    return {"name": dataset, "net_state_dict": None, "train_acc1es": {epochs - 1: 99.0},
            "train_acc5es": None, "train_losses": {epochs - 1: 0.01}, "train_times": None,
            "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "class_num": 10},
            "params": params, "flop": 10.0, "seed": seed, "epochs": epochs, "latency": [0.01],
            "eval_names": list(accs), "eval_acc1es": acc1, "eval_times": times, "eval_losses": losses}


def arch_state(index: int, arch: str, trials: list[dict]) -> dict:
    """An ``ArchResults.state_dict()`` of ``trials`` (each keyed by its dataset and seed)."""
    seeds: dict[str, list[int]] = {}
    for t in trials:
        seeds.setdefault(t["name"], []).append(t["seed"])
    return {"arch_index": index, "arch_str": arch, "dataset_seed": {k: sorted(v) for k, v in seeds.items()},
            "all_results": {(t["name"], t["seed"]): t for t in trials}, "clear_net_done": True}


def _pbz2(obj, path: Path) -> None:
    with bz2.BZ2File(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def write_nats_simple(folder: Path, meta_archs: list[str], states: dict[int, dict]) -> Path:
    """``NATS-tss-v1_0-3ffb9-simple/``: meta.pickle.pbz2 and ``{index:06d}.pickle.pbz2`` per arch
    (``{"200": state, "12": state}``)."""
    folder.mkdir(parents=True, exist_ok=True)
    _pbz2({"meta_archs": meta_archs, "evaluated_indexes": sorted(states)}, folder / "meta.pickle.pbz2")
    for idx, st in states.items():
        _pbz2({"12": _short(st), "200": st}, folder / f"{idx:06d}.pickle.pbz2")
    return folder


def write_nats_full(path: Path, meta_archs: list[str], states: dict[int, dict]) -> Path:
    """``NATS-tss-v1_0-3ffb9.pickle.pbz2``: one bz2 pickle with every arch's schedules."""
    _pbz2({"meta_archs": meta_archs, "evaluated_indexes": sorted(states),
           "arch2infos": {i: {"12": _short(s), "200": s} for i, s in states.items()}}, path)
    return path


def write_nb201_pth(path: Path, meta_archs: list[str], states: dict[int, dict]) -> Path:
    """``NAS-Bench-201-v1_1-096897.pth``: torch.save of the dict, schedules ``less`` / ``full``."""
    import torch

    torch.save({"meta_archs": meta_archs, "evaluated_indexes": sorted(states), "total_archs": len(meta_archs),
                "arch2infos": {i: {"less": _short(s), "full": s} for i, s in states.items()}}, path)
    return path


def _short(state: dict) -> dict:
    """The 12-epoch schedule's results: other (lower) numbers, so a reader that mixes up the
    schedules fails."""
    out = dict(state)
    out["all_results"] = {k: {**t, "epochs": 12, "eval_acc1es": {f"{n}@11": 10.0 for n in t["eval_names"]}}
                          for k, t in state["all_results"].items()}
    return out
