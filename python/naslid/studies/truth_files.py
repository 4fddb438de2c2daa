"""The stand-alone truth's files: a CSV (``COLUMNS``, one row per cell, rewritten atomically) and
a sidecar ``<stem>.json`` (``FORMAT``, the settings, their hash, a fingerprint of the data, one
provenance record per session); ``check_cache`` decides what a rerun may reuse
(``naslid.studies.standalone``)."""
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
from pathlib import Path
from typing import Mapping, Sequence

import torch

from .._version import __version__
from ..run.checkpoint import atomic_write_text

FORMAT = "naslid-standalone/1"
PRESET = "cpu"
#: the studies/standalone_truth.py option that sets a settings field
OPTION_OF = {"epochs": "--epochs", "seed": "--seed"}
TRUTH_COLUMN = "cifar10_valid_acc"
COLUMNS = ("arch", "nb201_index", TRUTH_COLUMN, "params", "standalone_acc", "standalone_loss",
           "train_loss", "train_acc", "train_s", "settings_hash")
_INT_COLUMNS = ("nb201_index", "params")
_FLOAT_COLUMNS = (TRUTH_COLUMN, "standalone_acc", "standalone_loss", "train_loss", "train_acc",
                  "train_s")


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
