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
  (``naslid.final_search.evaluation_data``).

A cell's initial weights and data order are seeded from (``seed``, arch string) by
``pipeline.derive_seed`` (global RNG state restored), so its result does not depend on which
cells ran before it.

Cells (``select_cells``): a stratified subset of the pipeline's ranking sample
(``sample_stratified_archs(benchmark, benchmark.sample_size, seed=0)``), drawn from it the way that
sample is drawn from the benchmark (equal-count quantile bins of the NB201 accuracy, one cell per
bin), so every run's ``result.json`` (``ranking.sampled_points``) scores them.

Cache: a CSV (``COLUMNS``, one row per cell) and a sidecar ``<stem>.json`` (``FORMAT``, the
settings, their hash, a fingerprint of the data, one provenance record per session). The CSV is
rewritten atomically after every cell; a rerun skips the cells it holds. ``load_standalone_truth``
reads and validates it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._version import __version__
from .benchmark import Benchmark
from .checkpoint import atomic_write_json, atomic_write_text
from .config import SearchConfig
from .data import make_loader
from .evaluate import classify
from .final_search import EVAL_SELECTION_SEED
from .proxies import fresh_subnet
from .ranking import ranking_metrics, sample_stratified_archs
from .run_context import derive_seed
from .training import build_optimizer, build_scheduler

FORMAT = "naslid-standalone/1"
PRESET = "cpu"
#: the issue's minimum number of cells (``--cells`` below it needs ``--allow-few``)
MIN_CELLS = 40
#: seed of ``select_cells``'s draw from the ranking sample, and of the pipeline's sample itself
SELECT_SEED = 0
TRUTH_COLUMN = "cifar10_valid_acc"
COLUMNS = ("arch", "nb201_index", TRUTH_COLUMN, "params", "standalone_acc", "standalone_loss",
           "train_loss", "train_acc", "train_s", "settings_hash")
_INT_COLUMNS = ("nb201_index", "params")
_FLOAT_COLUMNS = (TRUTH_COLUMN, "standalone_acc", "standalone_loss", "train_loss", "train_acc",
                  "train_s")
#: the benchmarks/standalone_truth.py option that sets a settings field
OPTION_OF = {"epochs": "--epochs", "seed": "--seed"}


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


def settings_hash(settings: Mapping) -> str:
    """Short stable hash of a settings dict (sorted-key JSON, sha256, 16 hex digits)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def settings_differences(have: Mapping, want: Mapping) -> list[str]:
    """``field: have -> want`` for every differing (flattened) settings field, the option that
    sets it named where there is one."""
    a, b = _flat(have), _flat(want)
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            opt = OPTION_OF.get(k)
            where = f"{k} ({opt})" if opt else f"{k} (the {PRESET} preset)"
            out.append(f"{where}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}")
    return out


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
    (pass ``naslid.final_search.evaluation_data(data, n)`` to cover exactly the evaluation images)
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
def sidecar_path(path: str | os.PathLike) -> Path:
    """``<stem>.json`` beside the CSV ``path``."""
    return Path(path).with_suffix(".json")


def provenance(device: str = "cpu") -> dict:
    """Where and with what a session ran: date (UTC), naslid version, git commit of this checkout
    (``-dirty`` with uncommitted changes to tracked files), CPU model, torch and Python versions,
    torch threads, device, command line."""

    root = Path(__file__).resolve().parents[2]
    commit = None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        if commit and dirty:
            commit += "-dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "naslid_version": __version__,
            "git_commit": commit, "cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(), "device": str(device),
            "argv": list(sys.argv)}


def _read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"stand-alone cache {str(path)!r}: cannot read its sidecar {str(side)!r} "
                         f"({type(e).__name__}: {e}); choose another --out") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("settings"), dict):
        raise ValueError(f"stand-alone cache {str(path)!r}: {str(side)!r} is not a {FORMAT} sidecar; "
                         f"choose another --out")
    if meta.get("settings_hash") != settings_hash(meta["settings"]):
        raise ValueError(f"stand-alone cache {str(path)!r}: the sidecar's settings_hash "
                         f"{meta.get('settings_hash')!r} does not match its settings (edited?)")
    return meta


def _read_rows(path: Path) -> list[dict]:
    where = f"stand-alone cache {str(path)!r}"
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{where}: cannot read it ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{where}: header {reader.fieldnames} is not {list(COLUMNS)}")
    rows, seen = [], {}
    for line_no, rec in enumerate(reader, start=2):
        if None in rec or any(v is None for v in rec.values()):
            raise ValueError(f"{where}: line {line_no} has {len(rec)} fields, expected {len(COLUMNS)}")
        row: dict = {"arch": rec["arch"], "settings_hash": rec["settings_hash"]}
        try:
            for c in _INT_COLUMNS:
                row[c] = int(rec[c])
            for c in _FLOAT_COLUMNS:
                row[c] = float(rec[c])
        except ValueError as e:
            raise ValueError(f"{where}: line {line_no}: {e}") from None
        bad = [c for c in _FLOAT_COLUMNS if not math.isfinite(row[c])]
        if bad:
            raise ValueError(f"{where}: line {line_no}: non-finite {bad}")
        if row["arch"] in seen:
            raise ValueError(f"{where}: line {line_no}: arch {row['arch']} duplicates line {seen[row['arch']]}")
        seen[row["arch"]] = line_no
        rows.append(row)
    return rows


def _format_row(row: Mapping) -> list[str]:
    return [repr(float(row[c])) if c in _FLOAT_COLUMNS else str(row[c]) for c in COLUMNS]


def write_rows(path: str | os.PathLike, rows: Sequence[Mapping]) -> None:
    """Rewrite the CSV ``path`` atomically with ``rows`` (floats written exactly, ``repr``)."""

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(_format_row(r))
    atomic_write_text(path, buf.getvalue())


def check_cache(path: str | os.PathLike, settings: Mapping, *, data_fingerprint: str | None = None
                ) -> list[dict]:
    """The rows of the cache at ``path`` if it was written with ``settings`` (and, when given, the
    data of ``data_fingerprint``); [] when there is no cache. Writes nothing. ValueError naming the
    option for a cache of another setting, data or format, or a CSV without its sidecar (or the
    reverse)."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.exists() and not side.exists():
        return []
    if not path.exists() or not side.exists():
        have, miss = (path, side) if path.exists() else (side, path)
        raise ValueError(f"--out {str(path)!r}: {str(have)!r} exists without {str(miss)!r}; "
                         f"restore it or choose another --out")
    meta = _read_sidecar(path)
    want = settings_hash(settings)
    if meta["settings_hash"] != want:
        diff = settings_differences(meta["settings"], settings)
        raise ValueError(f"--out {str(path)!r}: the cache was written with another setting "
                         f"(settings hash {meta['settings_hash']}, this run's {want}): "
                         + "; ".join(diff) + ". Pass the cache's options or choose another --out")
    if data_fingerprint is not None and meta.get("data_fingerprint") not in (None, data_fingerprint):
        raise ValueError(f"--data: the cache {str(path)!r} was written with other data (fingerprint "
                         f"{meta['data_fingerprint']}, this --data's {data_fingerprint}); give the same "
                         f"cifar10.npz or choose another --out")
    rows = _read_rows(path)
    foreign = [r["arch"] for r in rows if r["settings_hash"] != want]
    if foreign:
        raise ValueError(f"--out {str(path)!r}: {len(foreign)} row(s) carry another settings hash "
                         f"(first: {foreign[0]}); choose another --out")
    return rows


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
        raise FileNotFoundError(f"stand-alone cache {str(path)!r} not found (benchmarks/standalone_truth.py "
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
