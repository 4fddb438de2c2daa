"""The combined ranking, offline: supernet loss and training-free scores on the criteria study's cells.

Reads the committed per-seed supernet scores of the criteria study (``<study>/<criterion>-s<seed>/
result.json``, ``ranking.sampled_points``: the 500 stratified cells with ``neg_loss``, ``params``,
``flops`` and NB201's ``cifar10_valid_acc``), the zero-cost proxies of the same cells
(``proxies_sample.json``: synflow, naswot per init seed) and the further training-free scores
(``studies/proxy_scores.py`` output: aznas, zico, jacov, lid_profile per init seed), and ranks the
cells by every single signal and by combinations. A combination is the mean of the signals'
quantiles among the 500 cells (mid-ranks / (n + 1); a non-finite value ranks lowest), equal
weights: nothing is fitted to the ground truth. ``aznas`` is AZ-NAS's rank aggregate of its four
terms over the 500 cells.

Rule stated before the numbers were computed: a candidate score X (aznas, zico, jacov, and LID's
last-layer value ``lid``) joins the default combination only if the paired Δτ of
(supernet + naswot + synflow + X) − (supernet + naswot + synflow), two-level bootstrap over seeds
and cells (``naslid.ranking.paired_delta_tau``), has a 95 % interval above 0.

    python studies/combined_table.py --json results/search/free_scores/combined_table.json --doc docs/search.md
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "search" / "criteria_study"
FREE = ROOT / "results" / "search" / "free_scores"
COLUMN = "cifar10_valid_acc"
BASE = ("supernet", "naswot", "synflow")
CANDIDATES = ("aznas", "zico", "jacov", "lid")
LID_VARIANTS = ("last", "mean", "peak_minus_last", "last_minus_first")
#: published Kendall τ on NB201 CIFAR-10 over all 15,625 cells at NB201's own C = 16, N = 5 (the
#: issue's anchors: AZ-NAS's paper, ZiCo's, NASWOT's, and the zero-cost proxy surveys)
PUBLISHED = {"aznas": 0.741, "zico": 0.61, "naswot": 0.58, "params": 0.57, "synflow": 0.54}


def _clean(v) -> float:
    return float(v) if v is not None and np.isfinite(v) else -np.inf


def seed_signals(seed: int, proxies: dict, free: dict) -> tuple[list[str], np.ndarray, dict]:
    """(cells, truth (500,), {signal: (500,) values}) of one seed."""
    from naslid.scores.aznas import AZNAS_TERMS, rank_aggregate
    from naslid.scores.lid_profile import profile_score
    import torch

    pts = json.loads((STUDY / f"lid-s{seed}" / "result.json").read_text())["ranking"]["sampled_points"]
    cells = [p[0] for p in pts]
    truth = np.array([p[2][COLUMN] for p in pts])
    sig = {"supernet": np.array([p[1]["neg_loss"] for p in pts]),
           "params": np.array([p[1]["params"] for p in pts]), "flops": np.array([p[1]["flops"] for p in pts])}
    for crit in ("random", "none", "grad"):
        f = STUDY / f"{crit}-s{seed}" / "result.json"
        if f.is_file():
            other = {p[0]: p[1]["neg_loss"] for p in json.loads(f.read_text())["ranking"]["sampled_points"]}
            sig[f"supernet_{crit}"] = np.array([other[c] for c in cells])
    s = str(seed)
    sc = free["scores"]
    for name in ("synflow", "naswot"):  # a --free file's own values (another network or batch) win
        src = sc[name] if s in sc.get(name, {}) else proxies["scores"][name]
        sig[name] = np.array([_clean(src[s][c]) for c in cells])
    if s in sc.get("aznas", {}):
        t = {k: [_clean(sc["aznas"][s][c][k]) for c in cells] for k in AZNAS_TERMS}
        sig["aznas"] = rank_aggregate(t)
        for k in AZNAS_TERMS:
            sig[f"aznas_{k}"] = np.array(t[k])
    for name in ("zico", "jacov"):
        if s in sc.get(name, {}):
            sig[name] = np.array([_clean(sc[name][s][c]) for c in cells])
    for key in sorted(k for k in sc if k.startswith("lid_profile")):
        if s not in sc[key]:
            continue
        tag = "lid" + key[len("lid_profile"):]            # lid_profile -> lid, lid_profile_x -> lid_x
        prof = [torch.tensor(sc[key][s][c], dtype=torch.float64) for c in cells]
        for v in LID_VARIANTS:
            sig[f"{tag}_{v}"] = np.array([_clean(profile_score(p, v)) for p in prof])
            sig[f"neg_{tag}_{v}"] = -sig[f"{tag}_{v}"]
        if key == "lid_profile":
            sig["lid"] = sig["lid_last"]
    return cells, truth, sig


def shared_warmup(seed: int) -> bool | None:
    """True when every criterion's run of the seed logged the same warm-up (loss and accuracy of
    every warm-up epoch equal): the runs share one warm-up (the same seed, a deterministic CPU
    run), so the criteria are paired on it. None when a run is missing."""
    logs = []
    for crit in ("lid", "random", "none", "grad"):
        f = STUDY / f"{crit}-s{seed}" / "result.json"
        if not f.is_file():
            return None
        hist = json.loads(f.read_text())["split_tree"]["r"]["history"]
        logs.append([(h["loss"], h["acc"]) for h in hist if h["stage"].startswith("warmup")])
    return bool(logs[0]) and all(log == logs[0] for log in logs)


def combine(sig: dict, names) -> np.ndarray:
    """Mean quantile (mid-rank / (n + 1)) of the named signals."""
    from scipy.stats import rankdata

    n = len(next(iter(sig.values())))
    return np.mean([rankdata(np.where(np.isfinite(sig[k]), sig[k], -np.inf)) / (n + 1) for k in names], axis=0)


def metrics(pred: np.ndarray, truth: np.ndarray, seed: int) -> dict:
    from naslid.ranking import bootstrap_kendall_ci, ranking_metrics

    p = np.where(np.isfinite(pred), pred, np.nanmin(pred[np.isfinite(pred)]) - 1.0)  # unratable: lowest
    m = ranking_metrics(p, truth)
    return {"tau": m["kendall_tau"], "rho": m["spearman_rho"], "p10": m["precision_at_10"],
            "tau_ci95": bootstrap_kendall_ci(p, truth, seed=seed), "top_cell_acc": float(truth[int(np.argmax(p))])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--proxies", default=str(STUDY / "proxies_sample.json"))
    ap.add_argument("--free", nargs="+", default=[str(FREE / "sample_c8.json")],
                    help="proxy_scores.py / supernet_lid.py files (their scores are merged; their naswot "
                         "and synflow, where present, replace those of --proxies)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--doc", default=None, help="a markdown file whose combined-table section is rewritten")
    ap.add_argument("--marker", default="combined-table", help="the section's marker name in --doc")
    args = ap.parse_args(argv)
    from naslid.ranking import paired_delta_tau

    proxies = json.loads(Path(args.proxies).read_text())
    free = {"scores": {}, "seconds": {}, "settings": []}
    for f in args.free:
        d = json.loads(Path(f).read_text())
        for part in ("scores", "seconds"):
            for name, by_seed in d.get(part, {}).items():
                free[part].setdefault(name, {}).update(by_seed)
        free["settings"].append({"file": Path(f).name, **d.get("settings", {})})
    per_seed = {s: seed_signals(s, proxies, free) for s in args.seeds}
    sig0 = per_seed[args.seeds[0]][2]
    singles = [k for k in sig0 if all(k in per_seed[s][2] for s in args.seeds)]
    combos = {"free: naswot+synflow": ("naswot", "synflow"),
              "supernet+naswot+synflow": BASE}
    for c in CANDIDATES:
        if c in singles:
            combos[f"supernet+naswot+synflow+{c}"] = BASE + (c,)
    # the rule: candidates whose paired Δτ interval lies above 0 join the default
    truths = [per_seed[s][1] for s in args.seeds]
    base_pred = [combine(per_seed[s][2], BASE) for s in args.seeds]
    paired, joined = {}, []
    for c in CANDIDATES:
        if c not in singles:
            continue
        with_c = [combine(per_seed[s][2], BASE + (c,)) for s in args.seeds]
        paired[c] = paired_delta_tau(with_c, base_pred, truths)
        if paired[c]["ci95"] is not None and paired[c]["ci95"][0] > 0:
            joined.append(c)
    default = BASE + tuple(joined)
    if {"aznas", "lid"} <= set(singles) and default != BASE + ("aznas", "lid"):
        combos["supernet+naswot+synflow+aznas+lid"] = BASE + ("aznas", "lid")  # the rule on seed 0 alone
    combos["default: " + "+".join(default)] = default
    combos["default free-only: " + "+".join(default[1:])] = default[1:]
    for crit in ("random", "none", "grad"):
        if f"supernet_{crit}" in singles:
            combos[f"default, {crit} leaves"] = (f"supernet_{crit}",) + default[1:]
    rows = {}
    for name in singles:
        rows[name] = {str(s): metrics(per_seed[s][2][name], per_seed[s][1], s) for s in args.seeds}
    for name, parts in combos.items():
        rows[name] = {str(s): metrics(combine(per_seed[s][2], parts), per_seed[s][1], s) for s in args.seeds}
        rows[name]["signals"] = list(parts)
    # leave-one-out, reported only (not a selection rule): what each joined score adds to the others
    loo = {}
    default_pred = [combine(per_seed[s][2], default) for s in args.seeds]
    for c in joined:
        rest = tuple(x for x in default if x != c)
        loo[c] = paired_delta_tau(default_pred, [combine(per_seed[s][2], rest) for s in args.seeds], truths)
    split_pairs = {}
    for crit in ("random", "none", "grad"):
        if f"supernet_{crit}" in singles:
            other = [combine(per_seed[s][2], (f"supernet_{crit}",) + default[1:]) for s in args.seeds]
            split_pairs[crit] = paired_delta_tau([combine(per_seed[s][2], default) for s in args.seeds], other, truths)
    # and without any supernet (the training-free scores alone), paired on the same cells
    split_pairs["no supernet"] = paired_delta_tau(default_pred, [combine(per_seed[s][2], default[1:])
                                                                 for s in args.seeds], truths)
    seconds = {k: v for k, v in free.get("seconds", {}).items()}
    seconds.update({k: v for k, v in proxies.get("seconds", {}).items() if k not in seconds})
    doc = {"seeds": args.seeds, "free_settings": free["settings"], "cells": len(truths[0]), "column": COLUMN, "rule": __doc__.split("Rule stated")[1].split("\n\n")[0],
           "shared_warmup": {str(s): shared_warmup(s) for s in args.seeds},
           "paired_candidates": paired, "default": list(default), "leave_one_out": loo, "split_in_default": split_pairs,
           "seconds_per_500": seconds, "rows": rows}
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    print(md)
    if args.doc:
        rewrite_section(Path(args.doc), args.marker, md)
    return 0


def rewrite_section(path: Path, marker: str, md: str) -> None:
    """Replace the text between ``<!-- BEGIN marker -->`` and ``<!-- END marker -->`` of a
    markdown file with ``md`` (appended with its markers when absent)."""
    text = path.read_text()
    b, e = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
    block = f"{b}\n{md}\n{e}"
    if b in text:
        text = re.sub(re.escape(b) + ".*?" + re.escape(e), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def _ms(v):
    v = [x for x in v if x is not None]
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}" if v else "–"


def markdown(doc: dict) -> str:
    seeds = [str(s) for s in doc["seeds"]]
    out = [f"τ / ρ / precision@10 % against NB201 `{doc['column']}` on the study's {doc['cells']} stratified "
           f"cells, per seed (supernet = the seed's LID run's −loss; free scores initialised with the seed); "
           f"[..] = 95 % bootstrap interval of τ (cells resampled).", "",
           "| predictor | " + " | ".join(f"τ s{s}" for s in seeds) + " | τ mean ± sd | ρ mean | p@10 % mean "
           "| top cell of the 500 (min–max %) | published τ |",
           "|---|" + "---|" * (len(seeds) + 5)]
    for name, r in doc["rows"].items():
        taus = [r[s]["tau"] for s in seeds]
        cells = [f"{r[s]['tau']:.3f} [{r[s]['tau_ci95'][0]:.2f}, {r[s]['tau_ci95'][1]:.2f}]" if r[s]["tau_ci95"]
                 else f"{r[s]['tau']:.3f}" for s in seeds]
        tops = [r[s]["top_cell_acc"] for s in seeds]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {_ms(taus)} | {np.mean([r[s]['rho'] for s in seeds]):.3f} "
                   f"| {np.mean([r[s]['p10'] for s in seeds]):.2f} | {min(tops):.2f}–{max(tops):.2f} "
                   f"| {PUBLISHED.get(name, '')} |")
    sec = doc["seconds_per_500"]
    out += ["", "Seconds per 500 cells (mean over the seeds scored; one thread on a 2-core machine shared with "
            "other jobs, so upper bounds): " + ", ".join(f"{k} {np.mean(list(v.values())):.0f} s" for k, v in sec.items()) + "."]
    out += ["", "Paired Δτ of adding each candidate to supernet + naswot + synflow (the pre-stated rule: it joins "
            "when the 95 % interval is above 0):", ""]
    for c, p in doc["paired_candidates"].items():
        ci = p["ci95"]
        out.append(f"- `{c}`: Δτ {p['mean']:+.3f} (per seed {', '.join(f'{d:+.3f}' for d in p['per_seed'])}), "
                   f"95 % [{ci[0]:+.3f}, {ci[1]:+.3f}] → {'joins' if c in doc['default'] else 'stays out'}")
    out += ["", f"Default combination: `{'+'.join(doc['default'])}`. Leave-one-out (reported, not a rule): "
            "Δτ of the default minus the default without the score:", ""]
    for c, p in doc.get("leave_one_out", {}).items():
        ci = p["ci95"]
        out.append(f"- without `{c}`: Δτ {p['mean']:+.3f} (per seed {', '.join(f'{d:+.3f}' for d in p['per_seed'])}), "
                   f"95 % [{ci[0]:+.3f}, {ci[1]:+.3f}]")
    shared = doc.get("shared_warmup", {})
    same = [s for s, v in shared.items() if v]
    out += ["", "Does the split matter inside the default combination (paired, two-level bootstrap; the "
            f"criteria's runs of a seed share one warm-up: identical warm-up logs at seeds {', '.join(same) or 'none'} "
            f"of {', '.join(shared) or '–'}):", ""]
    for crit, p in doc["split_in_default"].items():
        ci = p["ci95"]
        other = "without a supernet (free scores only)" if crit == "no supernet" else f"with {crit} leaves"
        out.append(f"- default with LID leaves − {other}: Δτ {p['mean']:+.3f} "
                   f"(per seed {', '.join(f'{d:+.3f}' for d in p['per_seed'])}), 95 % [{ci[0]:+.3f}, {ci[1]:+.3f}]")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
