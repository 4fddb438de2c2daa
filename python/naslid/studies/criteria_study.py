"""The paired criteria study's report: read finished search runs, tabulate, compare paired.

A study is a folder of run folders ``<criterion>-s<seed>`` (``studies/search_quality.py run``)
that share, per seed, one warm-up and one ranking sample. This module reads their ``result.json``
files and builds the report: per criterion and seed Kendall τ (−loss and accuracy), Spearman ρ and
precision@top-10 % against the benchmark column over the sampled cells, τ over the top 1 %, the
found cell's accuracy, split-step time and extra memory; the free baselines on the same cells
(parameter count, FLOPs, zero-cost proxies); paired Δτ with a two-level bootstrap interval
(``naslid.ranking.paired_delta_tau``) and a verdict against the pre-registered threshold: a
|Δτ| below ``NO_DIFFERENCE`` (0.05) counts as no difference.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..ranking import (bootstrap_indices, bootstrap_kendall_ci, paired_delta_tau, precision_at,
                       rank_correlations)

COLUMN = "cifar10_valid_acc"
NO_DIFFERENCE = 0.05
PAIRS = (("lid", "none"), ("lid", "grad"), ("lid", "random"))
SCORE = "neg_loss"   # the study compares the pipeline's own fitness (search.score: loss)


# ------------------------------------------------------------------------------------------------
# reading runs
# ------------------------------------------------------------------------------------------------
def load_runs(work: str | Path, seeds: Sequence[int], criteria: Sequence[str]) -> dict:
    """``{(criterion, seed): result.json body}`` of the finished runs in ``work`` (missing runs
    are left out)."""
    out = {}
    for c in criteria:
        for s in seeds:
            p = Path(work) / f"{c}-s{s}" / "result.json"
            if p.is_file():
                out[(c, int(s))] = json.loads(p.read_text())
    return out


def trim_result(result: Mapping) -> dict:
    """The parts of a run's ``result.json`` the study reads (about a third of its size: the split
    records' LID vectors and similarity matrices and the search history dropped), so that a
    study's table can be kept and recomputed from a small folder (``report --export``)."""
    keep = ("best_arch", "best_valid_acc", "best_valid_loss", "best_leaf", "best_arch_benchmark", "ranking",
            "timings", "peak_memory_bytes", "extra_memory_bytes", "config", "config_hash", "data")
    out = {k: result[k] for k in keep if k in result}
    out["split_tree"] = {}
    for nid, n in result["split_tree"].items():
        split = n.get("split")
        out["split_tree"][nid] = {
            "history": n.get("history", []), "leaf": n.get("leaf"), "parent": n.get("parent"),
            "split": None if split is None else {k: split.get(k) for k in
                                                 ("split", "criterion", "chosen", "groups", "seconds", "lid_seconds")}}
    return out


def sampled_cells(result: Mapping) -> tuple[list[str], dict[str, list[float]], list[float]]:
    """(arch strings, {predictor: scores}, truth) of a run's ranking sample, in the run's order."""
    pts = result["ranking"]["sampled_points"]
    archs = [p[0] for p in pts]
    names = list(pts[0][1]) if pts else []
    return archs, {n: [float(p[1][n]) for p in pts] for n in names}, [float(p[2][COLUMN]) for p in pts]


def warmup_losses(result: Mapping) -> list[float]:
    return [h["loss"] for h in result["split_tree"]["r"]["history"] if h["stage"] == "warmup-0"]


def run_row(result: Mapping) -> dict:
    """One run's numbers for the table."""
    s = result["ranking"]["sampled"][COLUMN]
    top = result["ranking"]["top"][COLUMN]
    tree = result["split_tree"]
    extra = result.get("extra_memory_bytes") or {}
    return {
        "tau": s[SCORE]["kendall_tau"], "tau_ci95": s[SCORE]["kendall_tau_ci95"],
        "rho": s[SCORE]["spearman_rho"], "precision_at_10": s[SCORE]["precision_at_10"],
        "tau_acc": s["acc"]["kendall_tau"], "tau_top": top[SCORE]["kendall_tau"], "n": s[SCORE]["n"],
        "found_acc": (result.get("best_arch_benchmark") or {}).get(COLUMN), "found_arch": result["best_arch"],
        "split_s": result["timings"].get("split", 0.0),
        "lid_s": sum((n.get("split") or {}).get("lid_seconds", 0.0) for n in tree.values()),
        "split_extra_bytes": extra.get("split"),
        "wall_s": sum(result["timings"].values()),
        "warmup_s": result["timings"].get("warmup", 0.0),
        "chosen": [n["split"]["chosen"] for n in tree.values() if n.get("split") and n["split"].get("split")],
    }


# ------------------------------------------------------------------------------------------------
# baselines: proxies and the stand-alone ground truth
# ------------------------------------------------------------------------------------------------
def load_proxies(path: str | Path, option: str = "--proxies", expect: Mapping | None = None) -> dict:
    """``{"settings", "scores": {proxy: {seed: {arch: score}}}, "best", "seconds"}`` written by
    ``studies/proxy_scores.py``; ``expect``: settings (e.g. C, N, image_size) the file must have
    been computed with. ValueError naming ``option`` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{option}: {str(p)!r} does not exist (studies/proxy_scores.py writes it)")
    d = json.loads(p.read_text())
    if not isinstance(d, dict) or "scores" not in d or "settings" not in d:
        raise ValueError(f"{option}: {str(p)!r} is not a proxy score file (no 'settings' / 'scores')")
    diff = [f"{k} ({d['settings'].get(k)!r} there, {v!r} here)" for k, v in (expect or {}).items()
            if d["settings"].get(k) != v]
    if diff:
        raise ValueError(f"{option}: {str(p)!r} was computed at another setting: " + "; ".join(diff))
    return d


def _lowest_last(values: Sequence[float | None]) -> list[float]:
    """Proxy scores for ranking: None (stored for -inf: e.g. NASWOT's singular kernel) and -inf
    rank below every finite score (min - 1) instead of being dropped; a missing score stays NaN."""
    v = [-math.inf if x is None else float(x) for x in values]
    finite = [x for x in v if math.isfinite(x)]
    low = (min(finite) - 1.0) if finite else 0.0
    return [low if x == -math.inf else x for x in v]


def _tau(pred, truth) -> float | None:
    return rank_correlations(pred, truth)["kendall_tau"]


def _summary(values: Sequence[float | None]) -> dict:
    """Mean, standard deviation and a t-free 95 % interval of the mean over seeds (bootstrap of
    the seeds' values; None with fewer than 2 values)."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"n": 0, "mean": None, "sd": None, "ci95": None}
    ci = None
    if len(v) > 1:
        boot = np.asarray(v)[bootstrap_indices(len(v), 2000, 0)].mean(axis=1)
        ci = [float(x) for x in np.percentile(boot, [2.5, 97.5])]
    return {"n": len(v), "mean": statistics.mean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0, "ci95": ci}


def verdict(ci: Sequence[float] | None, mean: float, resolves: bool, threshold: float = NO_DIFFERENCE) -> str:
    """The pre-registered reading of a paired Δτ interval."""
    if ci is None or not resolves:
        return "not resolved (too few seeds)"
    lo, hi = ci
    if -threshold < lo and hi < threshold:
        return f"no difference (interval inside ±{threshold})"
    if lo > 0:
        return "lid better" + ("" if mean >= threshold else f" (by less than {threshold})")
    if hi < 0:
        return "lid worse" + ("" if mean <= -threshold else f" (by less than {threshold})")
    return "not resolved (interval contains 0)"


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------
TABLE_KEYS = ("tau", "rho", "precision_at_10", "tau_acc", "tau_top", "found_acc", "split_s", "lid_s",
              "split_extra_bytes", "wall_s")


def paired_report(runs: Mapping, *, seeds: Sequence[int], criteria: Sequence[str], min_seeds: int = 5,
                  partial: bool = False, proxies: Mapping | None = None,
                  standalone=None, proxy_search: Sequence[Mapping] | None = None,
                  top_threshold: float | None = None, resamples: int = 2000) -> dict:
    """The study's report (JSON-ready); see the module docstring. A seed counts when every
    criterion of it has finished; with fewer complete seeds than ``min_seeds`` a ValueError
    names ``--seeds`` unless ``partial`` (then the intervals are marked as not resolving).
    ``standalone``: a ``naslid.studies.standalone.StandaloneTruth`` (the stand-alone proxy ground truth);
    ``proxy_search``: ``proxy_scores.py --cells all`` documents (``proxy_search_section``);
    ``top_threshold``: the benchmark column's top-10 % threshold over the whole benchmark
    (``top_fraction_threshold``), to count the seeds whose found cell reaches it."""
    complete = complete_seeds(runs, seeds, criteria, min_seeds, partial)
    resolves = len(complete) >= min_seeds
    cells, truth, pairing = check_pairing(runs, complete, criteria)
    rows = {c: {s: run_row(runs[(c, s)]) for s in complete} for c in criteria}
    table = {c: {k: _summary([rows[c][s][k] for s in complete]) for k in TABLE_KEYS} for c in criteria}
    ref = runs[(criteria[0], complete[0])]
    rep = {"column": COLUMN, "score": SCORE, "threshold": NO_DIFFERENCE, "seeds_requested": list(seeds),
           "seeds_complete": complete, "min_seeds": min_seeds, "resolves": resolves, "pairing": pairing,
           "criteria": list(criteria), "per_seed": rows, "table": table,
           "baselines": baselines(runs, complete, criteria[0], cells, truth, proxies),
           "paired": paired_differences(runs, complete, criteria, truth, resolves, resamples),
           "cells": len(cells[complete[0]]),
           "protocol": {k: ref["config"][k] for k in ("space", "data", "split", "train", "search", "benchmark")}}
    if standalone is not None:
        rep["standalone"] = standalone_section(runs, complete, criteria, standalone)
    if proxy_search:
        rep["proxy_search"] = proxy_search_section(rows, complete, proxy_search)
    if top_threshold is not None:
        rep["found_top10"] = found_in_top(rows, complete, top_threshold)
    return rep


def top_fraction_threshold(values: Sequence[float], fraction: float = 0.1) -> float:
    """The value that the best ``fraction`` of ``values`` (a benchmark column, non-finite entries
    ignored) reach: the (1 − fraction) quantile. NB201 ``cifar10_valid_acc``, 10 %: 89.65."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not 0 < fraction < 1 or not len(v):
        raise ValueError(f"top_fraction_threshold: fraction {fraction} must lie in (0, 1) and values must "
                         f"hold a finite number (got {len(v)})")
    return float(np.quantile(v, 1.0 - fraction))


def found_in_top(rows: Mapping, seeds: Sequence[int], threshold: float) -> dict:
    """Per criterion, the seeds whose found cell reaches ``threshold`` (``run_row`` rows)."""
    return {"threshold": threshold, "seeds": len(seeds),
            "count": {c: sum(1 for s in seeds if (rows[c][s]["found_acc"] is not None
                                                  and rows[c][s]["found_acc"] >= threshold))
                      for c in rows}}


def complete_seeds(runs: Mapping, seeds: Sequence[int], criteria: Sequence[str], min_seeds: int,
                   partial: bool) -> list[int]:
    """The seeds every criterion has finished; ValueError naming ``--seeds`` when they are fewer
    than ``min_seeds`` (unless ``partial``) or none."""
    complete = [s for s in seeds if all((c, s) in runs for c in criteria)]
    if len(complete) < min_seeds and not partial:
        raise ValueError(f"--seeds: {len(complete)} seed(s) {complete} complete for every criterion, the paired "
                         f"interval needs --min-seeds {min_seeds} (or pass --partial)")
    if not complete:
        raise ValueError(f"--seeds: no seed of {list(seeds)} has finished every criterion {list(criteria)}")
    return complete


def check_pairing(runs: Mapping, seeds: Sequence[int], criteria: Sequence[str]) -> tuple[dict, dict, dict]:
    """Per seed: the cells (ValueError when the criteria scored different cells), their truth, and
    the pairing record (cells, whether every criterion's warm-up loss history is identical)."""
    cells, truth, pairing = {}, {}, {}
    for s in seeds:
        ref_archs, _, ref_truth = sampled_cells(runs[(criteria[0], s)])
        if not all(sampled_cells(runs[(c, s)])[0] == ref_archs for c in criteria):
            raise ValueError(f"seed {s}: the runs scored different cells (another benchmark or sample)")
        warm = warmup_losses(runs[(criteria[0], s)])
        pairing[s] = {"cells": len(ref_archs),
                      "shared_warmup": all(warmup_losses(runs[(c, s)]) == warm for c in criteria)}
        cells[s], truth[s] = ref_archs, ref_truth
    return cells, truth, pairing


def _baseline(values_per_seed: Sequence[Sequence[float]], truth_per_seed: Sequence[Sequence[float]]) -> dict:
    return {"tau": _summary([_tau(v, t) for v, t in zip(values_per_seed, truth_per_seed)]),
            "precision_at_10": _summary([precision_at(v, t) for v, t in zip(values_per_seed, truth_per_seed)])}


def baselines(runs: Mapping, seeds: Sequence[int], criterion: str, cells: Mapping, truth: Mapping,
              proxies: Mapping | None) -> dict:
    """τ and precision@10 % of the free predictors on the same cells: the parameter count and
    FLOPs (from ``criterion``'s runs) and each proxy of ``proxies`` (seeds it lacks are skipped)."""
    out = {name: _baseline([sampled_cells(runs[(criterion, s)])[1][name] for s in seeds],
                           [truth[s] for s in seeds]) for name in ("params", "flops")}
    for name, by_seed in (proxies or {}).get("scores", {}).items():
        have = [s for s in seeds if (by_seed.get(str(s)) or by_seed.get(s)) is not None]
        scores = [by_seed.get(str(s)) or by_seed.get(s) for s in have]
        out[name] = _baseline([_lowest_last([sc.get(a, math.nan) for a in cells[s]]) for s, sc in zip(have, scores)],
                              [truth[s] for s in have])
    return out


def paired_differences(runs: Mapping, seeds: Sequence[int], criteria: Sequence[str], truth: Mapping,
                       resolves: bool, resamples: int) -> dict:
    """``PAIRS``' paired Δτ (``ranking.paired_delta_tau``) with their verdicts."""
    out = {}
    for a, b in PAIRS:
        if a not in criteria or b not in criteria:
            continue
        pa = [sampled_cells(runs[(a, s)])[1][SCORE] for s in seeds]
        pb = [sampled_cells(runs[(b, s)])[1][SCORE] for s in seeds]
        r = paired_delta_tau(pa, pb, [truth[s] for s in seeds], resamples=resamples)
        r["verdict"] = verdict(r["ci95"], r["mean"], resolves)
        r["seeds"] = list(seeds)
        out[f"{a}-{b}"] = r
    return out


def proxy_search_section(rows: Mapping, seeds: Sequence[int], docs: Sequence[Mapping]) -> dict:
    """The cell each zero-cost proxy picks when it scores every cell (``proxy_scores.py --cells
    all``), per seed, beside the cell each criterion's search found for that seed and the time
    each took (the proxy's scoring seconds; the run's wall seconds, its adopted warm-up included
    at the lid run's warm-up time)."""
    out = {}
    for doc in docs:
        for name, by_seed in doc["best"].items():
            per = {}
            for s in seeds:
                b = by_seed.get(str(s))
                if b is None:
                    continue
                per[s] = {"arch": b["arch"], "acc": b[COLUMN], "cells": b["cells"],
                          "seconds": doc["seconds"][name][str(s)],
                          "found": {c: rows[c][s]["found_acc"] for c in rows},
                          "run_seconds": {c: rows[c][s]["wall_s"] + (rows["lid"][s]["warmup_s"] if c != "lid"
                                                                     and "lid" in rows else 0.0) for c in rows}}
            out[name] = per
    return out


def standalone_section(runs: Mapping, seeds: Sequence[int], criteria: Sequence[str], truth) -> dict:
    """τ(stand-alone, benchmark) and τ(supernet, stand-alone) per criterion on the cells of the
    stand-alone ground truth ``truth`` (a ``naslid.studies.standalone.StandaloneTruth``)."""
    archs, acc = truth.archs, truth.column("standalone_acc")
    out = {"cells": len(archs), "settings": truth.settings,
           "tau_standalone_vs_benchmark": _tau(acc, truth.column(COLUMN)),
           "tau_standalone_vs_benchmark_ci95": bootstrap_kendall_ci(acc, truth.column(COLUMN))}
    per = {}
    for c in criteria:
        taus = []
        for s in seeds:
            got, scores, _ = sampled_cells(runs[(c, s)])
            index = {a: i for i, a in enumerate(got)}
            missing = [a for a in archs if a not in index]
            if missing:
                raise ValueError(f"--standalone: {len(missing)} stand-alone cells are not in the runs' ranking "
                                 f"sample (e.g. {missing[0]}); the cache belongs to another sample")
            taus.append(_tau([scores[SCORE][index[a]] for a in archs], acc))
        per[c] = _summary(taus)
    out["tau_supernet_vs_standalone"] = per
    out["tau_params_vs_standalone"] = _tau([float(p) for p in truth.column("params")], acc)
    return out


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------
def _fmt(summary: Mapping | None, digits: int = 3, scale: float = 1.0) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a"
    m, sd = summary["mean"] * scale, (summary["sd"] or 0.0) * scale
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def markdown(rep: Mapping) -> str:
    """The report as markdown: the criteria and baselines table, then the paired differences."""
    n = len(rep["seeds_complete"])
    head = (f"{n} seed(s) {rep['seeds_complete']} complete"
            + ("" if rep["resolves"] else f" — fewer than {rep['min_seeds']}: intervals do not resolve") + "; "
            f"τ against NB201 `{rep['column']}` over {rep['cells']} stratified cells; mean ± sd over seeds.")
    lines = [head, "",
             "| predictor | τ (−loss) | τ (acc) | ρ | precision@10 % | τ top 1 % | found cell acc | split s | "
             "of which LID s | split extra MiB | run s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in rep["criteria"]:
        t = rep["table"][c]
        lines.append(f"| {c} | {_fmt(t['tau'])} | {_fmt(t['tau_acc'])} | {_fmt(t['rho'])} | "
                     f"{_fmt(t['precision_at_10'], 2)} | {_fmt(t['tau_top'])} | {_fmt(t['found_acc'], 2)} | "
                     f"{_fmt(t['split_s'], 1)} | {_fmt(t['lid_s'], 2)} | "
                     f"{_fmt(t['split_extra_bytes'], 1, 1 / 2**20)} | {_fmt(t['wall_s'], 0)} |")
    for name, b in rep["baselines"].items():
        lines.append(f"| {name} (free) | {_fmt(b['tau'])} | | | {_fmt(b['precision_at_10'], 2)} | | | | | | |")
    lines += ["", f"Paired Δτ (−loss), per seed and mean with a two-level bootstrap 95 % interval "
                  f"(seeds and cells); |Δτ| < {rep['threshold']} counts as no difference:", "",
              "| pair | per seed | mean | 95 % interval | verdict |", "|---|---|---|---|---|"]
    for k, r in rep["paired"].items():
        ci = "n/a" if r["ci95"] is None else f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"
        lines.append(f"| {k} | {', '.join(f'{d:+.3f}' for d in r['per_seed'])} | {r['mean']:+.3f} | {ci} | "
                     f"{r['verdict']} |")
    shared = [s for s, p in rep["pairing"].items() if p["shared_warmup"]]
    lines += ["", f"Shared warm-up (identical warm-up loss history across criteria): seeds {shared} of "
                  f"{list(rep['pairing'])}."]
    if "standalone" in rep:
        sa = rep["standalone"]
        lines += ["", f"Stand-alone proxy ground truth ({sa['cells']} cells): τ(stand-alone, NB201) = "
                      f"{sa.get('tau_standalone_vs_benchmark', float('nan')):.3f}; τ(params, stand-alone) = "
                      f"{sa['tau_params_vs_standalone']:.3f}; τ(supernet −loss, stand-alone): "
                  + ", ".join(f"{c} {_fmt(v)}" for c, v in sa["tau_supernet_vs_standalone"].items())]
    if "found_top10" in rep:
        f = rep["found_top10"]
        lines += ["", f"Found cells in NB201's top 10 % (`{rep['column']}` ≥ {f['threshold']:.2f} %): "
                  + ", ".join(f"{c} {n} of {f['seeds']} seeds" for c, n in f["count"].items()) + "."]
    if rep.get("proxy_search"):
        lines += ["", "The cell a zero-cost proxy picks when it scores every cell, beside the cells the searches "
                      "found (NB201 `cifar10_valid_acc`):", ""]
    for name, per in rep.get("proxy_search", {}).items():
        for s, r in per.items():
            found = ", ".join(f"{c} {v:.2f} %" for c, v in r["found"].items() if v is not None)
            lines.append(f"- seed {s}: {name} over all {r['cells']} cells ({r['seconds']:.0f} s) picks a cell of "
                         f"{r['acc']:.2f} %; the searches found: {found} "
                         f"(lid run {r['run_seconds'].get('lid', float('nan')):.0f} s)")
    return "\n".join(lines)


def plot_delta_tau(rep: Mapping, path: str | Path) -> None:
    """Paired Δτ per seed (dots) with the mean and its interval (bar), one column per pair."""
    from ..run import figures as plt

    pairs = list(rep["paired"])
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(pairs), 3.6))
    for i, k in enumerate(pairs):
        r = rep["paired"][k]
        ax.scatter([i] * len(r["per_seed"]), r["per_seed"], color="tab:blue", s=18, zorder=3)
        if r["ci95"] is not None:
            ax.errorbar([i + 0.15], [r["mean"]], yerr=[[r["mean"] - r["ci95"][0]], [r["ci95"][1] - r["mean"]]],
                        fmt="s", color="black", capsize=4, zorder=3)
    t = rep["threshold"]
    ax.axhspan(-t, t, color="0.9", zorder=0, label=f"|Δτ| < {t}: no difference")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(range(len(pairs)), [k.replace("-", " − ") for k in pairs])
    ax.set_ylabel("paired Δτ (−loss vs NB201)")
    ax.set_title(f"{len(rep['seeds_complete'])} seeds, {rep['cells']} cells")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
