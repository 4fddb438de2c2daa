"""Ground-truth benchmarks: a CSV with an ``arch`` column and ``*_acc`` columns, or NATS-Bench.

CSV format: a header row with an ``arch`` column (the space's arch string, e.g. NB201's
``|nor_conv_3x3~0|+|...|``) and any number of ``*_acc`` columns (accuracy, percent); every other
column is kept as extra information (numbers where they parse, else strings) and reported by
``lookup``. ``naslid data nb201`` builds one from the official files (index, arch,
cifar10_valid_acc, params_m_cifar10, n_seeds, unique_id). Each row's arch is parsed and validated with the space;
lookups are by the exact arch string (isomorphic cells are separate rows with their own numbers).
An empty ``*_acc`` cell is read as NaN and left out of the rankings (their ``n`` shows it).

Official files: ``load_nats_benchmark`` reads a NATS-Bench topology file or folder or a
NAS-Bench-201 ``.pth`` directly (``naslid.groundtruth.nats``; no ``nats_bench`` package needed),
with the same column names as the CSV (``cifar10_valid_acc``, ...).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..spaces.base import SearchSpace


class Benchmark:
    """Ground truth per architecture.

    Attributes:
        acc_columns: the ``*_acc`` column names, in file order.
        columns: every column except ``arch``, in file order.
        arch_strings: the archs in file order (space arch strings).
    """

    def __init__(self, space: SearchSpace, rows: Sequence[Mapping], *, columns: Sequence[str],
                 source: str = "<memory>"):
        self.space = space
        self.source = source
        self.columns = [c for c in columns if c != "arch"]
        self.acc_columns = [c for c in self.columns if c.endswith("_acc")]
        if not self.acc_columns:
            raise ValueError(f"benchmark {source}: no '*_acc' column (columns: {list(columns)})")
        self._rows: dict[str, dict] = {}
        for r in rows:
            self._rows[r["arch"]] = {c: r[c] for c in self.columns}
        self.arch_strings = list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, arch) -> bool:
        return self._key(arch) in self._rows

    def _key(self, arch) -> str:
        if isinstance(arch, str):
            return self.space.arch_to_string(self.space.arch_from_string(arch))
        return self.space.arch_to_string(self.space.validate_arch(arch))

    def lookup(self, arch) -> dict | None:
        """All columns (except ``arch``) for ``arch`` (dict or arch string); None if absent."""
        row = self._rows.get(self._key(arch))
        return None if row is None else dict(row)

    def acc(self, arch, column: str | None = None) -> float:
        """The value of accuracy ``column`` (default: the first ``*_acc``); KeyError if absent."""
        column = column or self.acc_columns[0]
        if column not in self.acc_columns:
            raise ValueError(f"Benchmark.acc: unknown column {column!r} (have {self.acc_columns})")
        row = self._rows.get(self._key(arch))
        if row is None:
            raise KeyError(f"arch {self._key(arch)} is not in benchmark {self.source}")
        return row[column]

    def archs(self) -> list[dict]:
        """Every architecture as a dict, in file order."""
        return [self.space.arch_from_string(s) for s in self.arch_strings]

    def values(self, column: str) -> list[float]:
        """``column`` in file order."""
        return [self._rows[s][column] for s in self.arch_strings]


def _parse_number(s: str):
    try:
        v = float(s)
    except ValueError:
        return s
    return int(v) if v.is_integer() and "." not in s and "e" not in s.lower() else v


def load_csv_benchmark(path: str | os.PathLike, space: SearchSpace) -> Benchmark:
    """Read and validate a benchmark CSV (see the module docstring).

    Raises FileNotFoundError if absent; ValueError naming the file and the first offending row
    (1-based line number) for: no ``arch`` column, no ``*_acc`` column, an arch outside the space
    or malformed, a duplicate arch, a non-numeric ``*_acc`` value, a short row.
    """
    path = Path(path)
    where = f"benchmark CSV {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: file not found")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{where}: empty file") from None
        if "arch" not in header:
            raise ValueError(f"{where}: no 'arch' column (header: {header})")
        if not any(h.endswith("_acc") for h in header):
            raise ValueError(f"{where}: no '*_acc' accuracy column (header: {header})")
        ai = header.index("arch")
        rows, first_line = [], {}
        for line_no, rec in enumerate(reader, start=2):
            if not rec or all(not c.strip() for c in rec):
                continue
            if len(rec) != len(header):
                raise ValueError(f"{where}: line {line_no} has {len(rec)} fields, header has "
                                 f"{len(header)}")
            s = rec[ai].strip()
            try:
                arch = space.arch_from_string(s)
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{where}: line {line_no}: arch {s!r} is not in the {space.name} "
                                 f"space ({e})") from e
            key = space.arch_to_string(arch)
            if key in first_line:
                raise ValueError(f"{where}: line {line_no}: arch {s!r} duplicates line "
                                 f"{first_line[key]}")
            first_line[key] = line_no
            row = {"arch": key}
            for h, c in zip(header, rec):
                if h == "arch":
                    continue
                c = c.strip()
                if h.endswith("_acc"):
                    if c == "":
                        row[h] = math.nan
                        continue
                    try:
                        row[h] = float(c)
                    except ValueError:
                        raise ValueError(f"{where}: line {line_no}: column {h!r} value {c!r} is "
                                         f"not a number") from None
                    if not math.isfinite(row[h]):
                        row[h] = math.nan
                else:
                    row[h] = _parse_number(c)
            rows.append(row)
    if not rows:
        raise ValueError(f"{where}: no data rows")
    return Benchmark(space, rows, columns=header, source=str(path))


def load_nats_benchmark(path: str | os.PathLike, space: SearchSpace, *, hp: str = "200") -> Benchmark:
    """A Benchmark from an official NATS-Bench topology folder / file or NAS-Bench-201 ``.pth``:
    ``index`` and every accuracy column of ``naslid.groundtruth.nats.ACC_COLUMNS`` present (mean
    over seeds after the last epoch of the ``hp``-epoch schedule; a cell lacking one is NaN)."""
    from .nats import ACC_COLUMNS, read_cells

    rows, present = [], set()
    for idx, arch, m in read_cells(path, space, hp=hp):
        present.update(c for c in ACC_COLUMNS.values() if c in m)
        rows.append({"arch": space.arch_to_string(arch), "index": idx, **m})
    cols = ["arch", "index"] + [c for c in ACC_COLUMNS.values() if c in present]
    for r in rows:
        for c in cols:
            r.setdefault(c, math.nan)
    return Benchmark(space, rows, columns=cols, source=str(path))


def load_benchmark(path: str | os.PathLike, space: SearchSpace) -> Benchmark:
    """``.csv`` -> ``load_csv_benchmark``; an official NATS-Bench / NAS-Bench-201 file or folder
    -> ``load_nats_benchmark``. Anything else is a ValueError naming the file (the CLI prints it as
    its one-line error)."""
    if str(path).lower().endswith(".csv"):
        return load_csv_benchmark(path, space)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"benchmark {str(path)!r}: not found")
    if not (p.is_dir() or p.name.endswith((".pth", ".pbz2"))):
        raise ValueError(f"benchmark {str(path)!r}: not a .csv file, a NATS-tss-*-simple folder, a "
                         "NATS-tss-*.pickle.pbz2 or a NAS-Bench-201-*.pth file; `naslid data nb201 "
                         "--from FILE` builds the CSV from the official file")
    return load_nats_benchmark(path, space)
