"""Memory table of the split step, LID vs GM: one `naslid.studies.peak_memory` run per setting (own process,
own time limit), results as JSON lines plus a markdown table.

    python benchmarks/memory_table.py --out /tmp/memtable [--settings nb201:32:32 proxyless:224:32 ...]
                                      [--timeout 1800] [--no-rss] [--repeats 1]

A setting is SPACE:INPUT:BATCH. Settings that time out or fail are listed with the reason.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

DEFAULT = ["nb201:32:32", "nb201:32:128", "proxyless:32:32", "proxyless:32:128",
           "nb201:224:32", "proxyless:224:32", "nb201:224:128", "proxyless:224:128"]


def mib(b):
    return "-" if b is None else f"{b / 2**20:,.1f}"


def row(r: dict) -> str:
    lid, gm = r["lid"], r["grad"]
    return (f"| {r['space']} | {r['input_size']} | {r['batch']} | {r['decision']} ({r['n_ops']}) | "
            f"{mib(r['baseline']['total_bytes'])} | {mib(lid['peak_extra_bytes'])} | {mib(gm['peak_extra_bytes'])} | "
            f"{r['ratio']:.3f} | {r['saved_percent']:.1f} % | {r['saved_percent_total']:.1f} % | "
            f"{mib(lid.get('rss_extra_bytes'))} / {mib(gm.get('rss_extra_bytes'))} | "
            f"{lid['seconds']:.1f} / {gm['seconds']:.1f} |")


HEADER = ("| space | input | batch | decision (ops) | baseline MiB | LID peak extra MiB | GM peak extra MiB | "
          "LID/GM | saved (extra) | saved (incl. baseline) | RSS extra MiB LID / GM | seconds LID / GM |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--settings", nargs="*", default=DEFAULT)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-rss", action="store_true")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    rows, notes = [], []
    for s in a.settings:
        space, size, batch = s.split(":")
        js = os.path.join(a.out, f"{space}_{size}_{batch}.json")
        cmd = [sys.executable, "-m", "naslid.studies.peak_memory", "--space", space, "--input-size", size, "--batch", batch,
               "--repeats", str(a.repeats), "--json", js] + (["--no-rss"] if a.no_rss else [])
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            ok = proc.returncode == 0 and os.path.exists(js)
            why = "" if ok else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            ok, why = False, f"not finished within {a.timeout:.0f} s"
        if ok:
            rows.append(row(json.load(open(js))))
        else:
            notes.append(f"- {s}: {why}")
        print(f"{s}: {'ok' if ok else why} ({time.time() - t0:.0f} s)", flush=True)
    table = HEADER + "\n" + "\n".join(rows) + ("\n\nNot measured:\n" + "\n".join(notes) if notes else "")
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
