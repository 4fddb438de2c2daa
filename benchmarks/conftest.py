"""Collects the benchmark results of test_bench_ops.py and prints one summary table at the end."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bench_results import RESULTS  # noqa: E402


def _table() -> str:
    cases = [c for c in RESULTS if not c.startswith("peak")]
    if not cases:
        return ""
    backends = ["ext", "ext_api", "faiss", "torch", "naslid_orig", "skdim", "floor"]
    lines = ["| case | " + " | ".join(f"{b} ms" for b in backends)
             + " | ext speed-up vs best other | ext GFLOP/s (2N²D/t) |",
             "|---" * (len(backends) + 3) + "|"]
    for c in cases:
        r = RESULTS[c]
        cells = [f"{r[b]['ms']:.1f}" if b in r else "–" for b in backends]
        others = [r[b]["ms"] for b in ("faiss", "torch", "naslid_orig", "skdim") if b in r]
        speed = f"{min(others) / r['ext']['ms']:.2f}x" if others and "ext" in r else "–"
        gf = f"{r['ext']['flop'] / r['ext']['ms'] / 1e6:.0f}" if "ext" in r else "–"
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {speed} | {gf} |")
    mem = RESULTS.get("peak_extra_MB_10000x128")
    if mem:
        lines.append("")
        lines.append("Peak extra memory at (10000, 128), MB (VmHWM - VmRSS before the call, fresh process): "
                     + ", ".join(f"{b} {v:.1f}" for b, v in mem.items()))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter):
    table = _table()
    if not table:
        return
    terminalreporter.write_sep("=", "naslid ops benchmark summary")
    terminalreporter.write_line(table)
    path = os.environ.get("NASLID_BENCH_TABLE")
    if path:
        with open(path, "w") as fh:
            fh.write(table + "\n")
