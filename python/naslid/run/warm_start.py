"""Adopting another run's warm-up (``config.warm_start``): runs that differ only from the first
split on (the split criterion, the leaf epochs, the final search) can share one warm-up.

The root of every run trains ``train.warmup_epochs[0]`` epochs with seeds derived from
(seed, node ``r``, stage ``warmup-0``) only, so two runs that agree on the fields returned by
``warmup_identity`` compute the same warm-up (bit for bit with the same thread count).
``load_warm_start`` checks that agreement against the source run's ``config.yaml`` and returns its
root checkpoint at the end of the warm-up; ``run_search`` saves it as this run's root checkpoint,
tagged with this run's config hash, before the first level trains (and so trains no warm-up).
"""
from __future__ import annotations

import copy
from pathlib import Path

from .checkpoint import MANIFEST, RunFolder, load_checkpoint
from ..config import SearchConfig
from ..errors import InputError
from .store import node_checkpoint
from .tree import ROOT, warmup_stage

ROOT_CHECKPOINT = node_checkpoint(ROOT)
WARMUP_STAGE = warmup_stage(0)
# train fields the root warm-up does not read
_AFTER_WARMUP = ("leaf_epochs", "leaf_init")


def warmup_identity(cfg) -> dict:
    """The fields of a ``SearchConfig`` that determine its root warm-up: space, data, seed and
    the train section without the leaf fields, with only the first level's epochs."""
    d = cfg.to_dict()
    train = copy.deepcopy(d["train"])
    for k in _AFTER_WARMUP:
        train.pop(k, None)
    train["warmup_epochs"] = train["warmup_epochs"][:1]
    data = dict(d["data"])
    if data.get("data_dir") is not None:
        data["data_dir"] = str(Path(data["data_dir"]).expanduser().resolve())
    return {"space": d["space"], "data": data, "train": train, "seed": d["seed"]}


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k} ({vb!r} there, {va!r} here)")
    return out


class WarmStartNotReady(InputError):
    """The source run has not finished its warm-up (yet): a later call may succeed."""


def _read_source_config(src: Path, where: str, not_ready: type = InputError) -> SearchConfig:
    if not (src / MANIFEST).is_file() or not (src / "config.yaml").is_file():
        raise not_ready(f"{where} holds no naslid run ({MANIFEST} and config.yaml)")
    RunFolder.read_manifest(src)
    try:
        return SearchConfig.from_yaml(src / "config.yaml", base=SearchConfig())
    except ValueError as e:
        raise InputError(f"{where}: its config.yaml cannot be read ({e})") from None


def _warmup_state(src: Path, where: str, target: int) -> dict:
    """The source's root checkpoint when it holds the finished ``target``-epoch warm-up;
    WarmStartNotReady while the warm-up runs, ValueError when the root trained on past it."""
    path = src / "ckpt" / f"{ROOT_CHECKPOINT}.pt"
    if not path.is_file():
        raise WarmStartNotReady(f"{where} has no root checkpoint ({path.name}); its warm-up has not started")
    state = load_checkpoint(path, name=ROOT_CHECKPOINT)
    if state.get("stage") != WARMUP_STAGE:
        raise InputError(f"{where}: its root trained on past the warm-up (stage {state.get('stage')!r}: "
                         f"criterion none keeps no warm-up checkpoint); warm-start from a run that splits")
    if state.get("epoch") != target:
        raise WarmStartNotReady(f"{where}: its warm-up is not finished ({state.get('epoch')} of {target} "
                                f"epochs); resume that run first")
    return state


def check_source_ready(src) -> None:
    """Returns when run folder ``src`` holds a finished warm-up another run can adopt (its own
    ``train.warmup_epochs[0]`` epochs); WarmStartNotReady while it does not yet, ValueError when it
    never will (its root trained on past the warm-up)."""
    src = Path(src)
    where = f"warm-start source {str(src)!r}"
    theirs = _read_source_config(src, where, WarmStartNotReady)
    _warmup_state(src, where, theirs.train.warmup_epochs[0])


def load_warm_start(cfg, threads: int | None = None) -> dict:
    """The root checkpoint state at the end of the warm-up of the run folder ``cfg.warm_start``.

    ValueError naming ``config.warm_start`` when the folder holds no run, its warm-up is not
    finished (``WarmStartNotReady``) or not kept (a ``none`` run trains its root on past the
    warm-up), or it differs from this run in a field the warm-up depends on (listed), or ran
    with another intra-op thread count than ``threads`` (MKL / oneDNN sums depend on it)."""
    src = Path(cfg.warm_start)
    where = f"config.warm_start: {str(src)!r}"
    theirs = _read_source_config(src, where)
    diff = _differences(warmup_identity(cfg), warmup_identity(theirs))
    if diff:
        raise InputError(f"{where} warmed up differently; the warm-up depends on: " + "; ".join(diff))
    theirs_threads = (RunFolder.read_manifest(src) or {}).get("threads")
    if threads is not None and theirs_threads not in (None, threads):
        raise InputError(f"{where} warmed up with {theirs_threads} intra-op CPU threads, this run "
                         f"uses {threads}; results depend on the thread count (MKL / oneDNN sums): "
                         f"run with --set threads={theirs_threads}")
    return _warmup_state(src, where, cfg.train.warmup_epochs[0])
