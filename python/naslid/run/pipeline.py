"""``run_search(config) -> SearchResult``: NAS-LID end to end, resumable and distributable.

Stages (docs/method.md), each in a module of its own:

1. prepare   validate the config, load the data, build the space, read the benchmark, check the
             output folder — every input error is raised here, before anything is written
             (``naslid.run.prepare``);
2. levels    for level l = 0..L-1 (L = len(train.warmup_epochs); cumulative epochs E_l): every
             supernet of the level trains until it has E_l epochs in total (its parent's
             included), then is split (``naslid.split.split_step``); each child starts from its
             parent's weights. A supernet that does not split (criterion ``none``, nothing left)
             is carried to the next level and trains on. The tree's nodes are named ``r``,
             ``r.0``, ``r.1``, ``r.0.1`` ... (child i = group i of the split). The scheduler
             (levels, ranks, barriers, node records) is ``naslid.run.tree``; the training of one node
             for one stage ``naslid.run.node_training``, the split of one node ``naslid.run.node_split``;
3. leaves    every leaf trains ``train.leaf_epochs`` more epochs from its weights (``inherit``) or
             from a re-initialisation (``reinit``) (``naslid.run.tree``, ``naslid.run.node_training``);
4. search    evolutionary (or random) search over the union of the leaves' masks; an arch is
             evaluated with the leaf whose mask contains it (``naslid.run.final_search``);
5. ranking   with a benchmark: Kendall τ / Spearman ρ of leaf accuracy against every ``*_acc``
             column over the top 1 % and a seeded sample of ≥ 500 unique archs, and the benchmark
             row of the architecture found (``naslid.run.leaf_ranking``);
6. report    ``result.json``, TensorBoard scalars, PNG plots (``naslid.run.result``, ``naslid.run.report``).

Every stage reads the run's shared state from one ``naslid.run.context.RunContext``; checkpoints
are named and read through ``naslid.run.store.RunStore``; status lines, per-epoch lines and progress
bars go through one ``naslid.run.progress.Progress``.

Determinism: all randomness of a node's stage is derived from (seed, node id, stage, epoch) by
``derive_seed``, so a node's result does not depend on the order nodes run in, on which rank runs
it, or on whether the process was restarted. Resume: a checkpoint at the end of every epoch
(model, optimiser, scheduler, the epoch's generator state) and at every stage boundary; a killed
run re-does at most the interrupted epoch, from the same state with the same seeds.

Timings are wall seconds per stage; ``peak_memory_bytes`` and ``extra_memory_bytes`` per stage
as ``naslid.run.stage_meter`` measures them.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from .checkpoint import RunFolder, atomic_write_text
from ..config import SearchConfig
from .distributed import DistContext
from .final_search import build_evaluator, run_final_search
from .node_training import NodeTrainer
from .prepare import Prepared, prepare
from .progress import Progress
from .leaf_ranking import plot_points, rank_against_benchmark, ranking_for_result
from .result import SearchResult, search_result, write_result
from .rss import rss_bytes
from .context import RunContext, derive_seed
from .store import RunStore
from .node_split import NodeSplitter
from .stage_meter import StageMeter
from .tree import ROOT, TreeScheduler, complete_records

__all__ = ["run_search", "SearchResult", "prepare", "derive_seed"]


def _open_run_folder(prep: Prepared, dist: DistContext, progress: Progress) -> RunFolder:
    """Rank 0 creates (or reopens) the run folder, writes ``config.yaml`` and adopts a warm
    start's root checkpoint; the other ranks wait, then use the folder."""
    cfg = prep.cfg
    if dist.is_main:
        folder = RunFolder.open(prep.out, prep.config_hash, cfg.resume, threads=prep.threads)
        atomic_write_text(prep.out / "config.yaml", cfg.to_yaml())
        store = RunStore(folder)
        if prep.warm_state is not None and not store.has_node(ROOT):
            store.save_node(ROOT, prep.warm_state)
            progress.warm_started(cfg.train.warmup_epochs[0], cfg.warm_start)
    dist.barrier()
    return folder if dist.is_main else RunFolder(prep.out, prep.config_hash, prep.threads)


def _run_context(prep: Prepared, dist: DistContext, folder: RunFolder, progress: Progress,
                 prepare_seconds: float) -> RunContext:
    """The stages' shared state; rank 0's stage meter continues a resumed run's and counts the
    preparation."""
    store = RunStore(folder)
    meter = store.meter(dist.device) if dist.is_main else StageMeter(dist.device)
    meter.add("prepare", prepare_seconds, rss_bytes("VmHWM") or 0)
    return RunContext(prep.cfg, prep.space, prep.data, dist, store, meter, progress)


def _grow_tree(run: RunContext) -> tuple[dict, list[str]]:
    """Levels and leaves (every rank): (the tree, the leaf ids)."""
    t = run.cfg.train
    scheduler = TreeScheduler(run.dist, run.store, run.progress, NodeTrainer(run), NodeSplitter(run))
    tree, leaves = scheduler.run_levels(run.space.mask_to_json(run.space.full_mask()), t.warmup_epochs,
                                        t.bn_shards)
    scheduler.train_leaves(tree, leaves, t.leaf_epochs)
    return tree, leaves


def _search_rank_report(run: RunContext, prep: Prepared, tree: dict, leaves: list[str]) -> SearchResult:
    """Final search, ranking and report (rank 0)."""
    evaluator = build_evaluator(run, tree, leaves)
    search = run_final_search(run, evaluator, leaves)
    ranking, points, bench_row = {}, {}, None
    if prep.benchmark is not None:
        saved = rank_against_benchmark(run, prep.benchmark, evaluator, search["best_arch"])
        ranking = ranking_for_result(saved["report"])
        points = plot_points(saved["report"], prep.benchmark.acc_columns)
        bench_row = saved["best"]
    complete_records(tree, run.store, run.space)
    result = search_result(prep, tree, search, ranking, bench_row)
    write_result(result, prep, run.store.folder, run.meter, points)
    return result


def _share(dist: DistContext, result: SearchResult | None) -> SearchResult:
    """Rank 0's result, on every rank."""
    dist.barrier()
    if result is None:
        return dist.broadcast_object(None)
    if dist.distributed:
        dist.broadcast_object(result)
    return result


def run_search(config: SearchConfig, *, dist: DistContext | None = None,
               echo: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or ``config.resume``) a search; see the module docstring. ``echo``: a print-like
    callable for one-line status messages (the CLI passes ``print``; None: silent). The run uses
    ``prep.threads`` intra-op threads (``config.threads``, else torch's count when called); the
    caller's thread count is restored on return, on error too."""
    ctx = dist or DistContext.single(config.device if isinstance(config, SearchConfig) else "cpu")
    t0 = time.perf_counter()
    prep = prepare(config, ctx.device)
    # every rank checks the run folder in prepare before rank 0 creates it: a rank still preparing
    # would otherwise find rank 0's fresh folder and refuse it as "already holds this run"
    ctx.barrier()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(prep.threads)
    try:
        return _run_prepared(prep, ctx, time.perf_counter() - t0, echo)
    finally:  # a library call leaves the caller's thread count as it found it
        torch.set_num_threads(threads_before)


def _run_prepared(prep: Prepared, ctx: DistContext, prepare_seconds: float,
                  echo: Callable[[str], None] | None) -> SearchResult:
    """The stages after ``prepare``, under the run's thread count."""
    progress = Progress.for_run(echo, quiet=prep.cfg.quiet, is_main=ctx.is_main)
    progress.run_started(prep.cfg, prep.data, prep.out, ctx.device, ctx.world_size)
    folder = _open_run_folder(prep, ctx, progress)
    run = _run_context(prep, ctx, folder, progress, prepare_seconds)
    tree, leaves = _grow_tree(run)
    return _share(ctx, _search_rank_report(run, prep, tree, leaves) if ctx.is_main else None)
