"""Stand-alone ground truth at the search's own setting: NB201 cells trained from scratch.

NB201's ``cifar10_valid_acc`` is a 200-epoch, 32x32, C=16, N=5 number; the ``cpu`` preset ranks
cells with a C=8, N=1 network on 16x16 images. Whether a supernet ranks well *at its own setting*
needs a truth at that setting: each cell's stand-alone network (``space.build_subnet(arch)``)
trained from scratch on the preset's data with the preset's optimiser, scored on the very 2,000
held-out images the pipeline scores the supernet on.

The setting (``standalone_settings``) is read from ``SearchConfig.preset_config("cpu")`` (the
preset's dataset read from the CIFAR-10 ``.npz``, ``protocol_config``), plus ``epochs`` and the
``seed`` of the initial weights and the data order:

- data: ``load_splits`` with the preset's ``valid_fraction``, ``image_size``, ``augment`` and the
  preset's ``seed`` (the held-out split does not change with ``seed``);
- training: ``data.batch_size`` batches (last partial batch dropped, as the pipeline's loaders),
  SGD (``train.lr``, ``momentum``, ``nesterov``, ``weight_decay``), ``grad_clip``, cosine per batch
  over the ``epochs`` (``training.build_optimizer`` / ``build_scheduler``);
- evaluation: eval mode (BN running statistics of the training), accuracy % and mean cross-entropy
  on the ``search.eval_images`` held-out images the pipeline scores cells on
  (``naslid.run.final_search.evaluation_data``).

A cell's initial weights and data order are seeded from (``seed``, arch string) by
``pipeline.derive_seed`` (global RNG state restored), so its result does not depend on which
cells ran before it.

Cells (``select_cells``): a stratified subset of the pipeline's ranking sample
(``sample_stratified_archs(benchmark, benchmark.sample_size, seed=0)``), drawn from it the way that
sample is drawn from the benchmark (equal-count quantile bins of the NB201 accuracy, one cell per
bin), so every run's ``result.json`` (``ranking.sampled_points``) scores them.

Cache: a CSV (``COLUMNS``, one row per cell) and a sidecar ``<stem>.json`` (``FORMAT``, the
settings, their hash, a fingerprint of the data, one provenance record per session), read and
written by ``naslid.studies.truth_files``. The CSV is rewritten atomically after every cell; a rerun
skips the cells it holds. ``load_standalone_truth`` reads and validates it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.inherited_eval import classify
from ..scores.proxies import fresh_subnet
from ..blocks.supernet_training import build_optimizer, build_scheduler
from ..config import SearchConfig
from ..data import make_loader
from ..groundtruth.table import Benchmark
from ..ranking import ranking_metrics, sample_stratified_archs
from ..run.checkpoint import atomic_write_json
from ..run.context import derive_seed
from ..run.final_search import EVAL_SELECTION_SEED
from .truth_files import (COLUMNS, FORMAT, OPTION_OF, PRESET, TRUTH_COLUMN, _read_sidecar,  # noqa: F401
                          check_cache, provenance, settings_differences, settings_hash, sidecar_path,
                          write_rows)

#: the issue's minimum number of cells (``--cells`` below it needs ``--allow-few``)
MIN_CELLS = 40
#: seed of ``select_cells``'s draw from the ranking sample, and of the pipeline's sample itself
SELECT_SEED = 0


# ------------------------------------------------------------------------------------------------
# the setting
# ------------------------------------------------------------------------------------------------
def protocol_config(data_file: str | os.PathLike | None = None):
    """The ``cpu`` preset with its CIFAR-10 read from the ``.npz`` file ``data_file`` (a
    ``SearchConfig``; the preset's command line passes ``--dataset npz --data-dir FILE``)."""

    return SearchConfig.from_dict({"data": {"dataset": "npz",
                                            "data_dir": None if data_file is None else str(data_file)}},
                                  base=SearchConfig.preset_config(PRESET))


def standalone_settings(config=None, *, epochs: int = 5, seed: int = 0) -> dict:
    """Everything a cached row's numbers depend on, as a JSON-ready dict: the space, data,
    optimiser and evaluation fields of ``config`` (default ``protocol_config()``), ``epochs`` and
    ``seed``. No paths: the data file is identified by a fingerprint in the cache's sidecar."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"--epochs: expected a positive integer, got {epochs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {seed!r}")
    cfg = protocol_config() if config is None else config
    s, d, t, se = cfg.space, cfg.data, cfg.train, cfg.search
    return {
        "format": FORMAT, "preset": cfg.preset,
        "space": {"name": s.name, "C": s.C, "N": s.N, "width": s.width, "input_size": s.input_size,
                  "options": dict(s.options or {})},
        "data": {"dataset": d.dataset, "image_size": d.image_size, "valid_fraction": d.valid_fraction,
                 "split_seed": cfg.seed, "max_train": d.max_train, "max_valid": d.max_valid,
                 "augment": d.augment},
        "train": {"batch_size": d.batch_size, "drop_last": True, "lr": t.lr, "momentum": t.momentum,
                  "nesterov": t.nesterov, "weight_decay": t.weight_decay, "grad_clip": t.grad_clip,
                  "schedule": "cosine per batch to 0"},
        "eval": {"images": se.eval_images, "batch_size": se.eval_batch_size,
                 "selection_seed": EVAL_SELECTION_SEED, "bn": "eval mode (training running statistics)"},
        "epochs": epochs, "seed": seed,
        "seeding": "derive_seed(seed, 'standalone-init' | 'standalone-data', arch string)",
    }








# ------------------------------------------------------------------------------------------------
# which cells
# ------------------------------------------------------------------------------------------------
def select_cells(benchmark, n: int, *, sample_size: int = 500, allow_few: bool = False) -> list[str]:
    """``n`` arch strings: a stratified subset of the pipeline's ranking sample
    ``sample_stratified_archs(benchmark, sample_size, seed=0)``, drawn from it by the same rule
    (its cells sorted by the first ``*_acc`` column, cut into ``n`` equal-count bins, one drawn per
    bin, seed ``SELECT_SEED``). Ascending ground-truth order. ValueError naming ``--cells`` for
    ``n`` below ``MIN_CELLS`` (unless ``allow_few``) or above ``sample_size``."""

    check_cells(n, allow_few=allow_few, sample_size=sample_size)
    pool = sample_stratified_archs(benchmark, sample_size, SELECT_SEED)
    col = benchmark.acc_columns[0]
    sub = Benchmark(benchmark.space, [{"arch": s, col: benchmark.acc(s, col)} for s in pool],
                    columns=["arch", col], source=f"{benchmark.source} (ranking sample of {sample_size})")
    return sample_stratified_archs(sub, n, SELECT_SEED, col)


def check_cells(n, *, allow_few: bool = False, sample_size: int = 500) -> None:
    """The ``--cells`` rules of ``select_cells`` (ValueError naming ``--cells``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--cells: expected a positive integer, got {n!r}")
    if n < MIN_CELLS and not allow_few:
        raise ValueError(f"--cells {n}: the stand-alone ground truth needs at least {MIN_CELLS} cells "
                         f"for its rank correlations; pass --allow-few for a smaller (trial) run")
    if n > sample_size:
        raise ValueError(f"--cells {n}: the cells are a subset of the pipeline's {sample_size}-cell "
                         f"ranking sample; choose <= {sample_size}")


# ------------------------------------------------------------------------------------------------
# training and evaluation of one cell
# ------------------------------------------------------------------------------------------------
def data_fingerprint(data) -> str:
    """sha256 (16 hex digits) of the training images and labels, the validation images and labels
    (pass ``naslid.run.final_search.evaluation_data(data, n)`` to cover exactly the evaluation images)
    and the normalisation."""
    h = hashlib.sha256()
    for split in (data.train, data.valid):
        idx = torch.arange(len(split))
        h.update(split.get(idx).contiguous().numpy().tobytes())
        h.update(split.labels.contiguous().numpy().tobytes())
    h.update(json.dumps([list(data.mean), list(data.std)]).encode())
    return h.hexdigest()[:16]


def cell_seeds(seed: int, arch_string: str) -> tuple[int, int]:
    """(initial-weights seed, data-order seed) of one cell: ``derive_seed`` of (seed, purpose,
    arch string), independent of any other cell."""

    return derive_seed(seed, "standalone-init", arch_string), derive_seed(seed, "standalone-data", arch_string)


def train_standalone(space, arch, data, valid_batches, *, epochs: int, batch_size: int, optim,
                     seed: int, device: torch.device | str = "cpu") -> dict:
    """Train ``space.build_subnet(arch)`` from scratch and score it.

    Args:
        space: the search space (its options fix the network: C, N, classes, input size).
        arch: arch dict or string.
        data: ``DataSplits`` / ``SearchData``; trains on ``data.train`` (its own augmentation
            setting, last partial batch dropped).
        valid_batches: list of (x float32 (B, C, H, W), y int64 (B,)) to score on
            (``fixed_batches(evaluation_data(data, n), "valid", ...)``).
        epochs, batch_size: the schedule; ``optim``: ``training.OptimConfig`` (SGD, grad clip,
            cosine to ``eta_min`` over ``epochs * batches per epoch`` steps).
        seed: with the arch string, seeds the initial weights and the data order (``cell_seeds``).
    Returns {"arch": arch string, "params", "standalone_acc": %, "standalone_loss": mean
    cross-entropy, "train_loss", "train_acc": last epoch's means, "train_s": training wall seconds}.
    FloatingPointError on a non-finite training loss.
    """

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"train_standalone: epochs must be a positive int, got {epochs!r}")
    s = space.arch_to_string(space.arch_from_string(arch) if isinstance(arch, str) else arch)
    init_seed, data_seed = cell_seeds(seed, s)
    net = fresh_subnet(space, s, init_seed).to(device)
    loader = make_loader(data, "train", batch_size, seed=data_seed, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"train_standalone: batch_size {batch_size} exceeds the "
                         f"{len(data.train)} training images")
    opt = build_optimizer(net, optim)
    sched = build_scheduler(opt, optim, epochs=epochs, steps_per_epoch=len(loader))
    t0 = time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        last = _train_epoch(net, loader, opt, sched, optim.grad_clip, device, f"{s} epoch {e}")
    train_s = time.perf_counter() - t0
    net.eval()
    m = classify(net, valid_batches, device)
    return {"arch": s, "params": sum(p.numel() for p in net.parameters()),
            "standalone_acc": m["acc"], "standalone_loss": m["loss"],
            "train_loss": last["loss"], "train_acc": last["acc"], "train_s": train_s}


def _train_epoch(net: nn.Module, loader: Iterable, opt, sched, grad_clip, device, where: str) -> dict:
    net.train()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        opt.zero_grad(set_to_none=True)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise FloatingPointError(f"train_standalone: non-finite loss {lv} at {where}")
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        sched.step()
        loss_sum += lv * y.numel()
        correct += int((logits.detach().argmax(1) == y).sum())
        n += y.numel()
    return {"loss": loss_sum / n, "acc": 100.0 * correct / n}


# ------------------------------------------------------------------------------------------------
# the cache
# ------------------------------------------------------------------------------------------------














def run_cells(cells: Sequence[str], path: str | os.PathLike, settings: Mapping,
              train_one: Callable[[str], Mapping], *, data_fingerprint: str | None = None,
              session: Mapping | None = None, echo: Callable[[str], None] | None = None) -> list[dict]:
    """Train every cell of ``cells`` the cache at ``path`` does not hold, in order, and return all
    of the cache's rows (earlier ones included).

    ``train_one(arch string)`` returns a row: every column of ``COLUMNS`` but ``settings_hash``.
    The cache is checked first (``check_cache``); a new one gets its sidecar (settings, hash,
    ``data_fingerprint``) before any training; ``session`` (e.g. ``provenance()``) is appended to
    the sidecar's ``sessions`` (with ``cells_to_train``) when there is something to train. After
    every cell the CSV is rewritten atomically, so a killed run keeps the finished cells and a
    rerun skips them."""

    path = Path(path)
    rows = check_cache(path, settings, data_fingerprint=data_fingerprint)
    h = settings_hash(settings)
    done = {r["arch"] for r in rows}
    todo = [c for c in cells if c not in done]
    fresh = not sidecar_path(path).exists()
    meta = ({"format": FORMAT, "settings": dict(settings), "settings_hash": h, "sessions": []}
            if fresh else _read_sidecar(path))
    if fresh or todo:      # a session that trains nothing leaves the sidecar as it is
        if data_fingerprint is not None:
            meta["data_fingerprint"] = data_fingerprint
        if session is not None:
            meta.setdefault("sessions", []).append({**session, "cells_to_train": len(todo)})
        atomic_write_json(sidecar_path(path), meta)
    if not path.exists():
        write_rows(path, [])
    if echo is not None:
        echo(f"{len(cells) - len(todo)} of {len(cells)} cells cached in {path}, {len(todo)} to train")
    for i, arch in enumerate(todo):
        row = dict(train_one(arch))
        missing = [c for c in COLUMNS if c != "settings_hash" and c not in row]
        if missing or row["arch"] != arch:
            raise ValueError(f"run_cells: train_one({arch!r}) returned a row for {row.get('arch')!r} "
                             f"missing {missing}")
        row["settings_hash"] = h
        rows.append(row)
        write_rows(path, rows)
        if echo is not None:
            echo(f"[{i + 1}/{len(todo)}] {arch}: {row['standalone_acc']:.2f} %, loss "
                 f"{row['standalone_loss']:.4f} (NB201 {row[TRUTH_COLUMN]:.2f} %), {row['train_s']:.0f} s")
    return rows


# ------------------------------------------------------------------------------------------------
# reading it back
# ------------------------------------------------------------------------------------------------
@dataclass
class StandaloneTruth:
    """A validated cache: ``rows`` (dicts of ``COLUMNS``, file order), the sidecar's ``settings``,
    ``settings_hash`` and the rest of it (``meta``: data fingerprint, sessions)."""

    path: str
    settings: dict
    settings_hash: str
    rows: list
    meta: dict

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def archs(self) -> list[str]:
        return [r["arch"] for r in self.rows]

    def column(self, name: str) -> list[float]:
        if name not in COLUMNS:
            raise ValueError(f"StandaloneTruth.column: unknown column {name!r} (have {list(COLUMNS)})")
        return [r[name] for r in self.rows]

    def metrics(self, scores: Mapping[str, float], column: str = "standalone_acc", *,
                seed: int = 0) -> dict:
        """``ranking.ranking_metrics`` of ``scores`` (arch string -> score, higher = better, e.g.
        a run's ``ranking.sampled_points``) against ``column`` over this truth's cells. ValueError
        listing the cells ``scores`` lacks."""

        missing = [a for a in self.archs if a not in scores]
        if missing:
            raise ValueError(f"StandaloneTruth.metrics: no score for {len(missing)} of the {len(self)} "
                             f"cells (first: {missing[0]})")
        return ranking_metrics([float(scores[a]) for a in self.archs], self.column(column), seed=seed)


def load_standalone_truth(path: str | os.PathLike, expect_settings: Mapping | None) -> StandaloneTruth:
    """Read and validate the cache at ``path`` (CSV + sidecar). ``expect_settings`` (e.g.
    ``standalone_settings(epochs=5)``): the setting the caller needs; a cache of another setting is
    a ValueError listing the differing fields. None accepts the sidecar's setting (every row must
    still carry its hash). FileNotFoundError when the CSV is absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stand-alone cache {str(path)!r} not found (studies/standalone_truth.py "
                                f"writes it)")
    if not sidecar_path(path).is_file():
        raise ValueError(f"stand-alone cache {str(path)!r}: its sidecar {str(sidecar_path(path))!r} is missing")
    meta = _read_sidecar(path)
    rows = check_cache(path, meta["settings"] if expect_settings is None else expect_settings)
    rest = {k: v for k, v in meta.items() if k not in ("settings", "settings_hash")}
    return StandaloneTruth(str(path), meta["settings"], meta["settings_hash"], rows, rest)


def truth_report(rows: Sequence[Mapping], *, seed: int = 0) -> dict:
    """Rank correlations over ``rows`` against NB201's ``cifar10_valid_acc`` of the stand-alone
    accuracy (``standalone_acc``), minus the loss (``neg_standalone_loss``) and the parameter count
    (``params``, the free yardstick): ``{"n", "truth", "predictors": {name: ranking_metrics}}``
    (Kendall τ with its bootstrap 95 % interval, Spearman ρ, ...), plus the training seconds."""

    out = {"n": len(rows), "truth": TRUTH_COLUMN, "predictors": {},
           "train_s_total": float(sum(r["train_s"] for r in rows))}
    if len(rows) < 2:
        return out
    truth = [r[TRUTH_COLUMN] for r in rows]
    preds = {"standalone_acc": [r["standalone_acc"] for r in rows],
             "neg_standalone_loss": [-r["standalone_loss"] for r in rows],
             "params": [float(r["params"]) for r in rows]}
    out["predictors"] = {k: ranking_metrics(v, truth, seed=seed) for k, v in preds.items()}
    return out
