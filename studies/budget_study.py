"""Budget study: from which CPU budget does a one-shot NB201 supernet rank cells on this machine?

For each budget (epochs of plain one-shot training, ``--criterion none``, no leaves) it runs the real
pipeline (``naslid.run.pipeline.run_search``, the ``cpu`` preset's data, network, BN and evaluation
settings) in its own process, then records the wall time and Kendall τ between the supernet's
scores (minus the loss, and accuracy) and NB201's ``cifar10_valid_acc`` over 500 stratified
de-isomorphic cells, beside the parameter count's τ on the same cells. Finished budgets are read
back from their run folders (a killed study resumes where it stopped).

    python studies/budget_study.py --work /tmp/budget --epochs 5 10 20 40 60 \\
        --json /tmp/budget/summary.json --plot docs/figures/budget_study.png

Needs the CIFAR-10 npz and NB201 ground truth (`naslid data cifar10`, `naslid data nb201`); skips with a message without it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
COL = "cifar10_valid_acc"


def run_one(args, epochs: int, seed: int) -> dict:
    out = Path(args.work) / f"e{epochs}-s{seed}"
    done = out / "result.json"
    if not done.exists():
        cmd = [sys.executable, "-m", "naslid.cli", "search", "--preset", "cpu", "--dataset", "npz",
               "--data-dir", str(args.data), "--benchmark", str(args.benchmark), "--criterion", "none",
               "--score", "loss", "--warmup", str(epochs), "--leaf-epochs", "0", "--seed", str(seed), "--out", str(out),
               "--quiet", "--set", "search.generations=1", "--set", "search.population=10",
               "--set", "search.parents=2", "--set", "search.crossover=2", "--set", "search.mutation=2",
               "--set", "search.newcomers=2"]
        cmd += [x for kv in args.set for x in ("--set", kv)]
        if (out / "run.json").exists():
            cmd.append("--resume")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        print(f"budget {epochs} epochs, seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    r = json.loads(done.read_text())
    s = r["ranking"]["sampled"][COL]
    t = r["timings"]
    return {"epochs": epochs, "seed": seed, "wall_s": sum(t.values()), "train_s": t.get("warmup", 0.0),
            "tau_neg_loss": s["neg_loss"]["kendall_tau"], "tau_neg_loss_ci95": s["neg_loss"].get("kendall_tau_ci95"),
            "tau_acc": s["acc"]["kendall_tau"], "tau_params": s["params"]["kendall_tau"],
            "rho_neg_loss": s["neg_loss"]["spearman_rho"], "p10_neg_loss": s["neg_loss"].get("precision_at_10"),
            "n": s["neg_loss"]["n"], "ties_acc": s["acc"].get("ties")}


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    # x: epochs of training (the compute); wall times depend on what else shares the cores, so they
    # are printed next to each point instead
    xs = [r["epochs"] for r in rows]
    ax.plot(xs, [r["tau_neg_loss"] for r in rows], "o-", label="supernet, −loss")
    ax.plot(xs, [r["tau_acc"] for r in rows], "s--", label="supernet, accuracy")
    ax.axhline(rows[0]["tau_params"], color="grey", ls=":", label="parameter count (free)")
    for r, x in zip(rows, xs):
        ax.annotate(f"{r['wall_s'] / 60:.0f} min", (x, r["tau_neg_loss"]), fontsize=7, xytext=(3, -10),
                    textcoords="offset points")
    ax.set_xlabel("epochs of one-shot training (labels: wall minutes of the run)")
    ax.set_ylabel("Kendall τ vs NB201 (500 cells)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/naslid_budget")
    p.add_argument("--data", default=str(DATA / "cifar10.npz"))
    p.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    p.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20, 40, 60])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="extra config overrides for every run")
    p.add_argument("--json")
    p.add_argument("--plot")
    args = p.parse_args(argv)
    if not Path(args.data).exists() or not Path(args.benchmark).exists():
        print(f"budget_study: needs {args.data} and {args.benchmark} (built by `naslid data cifar10` / `naslid data nb201`); skipped", file=sys.stderr)
        return 0
    Path(args.work).mkdir(parents=True, exist_ok=True)
    rows = []
    for e in args.epochs:
        for s in args.seeds:
            rows.append(run_one(args, e, s))
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot([r for r in rows if r["seed"] == args.seeds[0]], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
