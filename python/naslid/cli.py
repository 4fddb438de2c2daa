"""The ``naslid`` command line: ``search``, ``spaces``, ``data``, ``bench-memory``.

    naslid search                      # quick preset: a small NB201 on the embedded digits data, CPU
    naslid search --preset paper --data-dir ~/data --benchmark nb201.csv --device cuda
    naslid search --config my.yaml --criterion grad --out runs/gm
    naslid search --resume --out runs/gm   # continue a killed run
    torchrun --nproc-per-node 2 -m naslid.cli search ...   # or the `naslid` script under torchrun
    naslid spaces nb201 --arch '|nor_conv_3x3~0|+|...|'
    naslid data cifar10 [--from cifar-10-python.tar.gz]        # -> data/cifar10.npz
    naslid data nb201 --from NATS-tss-v1_0-3ffb9-simple         # -> data/nb201_cifar10_valid.csv
    naslid bench-memory --space nb201 --batch 32 --input-size 224 --json mem.json

``naslid`` alone prints this help (and exits 0, writing nothing); ``naslid --version`` the version.
The options' valid values come from ``naslid.choices`` (argparse ``choices=``), so ``--help`` lists
exactly what the config accepts. Errors in the inputs (unknown names, missing files, impossible
schedules, a foreign output folder) raise ``naslid.errors.InputError``: printed as one line
``naslid search: error: ...``, exit status 2, before any work starts. Every other exception is a bug
or a failure of the machine: it keeps its traceback and the exit status is 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import InputError
from . import __version__
from .choices import (CRITERIA, DATASETS, EDGE_RULES, LEAF_INITS, PARTITIONS, PRESETS, SAMPLINGS,
                      SEARCH_METHODS, SIMILARITIES, SPACES)

EXIT_BAD_INPUT = 2
#: import name -> distribution of the search's dependencies (the ``search`` extra of setup.py)
SEARCH_MODULES = {"yaml": "pyyaml", "scipy": "scipy", "sklearn": "scikit-learn", "tqdm": "tqdm",
                  "matplotlib": "matplotlib", "tensorboard": "tensorboard"}


def missing_search_packages() -> list[str]:
    """The search's dependencies that are not installed (an ops-only install has none of them)."""
    import importlib.util

    return [dist for mod, dist in SEARCH_MODULES.items() if importlib.util.find_spec(mod) is None]


def _csv_ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _set_value(s: str):
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"--set expects section.field=value, got {s!r}")
    import yaml

    key, val = s.split("=", 1)
    return key.strip(), yaml.safe_load(val)


#: option -> the config field it sets (named in argparse's own errors, as the config's errors do).
_FIELD_OF = {"--preset": "preset", "--space": "space.name", "--dataset": "data.dataset",
             "--criterion": "split.criterion", "--partition": "split.partition",
             "--similarity": "split.similarity", "--edge-rule": "split.edge_rule",
             "--leaf-init": "train.leaf_init", "--sampling": "train.sampling", "--search": "search.method"}


class UsageError(SystemExit):
    """A command line argparse rejects (already printed); exit status 2, as argparse's own."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one ``<prog>: error: ...`` line (no usage block), with
    the config field an option sets, like the config's own errors; then ``UsageError`` (a
    ``SystemExit(2)``, which ``main`` turns into its return value)."""

    def error(self, message: str):
        for flag, field in _FIELD_OF.items():
            if message.startswith(f"argument {flag}:"):
                message += f" (config field {field})"
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise UsageError(EXIT_BAD_INPUT)


def _one_of(values) -> str:
    return " | ".join(values)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="naslid", description="NAS-LID: split one-shot supernets by local "
                "intrinsic dimension, then search. Run `naslid search` for the quick preset (NB201 on "
                "the embedded digits data, CPU).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{search,spaces,data,bench-memory}")

    s = sub.add_parser("search", help="run a search (default: quick preset, NB201 on digits, CPU)",
                       description="Warm-up, split (LID / GM / random / none), sub-supernet training, "
                       "evolutionary search, ranking against a benchmark. CLI options override --config, "
                       "which overrides --preset (default quick).")
    s.add_argument("--preset", choices=PRESETS,
                   help="base settings: quick (a small NB201 on the embedded digits data, CPU), cpu (NB201 on "
                   "CIFAR-10 at 16x16 on 2 CPU cores), paper (the released code's GPU settings; not run end "
                   "to end here); default quick")
    s.add_argument("--config", metavar="FILE", help="YAML config (any subset of the fields of naslid.config)")
    s.add_argument("--space", choices=SPACES, help=f"search space: {_one_of(SPACES)}")
    s.add_argument("--dataset", choices=DATASETS, help=f"{_one_of(DATASETS)} (npz: e.g. the file "
                   "`naslid data cifar10` writes)")
    s.add_argument("--data-dir", help="dataset location (npz: the file)")
    s.add_argument("--image-size", type=int, help="image size: digits / imagefolder are rendered at it, "
                   "npz / cifar images are average-pooled (or resized) down to it")
    s.add_argument("--max-train", type=int, help="cap on training images (stratified subset)")
    s.add_argument("--max-valid", type=int, help="cap on validation images")
    s.add_argument("--criterion", choices=CRITERIA, help="split criterion: lid (NAS-LID), grad (GM-NAS "
                   "gradient matching), random (seeded random split), none (no split)")
    s.add_argument("--partition", choices=PARTITIONS, help=f"how a decision's ops are grouped: {_one_of(PARTITIONS)}")
    s.add_argument("--similarity", choices=SIMILARITIES, help=f"how op vectors are compared: {_one_of(SIMILARITIES)}")
    s.add_argument("--edge-rule", choices=EDGE_RULES, help=f"which decision is split: {_one_of(EDGE_RULES)} "
                   "(default: paper for lid, gm for grad)")
    s.add_argument("--repeats", type=int, help="R: batches / random paths averaged per op vector")
    s.add_argument("--levels", type=int, help="number of split levels (keeps the preset's epochs per level)")
    s.add_argument("--warmup", type=_csv_ints, metavar="E1,E2,...",
                   help="cumulative warm-up epochs per level, e.g. 20,40,60,80 (sets the levels)")
    s.add_argument("--leaf-epochs", type=int, help="epochs of further training of each leaf")
    s.add_argument("--leaf-init", choices=LEAF_INITS, help="leaves start from their parent's weights "
                   "(inherit) or re-initialised (reinit)")
    s.add_argument("--sampling", choices=SAMPLINGS, help="architecture sampling in supernet training: "
                   "uniform (one path per batch) or fair (FairNAS strict fairness)")
    s.add_argument("--score", help="loss | acc (the pure-supernet protocol: fitness of a cell with inherited "
                   "weights) or a '+'-joined combination of loss/acc and training-free scores "
                   "(params, flops, synflow, naswot, aznas, zico, jacov, lid), e.g. loss+naswot+synflow")
    s.add_argument("--search", dest="search_method", choices=SEARCH_METHODS,
                   help="final search over the leaves: evolution | random")
    s.add_argument("--benchmark", metavar="FILE", help="ground-truth CSV (arch + *_acc columns)")
    s.add_argument("--seed", type=int, help="the run's seed (every random draw derives from it)")
    s.add_argument("--device", help="cpu | cuda | cuda:N | auto (auto: cuda when available)")
    s.add_argument("--out", metavar="DIR", help="run folder (default runs/search-<UTC time>)")
    s.add_argument("--warm-start", metavar="RUN_DIR",
                   help="adopt the root warm-up of this run folder (same space, data, seed, optimiser)")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out (default: the newest runs/search-*)")
    s.add_argument("--set", dest="sets", action="append", type=_set_value, default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any config field, e.g. --set search.population=10 (repeatable)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")

    sp = sub.add_parser("spaces", help="describe a search space (decisions, sizes, an arch's cost)")
    sp.add_argument("name", nargs="?", default="nb201", choices=SPACES, help=f"{_one_of(SPACES)} (default nb201)")
    sp.add_argument("--arch", help="an architecture string of the space")
    sp.add_argument("--opt", action="append", type=_set_value, default=[], metavar="KEY=VALUE",
                    help="space option, e.g. --opt C=16 --opt N=5 (repeatable)")

    d = sub.add_parser("data", help="build the data files of a CIFAR-10 search from the official downloads",
                       description="Build cifar10.npz (for --dataset npz) from the official CIFAR-10 python "
                       "archive, and the ground-truth CSV (for --benchmark) from the official NAS-Bench-201 / "
                       "NATS-Bench topology file.")
    d.set_defaults(data_help=d.print_help)
    dsub = d.add_subparsers(dest="data_command", metavar="{cifar10,nb201}")
    dc = dsub.add_parser("cifar10", help="cifar10.npz from cifar-10-python.tar.gz (downloaded when --from is "
                         "not given)")
    dc.add_argument("--from", dest="source", metavar="FILE",
                    help="the official cifar-10-python.tar.gz already on this machine (default: download it "
                    "from www.cs.toronto.edu into --download-dir)")
    dc.add_argument("--out", default="data/cifar10.npz", metavar="FILE", help="the npz to write (default %(default)s)")
    dc.add_argument("--download-dir", metavar="DIR", help="where the archive is downloaded to (default: the "
                    "folder of --out)")
    dn = dsub.add_parser("nb201", help="the ground-truth CSV from an official NAS-Bench-201 / NATS-Bench file")
    dn.add_argument("--from", dest="source", required=True, metavar="PATH",
                    help="the NATS-tss-v1_0-3ffb9-simple folder, NATS-tss-v1_0-3ffb9.pickle.pbz2 or "
                    "NAS-Bench-201-v1_1-096897.pth (or v1_0)")
    dn.add_argument("--out", default="data/nb201_cifar10_valid.csv", metavar="FILE",
                    help="the CSV to write (default %(default)s)")
    dn.add_argument("--all-columns", action="store_true", help="also the CIFAR-10 test, CIFAR-100 and "
                    "ImageNet16-120 accuracies (default: cifar10_valid_acc, the column a search may use)")

    sub.add_parser("bench-memory", help="peak memory / time of the LID and GM split step", add_help=False)
    return p


def overrides_from_args(a: argparse.Namespace, base_warmup: list[int] | None = None) -> dict:
    """The nested override mapping of the given CLI flags (None: not given)."""
    o: dict = {}

    def put(path: str, val):
        if val is None:
            return
        sec, _, key = path.partition(".")
        if key:
            o.setdefault(sec, {})[key] = val
        else:
            o[sec] = val

    put("space.name", a.space)
    put("data.dataset", a.dataset)
    put("data.data_dir", a.data_dir)
    put("data.image_size", a.image_size)
    put("data.max_train", a.max_train)
    put("data.max_valid", a.max_valid)
    put("split.criterion", a.criterion)
    put("split.partition", a.partition)
    put("split.similarity", a.similarity)
    put("split.edge_rule", a.edge_rule)
    put("split.repeats", a.repeats)
    put("train.leaf_epochs", a.leaf_epochs)
    put("train.leaf_init", a.leaf_init)
    put("train.sampling", a.sampling)
    put("search.score", a.score)
    put("search.method", a.search_method)
    put("benchmark.file", a.benchmark)
    put("seed", a.seed)
    put("device", a.device)
    put("out", a.out)
    put("warm_start", a.warm_start)
    if a.warmup is not None:
        put("train.warmup_epochs", a.warmup)
    if a.levels is not None:
        if a.levels < 1:
            raise InputError(f"--levels: must be >= 1, got {a.levels}")
        if a.warmup is not None and len(a.warmup) != a.levels:
            raise InputError(f"--levels {a.levels} disagrees with --warmup {a.warmup} ({len(a.warmup)} levels)")
        if a.warmup is None:
            step = (base_warmup or [1])[0]
            put("train.warmup_epochs", [step * (i + 1) for i in range(a.levels)])
    for key, val in a.sets:
        sec, _, field = key.partition(".")
        if field:
            o.setdefault(sec, {})[field] = val
        else:
            o[sec] = val
    if a.resume:
        o["resume"] = True
    if a.quiet:
        o["quiet"] = True
    return o


def latest_run(root: Path = Path("runs")) -> Path | None:
    """The newest ``runs/search-*`` folder holding a run manifest."""
    if not root.is_dir():
        return None
    runs = sorted((p for p in root.glob("search-*") if (p / "run.json").exists()), key=lambda p: p.name)
    return runs[-1] if runs else None


def resolve_config(a: argparse.Namespace):
    """Preset < --config < CLI flags; on --resume without --out, the newest run's folder and its
    config are used (flags still override)."""
    from .run.checkpoint import default_run_dir
    from .config import SearchConfig, load_config

    if a.resume and a.out is None:
        last = latest_run()
        if last is None:
            raise InputError("--resume: no --out given and no runs/search-* folder to resume")
        a.out = str(last)
    base = load_config(preset=a.preset, config_file=a.config)
    if a.resume and a.config is None and a.preset is None and (Path(a.out) / "config.yaml").is_file():
        base = SearchConfig.from_yaml(Path(a.out) / "config.yaml", base=base)
    cfg = SearchConfig.from_dict(overrides_from_args(a, base.train.warmup_epochs), base=base)
    if cfg.out is None:
        cfg.out = default_run_dir()
    return cfg


def cmd_search(a: argparse.Namespace) -> int:
    from .run import pipeline
    from .run.distributed import DistContext

    cfg = resolve_config(a)
    ctx = DistContext.from_env(cfg.device)
    try:
        result = pipeline.run_search(cfg, dist=ctx, echo=(print if ctx.is_main else None))
    except BaseException:
        ctx.close()
        raise
    ctx.close(finished=True)
    if ctx.is_main:
        print_summary(result)
    return 0


def print_summary(result) -> None:
    print(f"best architecture: {result.best_arch}")
    if result.best_valid_acc is not None:
        print(f"  validation accuracy with inherited weights: {100 * result.best_valid_acc:.2f} % "
              f"(sub-supernet {result.best_leaf})")
    for col, val in (result.best_arch_benchmark or {}).items():
        print(f"  benchmark {col}: {val}")
    top = (result.search or {}).get("top") or []
    if len(top) > 1:  # the runners-up: worth training stand-alone too (docs/search.md)
        shown = top[1:4]
        print(f"  next best-scored cells ({len(top)} in result.json search.top):")
        for rank, t in enumerate(shown, start=2):
            print(f"    #{rank} {t['arch']} (fitness {t['fitness']:.4g})")
    for subset, cols in (result.ranking or {}).items():
        if isinstance(cols, dict):
            for col, v in cols.items():
                if isinstance(v, dict) and "kendall_tau" in v:
                    tau, rho = v.get("kendall_tau"), v.get("spearman_rho")
                    print(f"  ranking {subset} ({v.get('n', '?')} archs) vs {col}: Kendall tau "
                          f"{'n/a' if tau is None else f'{tau:.3f}'}, Spearman rho "
                          f"{'n/a' if rho is None else f'{rho:.3f}'}")
    total = sum(result.timings.values()) if result.timings else 0.0
    print(f"time {total:.1f} s; report: {os.path.join(result.out_dir, 'result.json')} "
          f"(plots: {os.path.join(result.out_dir, 'plots')}, TensorBoard: tensorboard --logdir "
          f"{os.path.join(result.out_dir, 'tb')})")


def cmd_spaces(a: argparse.Namespace) -> int:
    from .errors import input_errors
    from .spaces.describe import describe_space

    with input_errors(types=(ValueError, TypeError)):  # parses the user's name, arch and options only
        text = describe_space(a.name, arch=a.arch, **dict(a.opt))
    print(text)
    return 0


def cmd_data(a: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``naslid data cifar10 | nb201``. A missing, foreign or damaged file the user named (or a
    failed download) is one line ``naslid data: error: ...`` and exit status 2."""
    try:
        if a.data_command == "cifar10":
            from .data.build_cifar import build_cifar10_npz

            out = build_cifar10_npz(a.out, source=a.source, download_dir=a.download_dir)
            print(f"wrote {out}; use it with: naslid search --dataset npz --data-dir {out}")
            return 0
        if a.data_command == "nb201":
            from .groundtruth.build_table import build_nb201_csv

            out = build_nb201_csv(a.source, a.out, all_columns=a.all_columns)
            print(f"wrote {out}; use it with: naslid search --benchmark {out}")
            return 0
    except (ValueError, FileNotFoundError) as e:  # the readers' errors name the file and the problem
        print(f"naslid data: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    a.data_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if argv and argv[0] in ("search", "spaces", "bench-memory") and "-h" not in argv and "--help" not in argv:
        missing = missing_search_packages()
        if missing:
            print(f"naslid {argv[0]}: error: needs the search's packages, missing: {', '.join(missing)}; "
                  "install them with: pip install 'naslid[search]' (from a checkout: pip install "
                  "--no-build-isolation '.[search]', or bash scripts/setup.sh)", file=sys.stderr)
            return EXIT_BAD_INPUT
    if argv and argv[0] == "bench-memory":
        from .studies.peak_memory import bench_memory_main

        return int(bench_memory_main(argv[1:]) or 0)
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except UsageError:
        return EXIT_BAD_INPUT
    if a.command is None:
        parser.print_help()
        return 0
    try:
        if a.command == "search":
            return cmd_search(a)
        if a.command == "spaces":
            return cmd_spaces(a)
        if a.command == "data":
            return cmd_data(a, parser)
    except KeyboardInterrupt:
        out = getattr(a, "out", None)
        print(f"naslid {a.command}: interrupted" + (f"; continue with: naslid search --resume --out {out}"
                                                    if out else ""), file=sys.stderr)
        return 130
    except InputError as e:  # only bad input: anything else is a bug and keeps its traceback
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"naslid {a.command}: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    parser.print_help()
    return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
