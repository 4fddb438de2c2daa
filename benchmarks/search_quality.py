"""Search quality on CIFAR-10 + NB201 ground truth: criteria none / random / grad / lid, same budget.

Slow (not part of the test suite). For every criterion and seed it runs the real pipeline
(``naslid.pipeline.run_search``) with the ``cpu`` preset (docs/search.md: NB201 C=8, N=1 on the
25k cifar10-valid training half at 16x16, warm-up 40 epochs, one split, 25 leaf epochs, every cell
scored by its loss on 2,000 fixed held-out images; ``none`` trains its one supernet for the same
epochs), then tabulates Kendall τ between the supernet's scores and NB201's ``cifar10_valid_acc``
over the top 1 % (156 archs) and 500 stratified de-isomorphic cells, the parameter count's τ on the
same cells, the wall time, the split step's time (and the LID ops' share of it), peak memory and the
found architecture's ``cifar10_valid_acc``. Finished runs are read back from their folders.

    python benchmarks/search_quality.py --work /tmp/sq --seeds 0 1 2 --json /tmp/sq/summary.json

Exit status 0; prints the markdown table (also written to ``--markdown``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CRITERIA = ("none", "random", "grad", "lid")


def budget(args, criterion: str, seed: int, out: Path) -> dict:
    """Overrides of the cpu preset for one run."""
    return {
        "data": {"dataset": "npz", "data_dir": str(args.data)},
        "split": {"criterion": criterion},
        "benchmark": {"file": str(args.benchmark)},
        "seed": seed, "device": args.device, "out": str(out), "quiet": True, "threads": args.threads,
    }


def one_run(job: tuple) -> dict:
    args, criterion, seed = job
    from naslid.config import SearchConfig
    from naslid.pipeline import run_search

    out = Path(args.work) / f"{criterion}-s{seed}"
    done = out / "result.json"
    if not done.exists():
        cfg = SearchConfig.from_dict(budget(args, criterion, seed, out),
                                     base=SearchConfig.preset_config("cpu"))
        cfg.resume = (out / "run.json").exists()
        t0 = time.perf_counter()
        run_search(cfg)
        wall = time.perf_counter() - t0
    else:
        wall = None
    r = json.loads(done.read_text())
    col = "cifar10_valid_acc"
    top, sampled = r["ranking"]["top"][col]["neg_loss"], r["ranking"]["sampled"][col]["neg_loss"]
    return {
        "criterion": criterion, "seed": seed,
        "tau_top": top["kendall_tau"],
        "tau_sampled": sampled["kendall_tau"],
        "rho_sampled": sampled["spearman_rho"],
        "tau_sampled_acc": r["ranking"]["sampled"][col]["acc"]["kendall_tau"],
        "tau_sampled_params": r["ranking"]["sampled"][col]["params"]["kendall_tau"],
        "n_top": top["n"], "n_sampled": sampled["n"],
        "wall_s": sum(r["timings"].values()) if wall is None else wall,
        "split_s": r["timings"].get("split", 0.0),
        "lid_s": sum((n.get("split") or {}).get("lid_seconds", 0.0) for n in r["split_tree"].values()),
        "peak_split_bytes": r["peak_memory_bytes"].get("split", 0),
        "peak_bytes": max(r["peak_memory_bytes"].values()),
        "best_arch": r["best_arch"],
        "best_cifar10_valid_acc": (r.get("best_arch_benchmark") or {}).get(col),
        "chosen": {nid: (n.get("split") or {}).get("chosen") for nid, n in r["split_tree"].items()
                   if n.get("split") and n["split"].get("split")},
    }


def fmt(vals, digits=3):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    m = statistics.mean(vals)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = ["| criterion | τ top 1 % (156) | τ sampled (500), −loss | ρ sampled | τ sampled, acc | "
             "τ params (same cells) | found arch cifar10_valid_acc | wall time (s) | split step (s) | of which LID (s) | "
             "peak RSS split / run (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in CRITERIA:
        rs = [r for r in rows if r["criterion"] == c]
        if not rs:
            continue
        lines.append(
            f"| {c} | {fmt([r['tau_top'] for r in rs])} | {fmt([r['tau_sampled'] for r in rs])} | "
            f"{fmt([r['rho_sampled'] for r in rs])} | {fmt([r['tau_sampled_acc'] for r in rs])} | "
            f"{fmt([r['tau_sampled_params'] for r in rs])} | {fmt([r['best_cifar10_valid_acc'] for r in rs], 2)} | "
            f"{fmt([r['wall_s'] for r in rs], 0)} | {fmt([r['split_s'] for r in rs], 1)} | "
            f"{fmt([r['lid_s'] for r in rs], 1)} | "
            f"{max(r['peak_split_bytes'] for r in rs) / 2**20:.0f} / {max(r['peak_bytes'] for r in rs) / 2**20:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/naslid_search_quality", help="run folders and the derived npz")
    p.add_argument("--data", default=str(DATA / "cifar10.npz"))
    p.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=CRITERIA)
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--json", help="write all rows as JSON")
    p.add_argument("--markdown", help="write the table as markdown")
    args = p.parse_args(argv)
    if not Path(args.data).exists() or not Path(args.benchmark).exists():
        print(f"search_quality: needs {args.data} and {args.benchmark} (../shared/data); skipped", file=sys.stderr)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(args, c, s) for s in args.seeds for c in args.criteria]
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        for row in ex.map(one_run, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    md = table(rows)
    print(md)
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
