"""The best-scored cells of end-to-end search runs against NB201's ground truth: is the found cell
the limit, or the search?

For each run, the ``n`` cells with the highest fitness among all the cells its search evaluated
(``result.json``'s ``search.top``; for runs written before it, their ``ckpt/search.pt``), with
NB201's accuracy and place among all 15,625 cells. The summary counts, per rank r, the runs whose
r-th best-scored cell reaches the combined-search issue's two marks (synflow's exhaustive pick,
90.20 %, and NB201's top 1 %), and the runs with such a cell among their first r.

    python studies/top_scored.py --runs RUN_DIR_OR_RESULT_JSON ... --json results/search/free_scores/top_scored_n5.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
from combined_runs import COLUMN, DATA, SYNFLOW_PICK, top1_threshold  # noqa: E402


def top_of_run(path: Path, n: int) -> tuple[int, list[dict]]:
    """(seed, [{"arch", "fitness"}] best first) of a run folder or its result.json."""
    res = path / "result.json" if path.is_dir() else path
    d = json.loads(res.read_text())
    top = d["search"].get("top")
    if top is None or len(top) < n:
        import torch
        from naslid.run.final_search import top_scored

        ckpt = (path if path.is_dir() else path.parent) / "ckpt" / "search.pt"
        if not ckpt.is_file():
            raise SystemExit(f"top_scored: {res} has no search.top of {n} cells and no {ckpt} to rebuild it from")
        top = top_scored(torch.load(ckpt, weights_only=False)["state"]["evaluated"], n)
    if top[0]["arch"] != d["best_arch"]:
        raise SystemExit(f"top_scored: {path}: the best-scored cell {top[0]['arch']} is not the run's "
                         f"best_arch {d['best_arch']}")
    return int(d["config"]["seed"]), top[:n]


def build_doc(tops: dict[int, list[dict]], acc_of: dict[str, float], accs: np.ndarray, n: int) -> dict:
    """tops: seed -> best-first cells; acc_of: arch string -> NB201 accuracy; accs (cells,): all of them."""
    top1 = top1_threshold(accs)
    runs = {}
    for seed, top in sorted(tops.items()):
        runs[str(seed)] = [{**t, "acc": acc_of[t["arch"]], "better_cells": int(np.sum(accs > acc_of[t["arch"]]))}
                           for t in top]
    marks = {"synflow_pick": SYNFLOW_PICK, "top1_percent": top1}
    summary = {}
    for mark, thr in marks.items():
        at = [sum(r[i]["acc"] >= thr for r in runs.values() if len(r) > i) for i in range(n)]
        within = [sum(any(c["acc"] >= thr for c in r[:i + 1]) for r in runs.values()) for i in range(n)]
        summary[mark] = {"threshold": thr, "runs_at_rank": at, "runs_within_rank": within}
    return {"column": COLUMN, "n": n, "runs": runs, "summary": summary}


def markdown(doc: dict) -> str:
    n = doc["n"]
    out = ["| seed | " + " | ".join(f"#{i + 1}" for i in range(n)) + " |", "|---|" + "---|" * n]
    for seed, top in doc["runs"].items():
        out.append(f"| {seed} | " + " | ".join(f"{c['acc']:.2f}" for c in top) + " |")
    runs = len(doc["runs"])
    for mark, label in (("synflow_pick", "≥ synflow's pick"), ("top1_percent", "in NB201's top 1 %")):
        s = doc["summary"][mark]
        out.append(f"| runs {label} ({s['threshold']:.2f} %), at / within this rank | "
                   + " | ".join(f"{a} / {w}" for a, w in zip(s["runs_at_rank"], s["runs_within_rank"])) + " |")
    out += ["", f"NB201 `{doc['column']}` (%) of each run's best-scored cells (#1 = the found cell), {runs} runs."]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True, help="run folders or their result.json")
    ap.add_argument("--n", type=int, default=10, help="best-scored cells per run (default 10)")
    ap.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    ap.add_argument("--json", required=True)
    ap.add_argument("--doc", default=None, help="a markdown file whose top-scored section is rewritten")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n must be at least 1, got {args.n}")
    from naslid.groundtruth.table import load_benchmark
    from naslid.spaces import get_space

    bench = load_benchmark(args.benchmark, get_space("nb201", C=8, N=1, input_size=16, num_classes=10))
    tops = dict(top_of_run(Path(p), args.n) for p in args.runs)
    acc_of = {t["arch"]: bench.acc(t["arch"], COLUMN) for top in tops.values() for t in top}
    doc = build_doc(tops, acc_of, np.asarray(bench.values(COLUMN), dtype=np.float64), args.n)
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    print(md)
    if args.doc:
        from combined_table import rewrite_section

        rewrite_section(Path(args.doc), "top-scored", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
