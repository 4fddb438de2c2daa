"""Stand-alone ground truth at the cpu preset's setting: NB201 cells trained from scratch, cached.

Trains each cell's stand-alone network (NB201 C=8, N=1, 16x16 CIFAR-10, the cpu preset's data,
batch and optimiser, ``--epochs`` epochs) and scores it on the 2,000 held-out images the pipeline
scores supernets on (``naslid.studies.standalone`` has the setting, the cell choice and the cache format).
The cells: ``--cells`` (>= 40) drawn stratified from the pipeline's 500-cell ranking sample, so
every search's result.json scores them. Results go to a CSV cache (one row per cell, rewritten
after every cell; a rerun skips finished cells) with a sidecar JSON (settings, hash, provenance).
Then it prints Kendall τ (bootstrap 95 % interval) and Spearman ρ of the stand-alone accuracy,
minus its loss, and the parameter count against NB201's ``cifar10_valid_acc`` over the cached cells.

    python studies/standalone_truth.py --threads 1 --json results/standalone/standalone_cpu_report.json
    python studies/standalone_truth.py --report-only          # the statistics of the cache only

Needs cifar10.npz and nb201_cifar10_valid.csv (`naslid data cifar10`, `naslid data nb201`), or --data / --benchmark.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "results" / "standalone" / "standalone_cpu.csv"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=40, help="cells to train (>= 40; default 40)")
    p.add_argument("--allow-few", action="store_true", help="allow --cells below 40 (trial runs)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per cell (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seeds initial weights and data order (with the arch)")
    p.add_argument("--data", default=str(DATA / "cifar10.npz"), help="CIFAR-10 .npz (built by `naslid data cifar10`)")
    p.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"),
                   help="NB201 ground truth CSV (built by `naslid data nb201`)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="the CSV cache (sidecar: same name, .json)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--json", help="write the rank correlations as JSON")
    p.add_argument("--report-only", action="store_true", help="train nothing: report the cache")
    return p.parse_args(argv)


def check_inputs(a: argparse.Namespace) -> None:
    """Option checks before anything is loaded; ValueError naming the option."""
    from naslid.studies.standalone import check_cells

    if not a.report_only:
        check_cells(a.cells, allow_few=a.allow_few)
        for opt, path, what in (("--data", a.data, "CIFAR-10 as an .npz (x_train, y_train, x_test, y_test)"),
                                ("--benchmark", a.benchmark, "the NB201 ground-truth CSV")):
            if not Path(path).is_file():
                raise ValueError(f"{opt} {path!r}: not found. It is {what}, built by "
                                 f"`naslid data {'cifar10' if opt == '--data' else 'nb201'}`; give its path with {opt}")
    if a.threads is not None and a.threads < 1:
        raise ValueError(f"--threads: must be >= 1, got {a.threads}")


def train_all(a: argparse.Namespace, settings: dict, echo=print) -> None:
    """Load the protocol's data, space and benchmark as the pipeline does, pick the cells and train
    every one the cache lacks."""
    import torch

    from naslid.data import fixed_batches
    from naslid.run.final_search import evaluation_data
    from naslid.run.pipeline import prepare
    from naslid.studies.standalone import (TRUTH_COLUMN, check_cache, data_fingerprint, protocol_config, provenance,
                                   run_cells, select_cells, train_standalone)
    from naslid.blocks.supernet_training import optim_config

    check_cache(a.out, settings)  # a cache of another setting is refused before the data loads
    cfg = protocol_config(a.data)
    cfg.benchmark.file = str(a.benchmark)
    cfg.device = a.device
    if cfg.benchmark.sample != "stratified":
        raise ValueError(f"the {cfg.preset} preset's benchmark.sample is {cfg.benchmark.sample!r}; "
                         f"select_cells draws from the stratified sample")
    prep = prepare(cfg)  # data, space and benchmark exactly as a search builds them; writes nothing
    bench, space, data = prep.benchmark, prep.space, prep.data
    if TRUTH_COLUMN not in bench.acc_columns:
        raise ValueError(f"--benchmark {a.benchmark!r}: no {TRUTH_COLUMN} column (have {bench.acc_columns})")
    cells = select_cells(bench, a.cells, sample_size=cfg.benchmark.sample_size, allow_few=a.allow_few)
    device = torch.device(a.device)
    scored = evaluation_data(data, cfg.search.eval_images)
    valid = fixed_batches(scored, "valid", cfg.search.eval_batch_size, device=device)
    optim = optim_config(cfg.train)
    echo(f"standalone_truth: {len(cells)} cells, {a.epochs} epochs each, {space!r}, "
         f"{len(data.train)} training / {sum(len(y) for _, y in valid)} scored images, "
         f"{torch.get_num_threads()} thread(s), cache {a.out}")

    def train_one(arch: str) -> dict:
        row = train_standalone(space, arch, data, valid, epochs=a.epochs, batch_size=cfg.data.batch_size,
                               optim=optim, seed=a.seed, device=device)
        row.update(nb201_index=space.index_of(arch), **{TRUTH_COLUMN: bench.acc(arch, TRUTH_COLUMN)})
        return row

    run_cells(cells, a.out, settings, train_one, data_fingerprint=data_fingerprint(scored),
              session=provenance(a.device), echo=echo)


def table(rep: dict) -> str:
    lines = [f"{rep['n']} cells, against NB201 {rep['truth']}:",
             "| predictor | τ [95 % CI] | ρ |", "|---|---|---|"]
    for name, m in rep["predictors"].items():
        tau, ci, rho = m["kendall_tau"], m["kendall_tau_ci95"], m["spearman_rho"]
        t = "n/a" if tau is None else f"{tau:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        lines.append(f"| {name} | {t} | {'n/a' if rho is None else f'{rho:.3f}'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    a = parse(argv)
    check_inputs(a)
    from naslid.studies.standalone import load_standalone_truth, protocol_config, standalone_settings, truth_report

    settings = standalone_settings(protocol_config(a.data), epochs=a.epochs, seed=a.seed)
    if a.threads is not None:
        import torch

        torch.set_num_threads(a.threads)
    if not a.report_only:
        train_all(a, settings)
    truth = load_standalone_truth(a.out, settings)
    rep = truth_report(truth.rows)
    rep.update(settings_hash=truth.settings_hash, settings=truth.settings, cache=str(a.out))
    print(table(rep))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rep, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as e:
        print(f"standalone_truth: error: {e}", file=sys.stderr)
        sys.exit(2)
