"""Training-free scores over every NB201 cell: each score's exhaustive pick and its τ over the space.

Reads a ``studies/proxy_scores.py --cells all`` file (one cell per isomorphism class, 6,466 cells,
each score computed on the ``cpu`` preset's network freshly initialised with the seed) and reports,
for every single score and for the training-free combinations (the ``cpu`` preset's default signals
without the supernet, and NASWOT + synflow):

- the cell it picks (its best-scored cell over all classes), that cell's NB201 accuracy and its
  place among the 6,466 classes (top x %);
- Kendall τ / Spearman ρ / precision@10 % against NB201 over all 6,466 classes (the published τ of
  the scores are over all 15,625 cells of NB201's own C = 16, N = 5 network, isomorphic copies
  included; the order of magnitude is comparable, the number is not the same measurement);
- the seconds the scores took for all cells (the sum of the combination's scores).

A combination is the mean of the scores' quantiles among all the cells (``combined_table.combine``:
mid-ranks / (n + 1), a non-finite value ranks lowest); AZ-NAS is its own rank aggregate over the
cells (``naslid.scores.aznas.rank_aggregate``). Equal weights, nothing fitted: the benchmark column is
read only to report.

    python studies/proxy_scores.py --seeds 0 --proxies lid synflow aznas zico naswot jacov --cells all \
        --json /tmp/all_c8_s0.json
    python studies/exhaustive_picks.py --scan /tmp/all_c8_s0.json --json results/search/free_scores/exhaustive_s0.json

The seed-0 scan is kept gzipped: ``--scan results/search/free_scores/all_c8_s0.json.gz``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
DATA = ROOT.parent / "shared" / "data"
COLUMN = "cifar10_valid_acc"


def signals(scan: dict, seed: str) -> tuple[list[str], dict]:
    """(cells, {score: (n,) values}) of one seed of a scan (aznas: its rank aggregate)."""
    from naslid.scores.aznas import AZNAS_TERMS, rank_aggregate
    from combined_table import _clean

    sc = scan["scores"]
    names = [k for k in sc if seed in sc[k]]
    cells = sorted(sc[names[0]][seed])
    out = {}
    for name in names:
        vals = sc[name][seed]
        if name == "aznas":
            out[name] = np.asarray(rank_aggregate({t: [_clean(vals[c][t]) for c in cells] for t in AZNAS_TERMS}))
        elif name != "lid_profile":
            out[name] = np.array([_clean(vals[c]) for c in cells])
    return cells, out


def default_free() -> tuple[str, ...]:
    """The ``cpu`` preset's signals without the supernet's."""
    from naslid.config import SearchConfig
    from naslid.scores.spec import free_signals, parse_signals

    return tuple(free_signals(parse_signals(SearchConfig.preset_config("cpu").search.score)))


def pick_row(pred: np.ndarray, truth: np.ndarray, cells: list[str], seconds: float | None) -> dict:
    from naslid.ranking import ranking_metrics

    p = np.where(np.isfinite(pred), pred, np.min(pred[np.isfinite(pred)]) - 1.0)  # unratable: lowest
    m = ranking_metrics(p, truth, resamples=200)
    best = int(np.argmax(p))
    return {"tau": m["kendall_tau"], "tau_ci95": m["kendall_tau_ci95"], "rho": m["spearman_rho"],
            "p10": m["precision_at_10"], "pick": cells[best], "pick_acc": float(truth[best]),
            "pick_top_percent": 100.0 * float(np.mean(truth > truth[best])) , "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan", required=True, help="a proxy_scores.py --cells all JSON (.json or .json.gz)")
    ap.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    from combined_table import combine
    from naslid.groundtruth.table import load_benchmark
    from naslid.spaces import get_space

    raw = Path(args.scan).read_bytes()
    scan = json.loads(gzip.decompress(raw) if args.scan.endswith(".gz") else raw)
    if scan.get("settings", {}).get("cells") != "all":
        print(f"exhaustive_picks: --scan: {args.scan!r} is not a --cells all scan", file=sys.stderr)
        return 2
    st = scan["settings"]
    space = get_space("nb201", C=st["C"], N=st["N"], input_size=st["image_size"], num_classes=10)
    acc = dict(zip(*(lambda b: (b.arch_strings, b.values(COLUMN)))(load_benchmark(args.benchmark, space))))
    free = default_free()
    doc = {"settings": st, "column": COLUMN, "default_free": list(free), "seeds": {}}
    for seed in sorted({s for v in scan["scores"].values() for s in v}):
        cells, sig = signals(scan, seed)
        truth = np.array([acc[c] for c in cells], dtype=np.float64)
        secs = {k: scan["seconds"][k][seed] for k in sig}
        rows = {k: pick_row(v, truth, cells, secs[k]) for k, v in sig.items()}
        combos = {"free default: " + "+".join(free): free, "naswot+synflow": ("naswot", "synflow")}
        for label, parts in combos.items():
            if all(p in sig for p in parts):
                rows[label] = pick_row(combine(sig, parts), truth, cells, float(sum(secs[p] for p in parts)))
                rows[label]["signals"] = list(parts)
        doc["seeds"][seed] = {"cells": len(cells), "best_acc": float(truth.max()),
                              "top1_percent_acc": float(np.percentile(truth, 99)), "rows": rows}
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(markdown(doc))
    return 0


def markdown(doc: dict) -> str:
    out = []
    for seed, d in doc["seeds"].items():
        out += [f"Seed {seed}: all {d['cells']:,} NB201 classes, `{doc['column']}` (best {d['best_acc']:.2f} %, "
                f"top 1 % from {d['top1_percent_acc']:.2f} %).", "",
                "| score | τ over all cells [95 %] | ρ | p@10 % | pick (accuracy, place) | seconds |",
                "|---|---|---|---|---|---|"]
        for k, r in sorted(d["rows"].items(), key=lambda kv: -kv[1]["tau"]):
            ci = r["tau_ci95"]
            out.append(f"| {k} | {r['tau']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {r['rho']:.3f} | {r['p10']:.2f} | "
                       f"{r['pick_acc']:.2f} % (top {r['pick_top_percent']:.2f} %) | {r['seconds']:.0f} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
