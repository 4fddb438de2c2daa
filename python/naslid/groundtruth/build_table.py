"""``naslid data nb201``: the ground-truth CSV from an official NAS-Bench-201 / NATS-Bench file.

Output (the format ``naslid search --benchmark`` reads, one row per evaluated cell, in official
index order, comma-separated with CRLF line ends as Python's ``csv`` writes them):

    index,arch,cifar10_valid_acc,params_m_cifar10,n_seeds,unique_id

``cifar10_valid_acc``: NB201's search protocol (dataset ``cifar10-valid``, set ``x-valid``, 200
epochs, mean over seeds), percent rounded to 4 decimals; ``params_m_cifar10``: millions, 6 decimals;
``n_seeds``: trials behind the mean; ``unique_id``: the index of the first cell isomorphic to this
one (``NB201Space.canonical_key``). ``all_columns=True`` adds every other accuracy column of
``naslid.groundtruth.nats.ACC_COLUMNS`` after ``cifar10_valid_acc`` (rankings report them all).
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from .nats import ACC_COLUMNS, read_cells

log = logging.getLogger(__name__)

SEARCH_COLUMN = "cifar10_valid_acc"
DEFAULT_NAME = "nb201_cifar10_valid.csv"


def nb201_table(source: str | os.PathLike, *, all_columns: bool = False, hp: str = "200"
                ) -> tuple[list[str], list[dict]]:
    """(header, rows) of the ground-truth table of ``source`` (see ``naslid.groundtruth.nats``).

    Every arch string is parsed by ``NB201Space`` (``nats.read_cells``: ValueError naming the file and index otherwise);
    a cell without ``cifar10_valid_acc`` gets an empty cell (NaN to the reader)."""
    from ..spaces.nb201 import NB201Space

    space = NB201Space()
    accs = [SEARCH_COLUMN] + ([c for c in ACC_COLUMNS.values() if c != SEARCH_COLUMN] if all_columns else [])
    header = ["index", "arch", *accs, "params_m_cifar10", "n_seeds", "unique_id"]
    first_of: dict[str, int] = {}
    rows = []
    for n, (idx, arch, m) in enumerate(read_cells(source, space, hp=hp)):
        row = {"index": idx, "arch": space.arch_to_string(arch)}
        for c in accs:
            row[c] = "" if c not in m else repr(round(m[c], 4))
        row["params_m_cifar10"] = "" if "params_m_cifar10" not in m else f"{m['params_m_cifar10']:.6f}"
        row["n_seeds"] = m["n_seeds"]
        row["unique_id"] = first_of.setdefault(space.canonical_key(arch), idx)
        rows.append(row)
        if (n + 1) % 2000 == 0:
            log.info("read %d architectures", n + 1)
    return header, rows


def write_table(path: str | os.PathLike, header: list[str], rows: list[dict]) -> None:
    """Write ``rows`` under ``header`` (atomically: a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([r[h] for h in header])
    os.replace(tmp, path)


def build_nb201_csv(source: str | os.PathLike, out: str | os.PathLike, *, all_columns: bool = False
                    ) -> Path:
    """Read ``source`` and write the table to ``out``; returns ``out``."""
    header, rows = nb201_table(source, all_columns=all_columns)
    write_table(out, header, rows)
    return Path(out)
