"""Search quality on CIFAR-10 + NB201 ground truth: criteria none / random / grad / lid, same budget.

Slow (not part of the test suite). For every criterion and seed it runs the real pipeline
(``naslid.pipeline.run_search``) with the budget below, then tabulates Kendall τ (and Spearman ρ)
between the leaves' inherited-weight validation accuracy and NB201's ``cifar10_valid_acc`` over the
benchmark's top 1 % (156 archs) and a seeded sample of 500 unique archs, the wall time, the peak
memory (process RSS; split step and whole run) and the found architecture's ``cifar10_valid_acc``.

CPU budget (documented in docs/search.md): NB201 C=8, N=1 (one cell per stage), CIFAR-10 from
``../shared/data/cifar10.npz`` average-pooled 2x2 to 16x16 (a derived npz written to the work
folder, never to the repo), 2,000 training / 300 validation images held out of the training set,
batch 64, cumulative warm-up [3, 6] epochs (2 levels, 4 leaves), 3 leaf epochs; split R=2 batches
of 128, k=20; evolutionary search population 10 x 3 generations; BN recalibrated on 300 training
images per arch.

    python benchmarks/search_quality.py --work /tmp/sq --jobs 2 --json /tmp/sq/summary.json

Exit status 0; prints the markdown table (also written to ``--markdown``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CRITERIA = ("none", "random", "grad", "lid")


def make_small_npz(src: Path, dst: Path, pool: int) -> Path:
    """CIFAR-10 npz average-pooled by ``pool`` (uint8, NHWC), written once to ``dst``."""
    import numpy as np

    if dst.exists():
        return dst
    z = np.load(src)
    out = {}
    for k in ("x_train", "x_test"):
        x = z[k].astype(np.float32)
        n, h, w, c = x.shape
        x = x.reshape(n, h // pool, pool, w // pool, pool, c).mean(axis=(2, 4))
        out[k] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    out["y_train"], out["y_test"] = z["y_train"], z["y_test"]
    tmp = dst.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, dst)
    return dst


def budget(args, criterion: str, seed: int, npz: Path, out: Path) -> dict:
    return {
        "space": {"name": "nb201", "C": args.C, "N": args.N},
        "data": {"dataset": "npz", "data_dir": str(npz), "max_train": args.train_images,
                 "max_valid": args.valid_images, "batch_size": 64, "augment": True},
        "split": {"criterion": criterion, "repeats": 2, "k": 20, "batch_size": 128},
        "train": {"warmup_epochs": args.warmup, "leaf_epochs": args.leaf_epochs, "lr": 0.05},
        "search": {"population": 10, "generations": 3, "parents": 3, "crossover": 3, "mutation": 3,
                   "newcomers": 2, "bn_batches": 1, "eval_batch_size": args.valid_images},
        "benchmark": {"file": str(args.benchmark), "top_fraction": 0.01, "sample_size": 500},
        "seed": seed, "device": args.device, "out": str(out), "quiet": True,
        "threads": 1 if args.device == "cpu" else None,
    }


def one_run(job: tuple) -> dict:
    args, criterion, seed, npz = job
    from naslid.config import SearchConfig
    from naslid.pipeline import run_search

    out = Path(args.work) / f"{criterion}-s{seed}"
    done = out / "result.json"
    if not done.exists():
        cfg = SearchConfig.from_dict(budget(args, criterion, seed, npz, out),
                                     base=SearchConfig.preset_config("quick"))
        cfg.resume = (out / "run.json").exists()
        t0 = time.perf_counter()
        run_search(cfg)
        wall = time.perf_counter() - t0
    else:
        wall = None
    r = json.loads(done.read_text())
    col = "cifar10_valid_acc"
    return {
        "criterion": criterion, "seed": seed,
        "tau_top": r["ranking"]["top"][col]["kendall_tau"],
        "tau_sampled": r["ranking"]["sampled"][col]["kendall_tau"],
        "rho_sampled": r["ranking"]["sampled"][col]["spearman_rho"],
        "n_top": r["ranking"]["top"][col]["n"], "n_sampled": r["ranking"]["sampled"][col]["n"],
        "wall_s": sum(r["timings"].values()) if wall is None else wall,
        "split_s": r["timings"].get("split", 0.0),
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
    lines = ["| criterion | τ top 1 % (156) | τ sampled (500) | ρ sampled | found arch cifar10_valid_acc | "
             "wall time (s) | split step (s) | peak RSS split / run (MiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for c in CRITERIA:
        rs = [r for r in rows if r["criterion"] == c]
        if not rs:
            continue
        lines.append(
            f"| {c} | {fmt([r['tau_top'] for r in rs])} | {fmt([r['tau_sampled'] for r in rs])} | "
            f"{fmt([r['rho_sampled'] for r in rs])} | {fmt([r['best_cifar10_valid_acc'] for r in rs], 2)} | "
            f"{fmt([r['wall_s'] for r in rs], 0)} | {fmt([r['split_s'] for r in rs], 1)} | "
            f"{max(r['peak_split_bytes'] for r in rs) / 2**20:.0f} / {max(r['peak_bytes'] for r in rs) / 2**20:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/naslid_search_quality", help="run folders and the derived npz")
    p.add_argument("--data", default=str(DATA / "cifar10.npz"))
    p.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=CRITERIA)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--pool", type=int, default=2, help="average-pool factor of the 32x32 images")
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--valid-images", type=int, default=300)
    p.add_argument("--warmup", type=int, nargs="+", default=[3, 6])
    p.add_argument("--leaf-epochs", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--json", help="write all rows as JSON")
    p.add_argument("--markdown", help="write the table as markdown")
    args = p.parse_args(argv)
    if not Path(args.data).exists() or not Path(args.benchmark).exists():
        print(f"search_quality: needs {args.data} and {args.benchmark} (../shared/data); skipped", file=sys.stderr)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    npz = make_small_npz(Path(args.data), work / f"cifar10_pool{args.pool}.npz", args.pool)
    jobs = [(args, c, s, npz) for s in args.seeds for c in args.criteria]
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
