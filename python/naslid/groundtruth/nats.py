"""Reading the official NAS-Bench-201 / NATS-Bench (topology) files, without their packages.

Formats (the files' own layout, as written by the ``nas_201_api`` / ``nats_bench`` packages; every
value is a plain Python dict, list, str or number, so ``pickle`` / ``torch.load(weights_only=True)``
read them):

``NATS-tss-v1_0-3ffb9-simple/``   a folder: ``meta.pickle.pbz2`` (bz2 pickle with ``meta_archs``,
                                  the 15,625 arch strings in official index order) and one
                                  ``{index:06d}.pickle.pbz2`` per architecture holding
                                  ``{hp: arch_state}`` with hp ``"12"`` and ``"200"`` (epochs).
``NATS-tss-v1_0-3ffb9.pickle.pbz2`` one bz2 pickle: ``meta_archs``, ``arch2infos``
                                  (``{index: {hp: arch_state}}``), ``evaluated_indexes``.
``NAS-Bench-201-v1_[01]-*.pth``   one ``torch.save`` file: ``meta_archs``, ``arch2infos``
                                  (``{index: {"less": arch_state, "full": arch_state}}``; "full" is
                                  the 200-epoch schedule), ``evaluated_indexes``.

An ``arch_state`` (``ArchResults.state_dict()``) has ``dataset_seed`` (``{dataset: [seeds]}``) and
``all_results`` (``{(dataset, seed): trial}``); a trial (``ResultsCount.state_dict()``) has
``epochs``, ``params`` (millions), ``flop`` and ``eval_acc1es`` (``{"<set>@<epoch>": percent}``).

Columns: the accuracy after the last epoch, averaged over the seeds, named ``<data>_<split>_acc``:
``cifar10_valid_acc`` (dataset ``cifar10-valid``, set ``x-valid``: the accuracy a search may look
at), ``cifar10_test_acc`` (``cifar10``, ``ori-test``), ``cifar100_valid_acc`` / ``cifar100_test_acc``
and ``imagenet16_120_valid_acc`` / ``imagenet16_120_test_acc`` (``x-valid`` / ``x-test``).
"""
from __future__ import annotations

import bz2
import math
import os
import pickle
import re
from pathlib import Path
from typing import Iterator, Mapping

#: (official dataset, evaluation set) -> our column, in output order.
ACC_COLUMNS = {
    ("cifar10-valid", "x-valid"): "cifar10_valid_acc",
    ("cifar10", "ori-test"): "cifar10_test_acc",
    ("cifar100", "x-valid"): "cifar100_valid_acc",
    ("cifar100", "x-test"): "cifar100_test_acc",
    ("ImageNet16-120", "x-valid"): "imagenet16_120_valid_acc",
    ("ImageNet16-120", "x-test"): "imagenet16_120_test_acc",
}
#: the training schedules of the files: hp key of NATS-Bench -> key of NAS-Bench-201's .pth.
HP_KEYS = {"200": "full", "12": "less"}
_ARCH_FILE = re.compile(r"^(\d+)\.pickle\.pbz2$")


def _bz2_pickle(path: Path, where: str):
    try:
        with bz2.BZ2File(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise ValueError(f"{where}: cannot read {str(path)!r} as a bz2 pickle ({type(e).__name__}: {e})") from e


def _meta_archs(d, where: str) -> list[str]:
    if not isinstance(d, Mapping) or "meta_archs" not in d:
        raise ValueError(f"{where}: no 'meta_archs' (the architecture strings); is this an official "
                         "NAS-Bench-201 / NATS-Bench topology file?")
    return list(d["meta_archs"])


def read_arch_states(path: str | os.PathLike, hp: str = "200") -> Iterator[tuple[int, str, dict]]:
    """Yield ``(index, arch string, arch_state)`` for every evaluated architecture, in index order.

    ``path``: a ``NATS-tss-*-simple`` folder, a ``NATS-tss-*.pickle.pbz2`` file or a
    ``NAS-Bench-201-*.pth`` file; ``hp``: ``"200"`` (default, the 200-epoch schedule) or ``"12"``.
    FileNotFoundError when absent; ValueError naming the file for any other layout.
    """
    if hp not in HP_KEYS:
        raise ValueError(f"hp must be one of {sorted(HP_KEYS)}, got {hp!r}")
    path = Path(path)
    where = f"benchmark {str(path)!r}"
    if not path.exists():
        raise FileNotFoundError(f"{where}: not found")
    if path.is_dir():
        meta_file = path / "meta.pickle.pbz2"
        if not meta_file.is_file():
            raise ValueError(f"{where}: a folder without meta.pickle.pbz2 (expected the "
                             "NATS-tss-v1_0-3ffb9-simple folder)")
        archs = _meta_archs(_bz2_pickle(meta_file, where), where)
        files = sorted((int(m.group(1)), p) for p in path.iterdir() if (m := _ARCH_FILE.match(p.name)))
        if not files:
            raise ValueError(f"{where}: no <index>.pickle.pbz2 architecture files")
        for idx, p in files:
            yield idx, _arch(archs, idx, where), _hp_state(_bz2_pickle(p, where), hp, idx, where)
        return
    if path.name.endswith(".pth"):
        import torch

        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for foreign / truncated files
            raise ValueError(f"{where}: cannot read it as a NAS-Bench-201 .pth file "
                             f"({type(e).__name__}: {e})") from e
    elif path.name.endswith(".pbz2"):
        d = _bz2_pickle(path, where)
    else:
        raise ValueError(f"{where}: not a NATS-tss-*-simple folder, a NATS-tss-*.pickle.pbz2 or a "
                         "NAS-Bench-201-*.pth file")
    archs = _meta_archs(d, where)
    if "arch2infos" not in d:
        raise ValueError(f"{where}: no 'arch2infos' (the per-architecture results)")
    for idx in sorted(d["arch2infos"]):
        yield int(idx), _arch(archs, int(idx), where), _hp_state(d["arch2infos"][idx], hp, int(idx), where)


def _arch(archs: list[str], idx: int, where: str) -> str:
    if not 0 <= idx < len(archs):
        raise ValueError(f"{where}: architecture index {idx} outside meta_archs (0..{len(archs) - 1})")
    return archs[idx]


def _hp_state(infos, hp: str, idx: int, where: str) -> dict:
    if not isinstance(infos, Mapping):
        raise ValueError(f"{where}: architecture {idx}: expected a dict of schedules, got {type(infos).__name__}")
    for key in (hp, HP_KEYS[hp]):
        if key in infos:
            return infos[key]
    raise ValueError(f"{where}: architecture {idx} has no {hp}-epoch results (keys {sorted(infos)})")


def _trials(state: Mapping, dataset: str, where: str) -> list[Mapping]:
    seeds = state.get("dataset_seed", {}).get(dataset, [])
    try:
        return [state["all_results"][(dataset, s)] for s in seeds]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where}: {dataset} seeds {seeds} without results ({e})") from e


def arch_metrics(state: Mapping, *, where: str = "benchmark") -> dict:
    """Columns of one ``arch_state``: every ``ACC_COLUMNS`` value present (mean over seeds of the
    last epoch's accuracy, percent), ``params_m_cifar10`` (mean over the ``cifar10`` trials, else
    ``cifar10-valid``; millions) and ``n_seeds`` (trials of ``cifar10-valid``)."""
    out: dict = {}
    for (dataset, split), col in ACC_COLUMNS.items():
        vals = []
        for t in _trials(state, dataset, where):
            key = f"{split}@{int(t['epochs']) - 1}"
            if key in t.get("eval_acc1es", {}):
                vals.append(float(t["eval_acc1es"][key]))
        if vals:
            out[col] = math.fsum(vals) / len(vals)
    for dataset in ("cifar10", "cifar10-valid"):
        trials = _trials(state, dataset, where)
        if trials:
            out["params_m_cifar10"] = math.fsum(float(t["params"]) for t in trials) / len(trials)
            break
    out["n_seeds"] = len(state.get("dataset_seed", {}).get("cifar10-valid", []))
    return out


def read_cells(path: str | os.PathLike, space, hp: str = "200") -> Iterator[tuple[int, dict, dict]]:
    """(index, arch, metrics) of every architecture of an official file (``read_arch_states``):
    the arch parsed by ``space`` (ValueError naming the file and index when it is not one of its
    cells) and its ``arch_metrics``."""
    for idx, arch_str, state in read_arch_states(path, hp=hp):
        try:
            arch = space.arch_from_string(arch_str)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"benchmark {str(path)!r}: architecture {idx} {arch_str!r} is not in the "
                             f"{space.name} space ({e})") from e
        yield idx, arch, arch_metrics(state, where=f"benchmark {str(path)!r}, architecture {idx}")

