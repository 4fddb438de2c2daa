"""Which network size should the free scores use? Scores at several sizes, alone and in the combination.

Some training-free scores rank NB201 much better on a larger network than the `cpu` preset's
(docs/search.md). This study takes the ``--swap`` scores (default AZ-NAS, its four terms) of the
500 stratified cells at several sizes (``studies/proxy_scores.py --net size --size C N PX`` or
``--net nb201``, one init seed, the same for every size) and, for each size, ranks the cells by each
swapped score alone and by the combination of the end-to-end ``cpu`` runs
(``results/search/free_scores/cpu-combined-s<S>.json``) with the run's own values of those scores
replaced by that size's: every other signal of a run (its supernet's −loss and the other free scores)
stays as the run computed it, so the sizes are compared paired on runs and cells. A combination here
is the mean of the signals' mid-rank quantiles among the 500 cells (``combined_table.combine``; the
run itself takes quantiles against its reference sample), equal weights, nothing fitted. The paired
Δτ of each size against the first one (``naslid.ranking.paired_delta_tau``: two-level bootstrap over
runs and cells) says whether the gain resolves; the seconds per 500 cells (one thread) say what it
costs.

    python studies/score_size.py --runs results/search/free_scores/cpu-combined-s[1-4].json \
        --sizes "C8 N1 16px=results/search/free_scores/sample_c8.json" ... \
        --json results/search/free_scores/score_size.json --doc docs/search.md
    python studies/score_size.py --swap jacov ... --marker score-size-jacov
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
#: a --sizes entry "LABEL=run": the runs' own values (alone: the first run's; no seconds)
RUN = Path("run")


def score_of(path: Path, cells: list[str], seed: str, name: str) -> tuple[np.ndarray, float]:
    """(one score of the cells (n,), seconds) from a proxy_scores.py file; ``aznas``: its rank
    aggregate over these cells. SystemExit naming the file when it lacks the score or the seed."""
    from naslid.scores.aznas import AZNAS_TERMS, rank_aggregate

    d = json.loads(path.read_text())
    stored = "lid_profile" if name == "lid" else name  # LID: the last layer of the stored profile
    if seed not in d.get("scores", {}).get(stored, {}):
        raise SystemExit(f"score_size: --sizes: {path.name} holds no {stored} at init seed {seed}")
    sc = d["scores"][stored][seed]
    if name == "lid":
        sc = {a: (p[-1] if p else None) for a, p in sc.items()}
    if name == "aznas":
        terms = {t: [sc[a][t] if sc[a][t] is not None else -np.inf for a in cells] for t in AZNAS_TERMS}
        v = np.asarray(rank_aggregate(terms), dtype=np.float64)
    else:
        v = np.array([sc[a] if sc[a] is not None else -np.inf for a in cells], dtype=np.float64)
    return v, float(d["seconds"][stored][seed])


def run_signals(path: Path) -> tuple[list[str], np.ndarray, dict, list[str]]:
    """(cells, truth (n,), {signal: (n,)}, the run's score signals) of one end-to-end run."""
    d = json.loads(path.read_text())
    pts = d["ranking"]["sampled_points"]
    signals = d["config"]["search"]["score"].split("+")
    key = {"loss": "neg_loss"}
    values = {s: np.array([p[1].get(key.get(s, s), np.nan) if p[1].get(key.get(s, s)) is not None else np.nan
                           for p in pts], dtype=np.float64) for s in signals}
    return [p[0] for p in pts], np.array([p[2][COLUMN] for p in pts]), values, signals


def study(runs: list[Path], sizes: list[tuple[str, Path]], seed: str, swap: tuple[str, ...] = ("aznas",)) -> dict:
    """Each size's ``swap`` scores alone, and swapped into every run's combination (see the module
    docstring); the first size is the baseline of the paired Δτ."""
    from scipy.stats import kendalltau

    from combined_table import combine
    from naslid.ranking.statistics import paired_delta_tau, precision_at

    out = {"runs": [p.name for p in runs], "init_seed": int(seed), "swap": list(swap), "sizes": []}
    combos: dict[str, dict[str, list]] = {}
    truths = []
    for r in runs:
        cells, truth, values, signals = run_signals(r)
        lacking = [s for s in swap if s not in signals]
        if lacking:
            raise SystemExit(f"score_size: --runs: {r.name} does not score {lacking} ({'+'.join(signals)})")
        truths.append(truth)
        free = [s for s in signals if s not in ("loss", "acc")]
        for label, f in sizes:
            sig = values if f == RUN else dict(values, **{s: score_of(f, cells, seed, s)[0] for s in swap})
            combos.setdefault(label, {"all": [], "free": []})
            combos[label]["all"].append(combine(sig, signals))
            combos[label]["free"].append(combine(sig, free))
    cells, truth, own, _ = run_signals(runs[0])
    base = sizes[0][0]
    for label, f in sizes:
        row = {"size": label, "file": str(f) if f == RUN else f.name, "alone": {}}
        for s in swap:
            v, sec = (np.where(np.isfinite(own[s]), own[s], -np.inf), None) if f == RUN else score_of(f, cells, seed, s)
            row["alone"][s] = {"tau": float(kendalltau(v, truth).statistic), "p10": precision_at(v, truth),
                               "seconds_per_500": sec}
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
    swap = doc["swap"]
    names = " and ".join(swap)
    lines = [f"{names} at each size (init seed {doc['init_seed']}), alone and swapped into the combination of the "
             f"end-to-end runs {', '.join(doc['runs'])} (mean over the runs; Δτ paired against "
             f"{first['size']}, 95 % two-level bootstrap interval; seconds: one thread per 500 cells):", "",
             "| network | " + " | ".join(f"{s} τ | {s} p@10 % | {s} seconds" for s in swap)
             + " | combination τ | combination p@10 % | Δτ | free scores only τ |",
             "|---|" + "---|---|---|" * len(swap) + "---|---|---|---|"]
    for r in doc["sizes"]:
        d = r.get("delta_tau_vs_first")
        dt = f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "–"
        alone = " | ".join(f"{r['alone'][s]['tau']:.3f} | {r['alone'][s]['p10']:.2f} | "
                           + ("–" if r['alone'][s]['seconds_per_500'] is None else f"{r['alone'][s]['seconds_per_500']:.0f}")
                           for s in swap)
        lines.append(f"| {r['size']} | {alone} | {r['all_tau']:.3f} | {r['all_p10']:.2f} | {dt} | {r['free_tau']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="end-to-end cpu-preset result.json files")
    ap.add_argument("--sizes", nargs="+", required=True, metavar="LABEL=FILE",
                    help="proxy_scores.py files holding the --swap scores; the first is the baseline of Δτ")
    ap.add_argument("--swap", nargs="+", default=["aznas"],
                    help="the training-free scores taken from the --sizes files (default: aznas)")
    ap.add_argument("--marker", default=MARKER, help="the marked section of --doc to rewrite")
    ap.add_argument("--init-seed", default="0", help="the init seed of the scores to read from each file")
    ap.add_argument("--json", required=True)
    ap.add_argument("--doc", default=None, help="a markdown file whose score-size section is rewritten")
    args = ap.parse_args(argv)
    sizes = []
    for item in args.sizes:
        label, sep, f = item.partition("=")
        if not sep or not (f == "run" or Path(f).is_file()):
            print(f"score_size: --sizes: {item!r} is not LABEL=FILE of an existing file", file=sys.stderr)
            return 2
        sizes.append((label, Path(f)))
    runs = [Path(r) for r in args.runs]
    missing = [str(r) for r in runs if not r.is_file()]
    if missing:
        print(f"score_size: --runs: {missing} do not exist", file=sys.stderr)
        return 2
    doc = study(runs, sizes, args.init_seed, tuple(args.swap))
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    if args.doc:
        from combined_table import rewrite_section

        rewrite_section(Path(args.doc), args.marker, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
