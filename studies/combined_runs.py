"""The `cpu` preset's combined search, end to end, over seeds: the cell each run found and its ranking.

Reads the ``result.json`` of ``naslid search --preset cpu ... --seed S`` runs (copied into
``results/search/free_scores/cpu-combined-s<S>.json``) and tabulates, per seed: the signals of the
run's score, the found cell's NB201 accuracy and its place among all 15,625 cells, the run's own
ranking of the 500 stratified cells (τ and precision@10 % of the combination and of every signal
alone), and the time of every stage. The summary counts the seeds whose found cell reaches the two
marks of the combined-search issue: synflow's exhaustive pick (90.20 %) and NB201's top 1 %.

    python studies/combined_runs.py --runs results/search/free_scores/cpu-combined-s*.json \
        --json results/search/free_scores/combined_runs.json --doc docs/search.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
DATA = ROOT.parent / "shared" / "data"
COLUMN = "cifar10_valid_acc"
SYNFLOW_PICK = 90.1987  # synflow's best cell over all 6,466 classes (results/search/criteria_study/synflow_all_best.json)
SEARCH_STAGES = ("prepare", "warmup", "split", "leaf_training", "reference", "search")


def run_row(path: Path, accs: np.ndarray) -> dict:
    """One run's row (accs: NB201's accuracies of all its cells, for the found cell's place)."""
    d = json.loads(path.read_text())
    found = d["best_arch_benchmark"][COLUMN]
    ranked = d["ranking"]["sampled"][COLUMN]
    t = d["timings"]
    ranking = {k: {"tau": v["kendall_tau"], "tau_ci95": v["kendall_tau_ci95"], "p10": v["precision_at_10"]}
               for k, v in ranked.items()}
    singles = {k: v["tau"] for k, v in ranking.items() if k != "combined"}
    best = max(singles, key=singles.get)
    search = d["config"]["search"]
    return {"file": path.name, "seed": d["config"]["seed"], "score": search["score"],
            "free_net": {"cells": search.get("free_cells"), "batch": search.get("free_batch")},
            "threads": d["config"].get("threads"), "found_arch": d["best_arch"], "found_acc": found,
            "better_cells": int(np.sum(accs > found)), "cells": int(accs.size), "ranking": ranking,
            "best_single": best, "margin_over_best_single": ranking["combined"]["tau"] - singles[best],
            # a run warm-started from another run's checkpoints took its warm-up from there (no
            # "warmup" stage timed here): its search minutes leave the warm-up out
            "warm_started": "warmup" not in t,
            "seconds": {k: t[k] for k in t}, "search_seconds": float(sum(t.get(k, 0.0) for k in SEARCH_STAGES)),
            "free_score_seconds": d["search"].get("free_score_seconds")}


def top1_threshold(accs: np.ndarray) -> float:
    """The accuracy of NB201's 1 %-th best cell (accs (cells,)): the top-1 % mark."""
    return float(np.sort(accs)[::-1][int(np.ceil(0.01 * accs.size)) - 1])


def build_doc(paths: list[Path], accs: np.ndarray) -> dict:
    """The table's data: one row per run (sorted by seed) and the summary against the issue's marks.
    accs: (cells,) NB201's accuracies of all its cells."""
    top1 = top1_threshold(accs)
    rows = sorted((run_row(p, accs) for p in paths), key=lambda r: r["seed"])
    found = [r["found_acc"] for r in rows]
    full = [r for r in rows if not r["warm_started"]]
    return {"column": COLUMN, "synflow_pick": SYNFLOW_PICK, "top1_percent_acc": top1,
            "summary": {"seeds": [r["seed"] for r in rows], "n": len(rows),
                        "found_acc_min": float(min(found)), "found_acc_max": float(max(found)),
                        "search_minutes_min": min(r["search_seconds"] for r in rows) / 60,
                        "search_minutes_max": max(r["search_seconds"] for r in rows) / 60,
                        "above_synflow_pick": int(sum(a >= SYNFLOW_PICK for a in found)),
                        "in_top1_percent": int(sum(a >= top1 for a in found)),
                        "combined_tau_mean": float(np.mean([r["ranking"]["combined"]["tau"] for r in rows])),
                        "combined_tau_min": float(min(r["ranking"]["combined"]["tau"] for r in rows)),
                        "combined_p10_mean": float(np.mean([r["ranking"]["combined"]["p10"] for r in rows])),
                        "margin_min": float(min(r["margin_over_best_single"] for r in rows)),
                        # whole runs only (search and ranking; a warm-started run's warm-up ran elsewhere)
                        "total_minutes_max": max(r["search_seconds"] + r["seconds"].get("ranking", 0.0)
                                                 for r in full) / 60 if full else None},
            "runs": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="result.json files of cpu-preset runs")
    ap.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    ap.add_argument("--json", required=True)
    ap.add_argument("--doc", default=None, help="a markdown file whose combined-runs section is rewritten")
    ap.add_argument("--marker", default="combined-runs", help="the section's marker name in --doc")
    args = ap.parse_args(argv)
    from naslid.groundtruth.table import load_benchmark
    from naslid.spaces import get_space

    bench = load_benchmark(args.benchmark, get_space("nb201", C=8, N=1, input_size=16, num_classes=10))
    doc = build_doc([Path(p) for p in args.runs], np.asarray(bench.values(COLUMN), dtype=np.float64))
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    print(md)
    if args.doc:
        from combined_table import rewrite_section

        rewrite_section(Path(args.doc), args.marker, md)
    return 0


NAMES = {"neg_loss": "supernet", "naswot": "NASWOT", "synflow": "synflow", "aznas": "AZ-NAS", "jacov": "jacov",
         "lid": "LID", "params": "params", "flops": "FLOPs", "acc": "supernet accuracy"}


def markdown(doc: dict) -> str:
    s = doc["summary"]
    n = len(s["seeds"])
    out = ["| seed | score | free scores' network | found cell `cifar10_valid_acc` (cells better of 15,625) "
           "| τ combined [95 %] | p@10 % combined | best single signal τ (margin) "
           "| τ supernet / NASWOT / synflow / AZ-NAS / jacov / LID "
           "| search minutes (warm-up, leaves, reference, evolution) | free-score minutes | ranking minutes |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        rk, t = r["ranking"], r["seconds"]
        sig = " / ".join(f"{rk[k]['tau']:.3f}" if k in rk else "–"
                         for k in ("neg_loss", "naswot", "synflow", "aznas", "jacov", "lid"))
        ci = rk["combined"]["tau_ci95"]
        fn = r.get("free_net") or {}
        net = f"N = {fn['cells']}, batch {fn['batch']}" if fn.get("cells") else "the searched network's"
        warm = "warm-started" if r["warm_started"] else f"{t['warmup'] / 60:.0f}"
        out.append(f"| {r['seed']} | `{r['score']}` | {net} | {r['found_acc']:.2f} % ({r['better_cells']}) | "
                   f"{rk['combined']['tau']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {rk['combined']['p10']:.2f} | "
                   f"{NAMES.get(r['best_single'], r['best_single'])} {rk[r['best_single']]['tau']:.3f} "
                   f"({r['margin_over_best_single']:+.3f}) | {sig} | "
                   f"{r['search_seconds'] / 60:.0f} ({warm}, {t['leaf_training'] / 60:.0f}, "
                   f"{t['reference'] / 60:.0f}, {t['search'] / 60:.0f}) | {(r['free_score_seconds'] or 0) / 60:.1f} | "
                   f"{t['ranking'] / 60:.0f} |")
    out += ["", f"Found cell ≥ synflow's exhaustive pick ({doc['synflow_pick']:.2f} %): **{s['above_synflow_pick']} of {n}** "
            f"seeds; in NB201's top 1 % (≥ {doc['top1_percent_acc']:.2f} %): **{s['in_top1_percent']} of {n}**. "
            f"Combined τ on the 500 cells: mean {s['combined_tau_mean']:.3f} (lowest {s['combined_tau_min']:.3f}), "
            f"precision@10 % mean {s['combined_p10_mean']:.2f}; margin over the run's best single signal at least "
            f"{s['margin_min']:+.3f}."]
    if any(r["warm_started"] for r in doc["runs"]):
        out.append("Warm-started runs took their warm-up from an earlier run of the same seed (`--warm-start`): "
                   "their search minutes leave the warm-up out.")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
