"""Does LID splitting help? A paired study of the split criteria on the ``cpu`` protocol.

Slow (not part of the test suite; about 55 minutes per seed on 2 cores). For every seed it runs the
real pipeline (``naslid search --preset cpu``: NB201 C=8, N=1 on the 25k cifar10-valid training
half at 16x16, warm-up 40 epochs, one split, 25 leaf epochs per sub-supernet, every cell scored by
its loss on 2,000 fixed held-out images) once per criterion, paired:

- ``lid`` runs first and trains the seed's warm-up; ``grad``, ``random`` and ``none`` adopt that
  warm-up checkpoint (``--warm-start``), so the criteria differ only from the first split on;
- ``none`` trains the warm-up checkpoint on for as many epochs as the split runs' leaves together
  (25 x 2 = 50), the same number of steps;
- every run uses one torch thread, so a run is reproduced bit for bit, and its data order and
  architecture draws are derived from (seed, node, stage, epoch) only.

``run`` executes the runs, each in its own process, ``--workers`` at a time, seed by seed (a
non-``lid`` run starts once its seed's warm-up is finished); a killed study is resumed by running
the same command again: finished runs are kept, interrupted ones continue from their last epoch
(``naslid search --resume``). A lock file per run (``<run>.lock``, the pid) keeps two drivers
from running one run; a lock of a dead process is taken over. ``report`` reads the
finished runs and writes the paired table (``naslid.studies.criteria_study``): Kendall τ / Spearman ρ against
NB201's ``cifar10_valid_acc`` over the 500 stratified cells every run scores, precision@top-10 %,
the found cell's accuracy, the split step's time and extra memory, paired Δτ with bootstrap 95 %
intervals, the parameter count, FLOPs and zero-cost proxies on the same cells, and, with a
stand-alone cache (``studies/standalone_truth.py``), τ against the stand-alone proxy ground truth.

    python studies/search_quality.py run    --work /tmp/study --seeds 0 1 2 3 4 --workers 2
    python studies/search_quality.py report --work /tmp/study --seeds 0 1 2 3 4 \\
        --json results/search/criteria_study/report.json --plot docs/figures/criteria_delta_tau.png
        (the options that add the baselines and rewrite the docs: docs/search.md)

Bad input (a missing data or benchmark file, fewer seeds than the interval needs, a run folder of
another protocol) is refused with a message naming the option before any run starts.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CRITERIA = ("lid", "grad", "random", "none")   # lid first: it trains the seed's warm-up
MIN_SEEDS = 5
POLL_SECONDS = 30
PRESET = "cpu"
MARK_BEGIN, MARK_END = "<!-- BEGIN criteria-study -->", "<!-- END criteria-study -->"


def run_dir(work: Path, criterion: str, seed: int) -> Path:
    return work / f"{criterion}-s{seed}"


def none_leaf_epochs() -> int:
    """Leaf epochs of ``none`` that give it the split runs' training steps: every leaf of a
    split run trains ``leaf_epochs``, and a full split tree has ``n_groups ** levels`` leaves."""
    from naslid.config import SearchConfig

    cfg = SearchConfig.preset_config(PRESET)
    return cfg.train.leaf_epochs * cfg.split.n_groups ** len(cfg.train.warmup_epochs)


def search_args(args, criterion: str, seed: int) -> list[str]:
    """``naslid search`` arguments of one run of the study."""
    a = ["--preset", PRESET, "--dataset", "npz", "--data-dir", str(args.data), "--benchmark", str(args.benchmark),
         "--criterion", criterion, "--seed", str(seed), "--out", str(run_dir(args.work, criterion, seed)),
         "--set", "threads=1", "--set", "plots=false", "--score", "loss"]  # the pure-supernet protocol
    if criterion == "none":
        a += ["--leaf-epochs", str(none_leaf_epochs())]
    if criterion != "lid":
        a += ["--warm-start", str(run_dir(args.work, "lid", seed))]
    return a


def intended_identity(args, criterion: str, seed: int) -> dict:
    """The run identity (``SearchConfig.run_identity``) the study wants for this run, with the data
    and benchmark files reduced to their names (a folder copied from elsewhere may name them by
    another path)."""
    from naslid.cli import build_parser, resolve_config

    cfg = resolve_config(build_parser().parse_args(["search", *search_args(args, criterion, seed)]))
    return comparable(cfg.run_identity())


def comparable(identity: dict) -> dict:
    d = json.loads(json.dumps(identity))
    if d["data"].get("data_dir"):
        d["data"]["data_dir"] = Path(d["data"]["data_dir"]).name
    if d["benchmark"].get("file"):
        d["benchmark"]["file"] = Path(d["benchmark"]["file"]).name
    return d


def check_existing(args) -> None:
    """Every run folder already in ``--work`` holds this protocol's run (ValueError otherwise)."""
    from naslid.config import SearchConfig

    for c in args.criteria:
        for s in args.seeds:
            d = run_dir(args.work, c, s)
            if not (d / "config.yaml").is_file():
                continue
            have = comparable(SearchConfig.from_yaml(d / "config.yaml", base=SearchConfig()).run_identity())
            want = intended_identity(args, c, s)
            if have != want:
                diff = [f"{k}" for k in want if have.get(k) != want[k]]
                raise ValueError(f"--work: {str(d)!r} holds a run of another protocol (differs in {diff}); "
                                 f"choose another --work")


def warmup_ready(args, seed: int) -> bool:
    """The seed's warm-up (trained by its ``lid`` run) is finished: other criteria can adopt it."""
    from naslid.run.warm_start import WarmStartNotReady, check_source_ready

    lid = run_dir(args.work, "lid", seed)
    if (lid / "result.json").is_file():
        return True
    try:
        check_source_ready(lid)
        return True
    except WarmStartNotReady:
        return False


def claim(d: Path) -> Path | None:
    """An exclusive lock on run folder ``d`` (``<d>.lock`` holding the pid), or None when a live
    process holds it; a lock left by a dead process is taken over."""
    lock = d.with_name(d.name + ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
                os.kill(pid, 0)
                return None                     # a live process runs it
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)    # stale: its process is gone
                continue
            except PermissionError:
                return None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    return None


def run_one(args, criterion: str, seed: int) -> str:
    """Run (or resume) one run in its own process; returns a status line."""
    d = run_dir(args.work, criterion, seed)
    cmd = [sys.executable, "-m", "naslid.cli", "search", *search_args(args, criterion, seed)]
    if (d / "run.json").is_file():
        cmd.append("--resume")
    log = args.work / "logs" / f"{d.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    if rc != 0:
        raise RuntimeError(f"{d.name} failed (exit {rc}); see {log}")
    return f"{d.name}: finished in {time.perf_counter() - t0:.0f} s"


class JobQueue:
    """The study's runs in seed-major order; a worker takes the first run that is not finished,
    not running (its lock) and whose seed's warm-up is ready (``lid`` runs need nothing)."""

    def __init__(self, args):
        self.args = args
        self.todo = [(c, s) for s in args.seeds for c in args.criteria]
        self.mutex = threading.Lock()

    def take(self) -> tuple[str, int, Path] | None | str:
        """(criterion, seed, lock) to run; "wait" when every remaining run waits for a warm-up or
        another process; None when nothing is left."""
        with self.mutex:
            waiting = False
            for c, s in list(self.todo):
                if (run_dir(self.args.work, c, s) / "result.json").is_file():
                    self.todo.remove((c, s))
                    continue
                if c != "lid" and not warmup_ready(self.args, s):
                    waiting = True
                    continue
                lock = claim(run_dir(self.args.work, c, s))
                if lock is None:
                    waiting = True
                    continue
                self.todo.remove((c, s))
                return c, s, lock
            return "wait" if waiting or self.todo else None


def worker(queue: JobQueue) -> list[str]:
    done = []
    while True:
        job = queue.take()
        if job is None:
            return done
        if job == "wait":
            time.sleep(POLL_SECONDS)
            continue
        c, s, lock = job
        try:
            line = run_one(queue.args, c, s)
        finally:
            lock.unlink(missing_ok=True)
        print(line, flush=True)
        done.append(line)


def cmd_run(args) -> int:
    queue = JobQueue(args)
    with ThreadPoolExecutor(max_workers=args.workers) as ex:
        list(ex.map(worker, [queue] * args.workers))
    return 0


def cmd_report(args) -> int:
    from naslid.studies import criteria_study as study

    from naslid.groundtruth.table import load_benchmark
    from naslid.config import SearchConfig
    from naslid.spaces import get_space
    from naslid.studies.standalone import load_standalone_truth

    cfg = SearchConfig.preset_config(PRESET)
    expect = {"C": cfg.space.C, "N": cfg.space.N, "image_size": cfg.data.image_size}
    proxies = study.load_proxies(args.proxies, "--proxies", expect) if args.proxies else None
    search = [study.load_proxies(f, "--proxy-search", dict(expect, cells="all")) for f in args.proxy_search or []]
    runs = study.load_runs(args.work, args.seeds, args.criteria)
    try:
        truth = load_standalone_truth(args.standalone, None) if args.standalone else None
    except FileNotFoundError as e:
        raise ValueError(f"--standalone: {e}") from None
    bench = load_benchmark(str(args.benchmark), get_space("nb201"))
    top = study.top_fraction_threshold(bench.values(study.COLUMN))
    rep = study.paired_report(runs, seeds=args.seeds, criteria=args.criteria, min_seeds=args.min_seeds,
                              partial=args.partial, proxies=proxies, standalone=truth, proxy_search=search,
                              top_threshold=top)
    for (c, s), r in runs.items() if args.export else ():
        if s in rep["seeds_complete"]:
            d = Path(args.export) / f"{c}-s{s}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "result.json").write_text(json.dumps(study.trim_result(r)) + "\n")
    md = study.markdown(rep)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")
    if args.plot:
        study.plot_delta_tau(rep, args.plot)
    for doc in args.doc or []:
        text = Path(doc).read_text()
        if MARK_BEGIN not in text or MARK_END not in text:
            raise ValueError(f"--doc: {doc} has no {MARK_BEGIN} ... {MARK_END} markers")
        pre, rest = text.split(MARK_BEGIN, 1)
        post = rest.split(MARK_END, 1)[1]
        Path(doc).write_text(pre + MARK_BEGIN + "\n" + md + "\n" + MARK_END + post)
    return 0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        s = sub.add_parser(name)
        s.add_argument("--work", type=Path, required=True, help="the study's folder (run folders, logs)")
        s.add_argument("--seeds", type=int, nargs="+", default=list(range(MIN_SEEDS)))
        s.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=CRITERIA)
        s.add_argument("--data", type=Path, default=DATA / "cifar10.npz", help="CIFAR-10 npz")
        s.add_argument("--benchmark", type=Path, default=DATA / "nb201_cifar10_valid.csv",
                       help="NB201 ground truth CSV")
        s.add_argument("--min-seeds", type=int, default=MIN_SEEDS,
                       help=f"seeds the paired interval needs (default {MIN_SEEDS})")
    sub.choices["run"].add_argument("--workers", type=int, default=1, help="runs in parallel")
    r = sub.choices["report"]
    r.add_argument("--partial", action="store_true",
                   help="report the seeds finished so far (intervals marked as not resolving)")
    r.add_argument("--proxies", type=Path, help="zero-cost proxy scores (studies/proxy_scores.py --json)")
    r.add_argument("--proxy-search", type=Path, nargs="+",
                   help="proxy scores of every cell (studies/proxy_scores.py --cells all --json)")
    r.add_argument("--standalone", type=Path, help="stand-alone ground truth CSV (studies/standalone_truth.py)")
    r.add_argument("--json", help="write the report as JSON")
    r.add_argument("--markdown", help="write the table as markdown")
    r.add_argument("--plot", help="write the paired Δτ plot (PNG)")
    r.add_argument("--export", help="write the complete seeds' results, trimmed to what the report reads, "
                                     "as <criterion>-s<seed>/result.json under this folder")
    r.add_argument("--doc", nargs="+", help="rewrite the table between the criteria-study markers of these files")
    args = p.parse_args(argv)
    check_args(args)
    return args


def check_args(args) -> None:
    """Refuse bad input before any run starts (ValueError naming the option)."""
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds: repeated seeds {args.seeds}")
    if args.min_seeds < 2:
        raise ValueError(f"--min-seeds: a paired interval needs at least 2 seeds, got {args.min_seeds}")
    if len(args.seeds) < args.min_seeds and not getattr(args, "partial", False):
        raise ValueError(f"--seeds: {len(args.seeds)} seed(s) {args.seeds}; the paired bootstrap interval over "
                         f"seeds needs at least --min-seeds {args.min_seeds}")
    for opt, path in (("--data", args.data), ("--benchmark", args.benchmark)):
        if not Path(path).is_file():
            raise ValueError(f"{opt}: {str(path)!r} does not exist (the study reads CIFAR-10 and the NB201 "
                             f"ground truth: `naslid data cifar10`, `naslid data nb201`)")
    if args.command == "run":
        if args.workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {args.workers}")
        if args.criteria[0] != "lid":
            raise ValueError(f"--criteria: {args.criteria}: lid must come first (its run trains the seed's "
                             f"warm-up, which the other criteria adopt)")
        args.work.mkdir(parents=True, exist_ok=True)
        check_existing(args)


def main(argv=None) -> int:
    try:
        args = parse(argv)
    except ValueError as e:
        print(f"search_quality: {e}", file=sys.stderr)
        return 2
    try:
        return cmd_run(args) if args.command == "run" else cmd_report(args)
    except ValueError as e:
        print(f"search_quality: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
