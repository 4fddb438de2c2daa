"""Which network size should the free scores use? AZ-NAS at several sizes, alone and in the combination.

AZ-NAS is the training-free score whose τ moves most with the network it is computed on (docs/search.md).
This study takes its four terms on the 500 stratified cells at several sizes (``studies/proxy_scores.py
--proxies aznas --net size --size C N PX``, one init seed, the same for every size) and, for each
size, ranks the cells by AZ-NAS alone and by the combination of the end-to-end ``cpu`` runs
(``results/search/free_scores/cpu-combined-s<S>.json``) with the run's own AZ-NAS replaced by that
size's: every other signal of a run (its supernet's −loss, NASWOT, synflow, jacov, LID) stays as the
run computed it, so the sizes are compared paired on runs and cells. A combination here is the mean of
the signals' mid-rank quantiles among the 500 cells (``combined_table.combine``; the run itself
takes quantiles against its reference sample), equal weights, nothing fitted. The paired Δτ of each
size against the first one (``naslid.ranking.paired_delta_tau``: two-level bootstrap over runs and
cells) says whether the gain resolves; the seconds per 500 cells (one thread) say what it costs.

    python studies/score_size.py --runs results/search/free_scores/cpu-combined-s[1-4].json \
        --sizes "C8 N1 16px=results/search/free_scores/sample_c8.json" ... \
        --json results/search/free_scores/score_size.json --doc docs/search.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
COLUMN = "cifar10_valid_acc"
MARKER = "score-size"


def aznas_of(path: Path, cells: list[str], seed: str) -> tuple[np.ndarray, float]:
    """(AZ-NAS's rank aggregate of the cells (n,), seconds) from a proxy_scores.py file."""
    from naslid.scores.aznas import AZNAS_TERMS, rank_aggregate

    d = json.loads(path.read_text())
    sc = d["scores"]["aznas"][seed]
    terms = {t: [sc[a][t] if sc[a][t] is not None else -np.inf for a in cells] for t in AZNAS_TERMS}
    return np.asarray(rank_aggregate(terms), dtype=np.float64), float(d["seconds"]["aznas"][seed])


def run_signals(path: Path) -> tuple[list[str], np.ndarray, dict, list[str]]:
    """(cells, truth (n,), {signal: (n,)}, the run's score signals) of one end-to-end run."""
    d = json.loads(path.read_text())
    pts = d["ranking"]["sampled_points"]
    signals = d["config"]["search"]["score"].split("+")
    key = {"loss": "neg_loss"}
    values = {s: np.array([p[1].get(key.get(s, s), np.nan) if p[1].get(key.get(s, s)) is not None else np.nan
                           for p in pts], dtype=np.float64) for s in signals}
    return [p[0] for p in pts], np.array([p[2][COLUMN] for p in pts]), values, signals


def study(runs: list[Path], sizes: list[tuple[str, Path]], seed: str) -> dict:
    from scipy.stats import kendalltau

    from combined_table import combine
    from naslid.ranking.statistics import paired_delta_tau, precision_at

    out = {"runs": [p.name for p in runs], "init_seed": int(seed), "sizes": []}
    combos: dict[str, dict[str, list]] = {}
    truths = []
    for r in runs:
        cells, truth, values, signals = run_signals(r)
        if "aznas" not in signals:
            raise SystemExit(f"score_size: --runs: {r.name} does not score aznas ({'+'.join(signals)})")
        truths.append(truth)
        free = [s for s in signals if s not in ("loss", "acc")]
        for label, f in sizes:
            sig = dict(values, aznas=aznas_of(f, cells, seed)[0])
            combos.setdefault(label, {"all": [], "free": []})
            combos[label]["all"].append(combine(sig, signals))
            combos[label]["free"].append(combine(sig, free))
    cells, truth, _, _ = run_signals(runs[0])
    base = sizes[0][0]
    for label, f in sizes:
        az, sec = aznas_of(f, cells, seed)
        row = {"size": label, "file": f.name, "seconds_per_500": sec,
               "aznas_tau": float(kendalltau(az, truth).statistic), "aznas_p10": precision_at(az, truth)}
        for part in ("all", "free"):
            preds = combos[label][part]
            row[f"{part}_tau"] = float(np.mean([kendalltau(p, t).statistic for p, t in zip(preds, truths)]))
            row[f"{part}_p10"] = float(np.mean([precision_at(p, t) for p, t in zip(preds, truths)]))
        if label != base:
            dt = paired_delta_tau(combos[label]["all"], combos[base]["all"], truths)
            row["delta_tau_vs_first"] = {"mean": dt["mean"], "ci95": dt["ci95"]}
        out["sizes"].append(row)
    return out


def markdown(doc: dict) -> str:
    first = doc["sizes"][0]
    lines = [f"AZ-NAS at each size (init seed {doc['init_seed']}), alone and swapped into the combination of the "
             f"end-to-end runs {', '.join(doc['runs'])} (mean over the runs; Δτ paired against "
             f"{first['size']}, 95 % two-level bootstrap interval):", "",
             "| network | AZ-NAS τ | AZ-NAS p@10 % | seconds per 500 cells (1 thread) | combination τ | "
             "combination p@10 % | Δτ | free scores only τ |",
             "|---|---|---|---|---|---|---|---|"]
    for r in doc["sizes"]:
        d = r.get("delta_tau_vs_first")
        dt = f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "–"
        lines.append(f"| {r['size']} | {r['aznas_tau']:.3f} | {r['aznas_p10']:.2f} | {r['seconds_per_500']:.0f} | "
                     f"{r['all_tau']:.3f} | {r['all_p10']:.2f} | {dt} | {r['free_tau']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="end-to-end cpu-preset result.json files")
    ap.add_argument("--sizes", nargs="+", required=True, metavar="LABEL=FILE",
                    help="proxy_scores.py files holding aznas; the first is the baseline of Δτ")
    ap.add_argument("--init-seed", default="0", help="the init seed of the scores to read from each file")
    ap.add_argument("--json", required=True)
    ap.add_argument("--doc", default=None, help="a markdown file whose score-size section is rewritten")
    args = ap.parse_args(argv)
    sizes = []
    for item in args.sizes:
        label, sep, f = item.partition("=")
        if not sep or not Path(f).is_file():
            print(f"score_size: --sizes: {item!r} is not LABEL=FILE of an existing file", file=sys.stderr)
            return 2
        sizes.append((label, Path(f)))
    runs = [Path(r) for r in args.runs]
    missing = [str(r) for r in runs if not r.is_file()]
    if missing:
        print(f"score_size: --runs: {missing} do not exist", file=sys.stderr)
        return 2
    doc = study(runs, sizes, args.init_seed)
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    if args.doc:
        from combined_table import rewrite_section

        rewrite_section(Path(args.doc), MARKER, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
