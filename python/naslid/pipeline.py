"""``run_search(config) -> SearchResult``: NAS-LID end to end, resumable and distributable.

Stages (``naslid.md`` §2, §4):

1. prepare   validate the config, load the data, build the space, read the benchmark, check the
             output folder — every input error is raised here, before anything is written;
2. levels    for level l = 0..L-1 (L = len(train.warmup_epochs); cumulative epochs E_l): every
             supernet of the level trains until it has E_l epochs in total (its parent's
             included), then is split (``naslid.split.split_step``); each child starts from its
             parent's weights. A supernet that does not split (criterion ``none``, nothing left)
             is carried to the next level and trains on. The tree's nodes are named ``r``,
             ``r.0``, ``r.1``, ``r.0.1`` ... (child i = group i of the split);
3. leaves    every leaf trains ``train.leaf_epochs`` more epochs from its weights (``inherit``) or
             from a re-initialisation (``reinit``);
4. search    evolutionary (or random) search over the union of the leaves' masks; an arch is
             evaluated with the leaf whose mask contains it (``evaluate.SubnetEvaluator``);
5. ranking   with a benchmark: Kendall τ / Spearman ρ of leaf accuracy against every ``*_acc``
             column over the top 1 % and a seeded sample of ≥ 500 unique archs, and the benchmark
             row of the architecture found;
6. report    ``result.json``, TensorBoard scalars, PNG plots (``naslid.report``).

Determinism: all randomness of a node's stage is derived from (seed, node id, stage, epoch) by
``derive_seed``, so a node's result does not depend on the order nodes run in, on which rank runs
it, or on whether the process was restarted. Resume: a checkpoint at the end of every epoch
(model, optimiser, scheduler, the epoch's generator state) and at every stage boundary; a killed
run re-does at most the interrupted epoch, from the same state with the same seeds.

Timings are wall seconds per stage; ``peak_memory_bytes`` per stage is, on CUDA,
``torch.cuda.max_memory_allocated`` (reset at the stage start) and, on CPU, the process's peak
resident set size during the stage (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``;
where that is unavailable, the peak since the process started).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import RunFolder, atomic_write_json, atomic_write_text, default_run_dir
from .config import DATASETS_FROM_DIR, SearchConfig
from .distributed import DistContext, GradAllReduce, ShardedForward
from .rss import reset_peak_rss, rss_bytes

log = logging.getLogger(__name__)

ROOT = "r"


# ------------------------------------------------------------------------------------------------
# result
# ------------------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """What a search run produced (also written as ``OUT/result.json``).

    best_arch             the space's string of the architecture found
    best_valid_acc        its validation accuracy (fraction) with the inherited weights, on the fixed
                          ``search.eval_images`` evaluation images (``best_valid_loss``: mean
                          cross-entropy there; the search's fitness is one of the two, ``search.score``)
    best_leaf             id of the sub-supernet that evaluated it
    best_arch_benchmark   benchmark columns of best_arch (None without a benchmark)
    split_tree            node id -> {mask, num_archs, level, parent, children, leaf, epochs,
                          split: the SplitRecord JSON (chosen decision, partition, scores, LID
                          vectors, similarity matrices), history: per-epoch loss/acc}
    ranking               {"top": {col: {n, kendall_tau, spearman_rho, ...}}, "sampled": {...}}
                          (empty without a benchmark)
    timings               stage -> wall seconds;  peak_memory_bytes: stage -> bytes;
                          extra_memory_bytes: stage -> bytes above what was in use when the stage
                          began (the split step's own memory: compare criteria by it)
    """

    best_arch: str
    best_valid_acc: float | None
    best_leaf: str | None
    best_arch_benchmark: dict | None
    split_tree: dict
    ranking: dict
    timings: dict
    peak_memory_bytes: dict
    search: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    out_dir: str = ""
    config_hash: str = ""
    best_valid_loss: float | None = None
    extra_memory_bytes: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from the run seed and any labels (node id, stage, epoch): order-independent
    of anything else the process did."""
    h = hashlib.sha256(json.dumps([int(seed), *[str(p) for p in parts]]).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 31) - 1)


class StageMeter:
    """Accumulates wall time (sum), peak memory (max) and extra memory (max of the peak above the
    memory in use when the stage started) per stage name. On CUDA the memory is
    ``torch.cuda.max_memory_allocated`` against ``memory_allocated`` at the start; on CPU the
    process's peak RSS (``VmHWM``, reset at the start) against its RSS at the start."""

    def __init__(self, device: torch.device, timings: dict | None = None, peaks: dict | None = None,
                 extra: dict | None = None):
        self.device = device
        self.timings: dict[str, float] = dict(timings or {})
        self.peaks: dict[str, int] = dict(peaks or {})
        self.extra: dict[str, int] = dict(extra or {})

    @contextmanager
    def stage(self, name: str):
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = int(torch.cuda.memory_allocated(self.device))
        else:
            reset_peak_rss()
            start = rss_bytes("VmRSS") or 0
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
                peak = int(torch.cuda.max_memory_allocated(self.device))
            else:
                peak = rss_bytes("VmHWM") or 0
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            self.peaks[name] = max(self.peaks.get(name, 0), peak)
            self.extra[name] = max(self.extra.get(name, 0), max(0, peak - start))


def _progress(iterable, enabled: bool, **kw):
    """A tqdm bar over ``iterable`` (None: a manual bar) when ``enabled``; else ``iterable``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


# ------------------------------------------------------------------------------------------------
# preparation (all input checks, nothing written)
# ------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    cfg: SearchConfig
    data: Any            # naslid.data.DataSplits
    space: Any           # naslid.spaces.SearchSpace
    benchmark: Any       # naslid.benchmark.Benchmark | None
    out: Path
    config_hash: str
    warm_state: dict | None = None   # the root checkpoint adopted from ``cfg.warm_start``


def check_paths(cfg: SearchConfig) -> None:
    """The files a run reads exist (``SearchConfig.validate`` does not look at the file system):
    ``data.data_dir`` of a dataset read from it, ``benchmark.file``. ValueError naming the field."""
    d = cfg.data
    if d.dataset in DATASETS_FROM_DIR and not os.path.exists(d.data_dir):
        raise ValueError(f"config.data.data_dir: {d.data_dir!r} does not exist")
    if cfg.benchmark.file is not None and not os.path.isfile(cfg.benchmark.file):
        raise ValueError(f"config.benchmark.file: {cfg.benchmark.file!r} is not a file")


def prepare(config: SearchConfig, device: torch.device | None = None) -> Prepared:
    """Validate everything a run needs; ValueError (naming the field / file) on bad input."""
    from .data import load_splits
    from .spaces import get_space

    if not isinstance(config, SearchConfig):
        raise TypeError(f"run_search: config must be a SearchConfig, got {type(config).__name__}")
    cfg = copy.deepcopy(config)
    cfg.validate()
    check_paths(cfg)
    if cfg.out is None:
        cfg.out = default_run_dir()
    out = Path(cfg.out)
    # the output folder first: cheap, and a refused folder must not cost a data load
    RunFolder.check(out, cfg.config_hash(), cfg.resume)
    d = cfg.data
    try:
        data = load_splits(d.dataset, d.data_dir, valid_fraction=d.valid_fraction, seed=cfg.seed,
                           max_train=d.max_train, max_valid=d.max_valid, image_size=d.image_size,
                           augment=d.augment,
                           download=True)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"config.data: {e}") from None
    except OSError as e:
        raise ValueError(f"config.data: cannot read dataset {d.dataset!r}: {e}") from None
    c, h, w = data.image_shape
    if h != w:
        raise ValueError(f"config.data: images must be square, got {h}x{w}")
    input_size = cfg.space.input_size or h
    if input_size != h:
        raise ValueError(f"config.space.input_size: {input_size} differs from the data's image size {h}")
    try:
        space = get_space(cfg.space.name, **cfg.space_options(data.num_classes, c, input_size))
    except (TypeError, ValueError) as e:
        raise ValueError(f"config.space: {e}") from None
    cfg.validate(num_decisions=len(space.decisions))
    for name, n in (("train", len(data.train)), ("valid", len(data.valid))):
        if n < d.batch_size and name == "train":
            raise ValueError(f"config.data.batch_size: {d.batch_size} exceeds the {n} training images")
    if cfg.levels and len(data.train) < cfg.split.batch_size * cfg.split.repeats:
        raise ValueError(f"config.split: {cfg.split.repeats} repeats x batch {cfg.split.batch_size} need "
                         f"{cfg.split.repeats * cfg.split.batch_size} training images, the split has {len(data.train)}")
    bench = None
    if cfg.benchmark.file:
        from .benchmark import load_benchmark

        try:
            bench = load_benchmark(cfg.benchmark.file, space)
        except (FileNotFoundError, KeyError, TypeError) as e:
            raise ValueError(f"config.benchmark.file: {e}") from None
        except ValueError as e:
            raise ValueError(f"config.benchmark.file {cfg.benchmark.file!r}: {e}") from None
        from .ranking import check_sample_request

        try:
            check_sample_request(bench, cfg.benchmark.sample_size, cfg.benchmark.sample)
        except ValueError as e:
            raise ValueError(f"config.{e}") from None
    warm = None
    if cfg.warm_start is not None:
        from .warm_start import load_warm_start

        warm = load_warm_start(cfg)
    return Prepared(cfg, data, space, bench, out, cfg.config_hash(), warm)


# ------------------------------------------------------------------------------------------------
# the engine
# ------------------------------------------------------------------------------------------------
class Engine:
    """One run: the tree, its checkpoints and the stages. See the module docstring."""

    def __init__(self, prep: Prepared, rf: RunFolder, ctx: DistContext, echo: Callable | None):
        self.p, self.cfg, self.space, self.data = prep, prep.cfg, prep.space, prep.data
        self.rf, self.ctx, self.device = rf, ctx, ctx.device
        self.echo = echo or (lambda *a, **k: None)
        # bars on a terminal only; elsewhere (a file, a pipe) one compact line per epoch via echo
        self.progress = not self.cfg.quiet and ctx.is_main and sys.stderr.isatty()
        self.log_epochs = not self.cfg.quiet and ctx.is_main and not self.progress
        prog = rf.load("progress") if ctx.is_main else None
        self.meter = StageMeter(self.device, (prog or {}).get("timings"), (prog or {}).get("peaks"),
                                (prog or {}).get("extra"))
        from .training import OptimConfig

        t = self.cfg.train
        self.optim_cfg = OptimConfig(lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                                     weight_decay=t.weight_decay, grad_clip=t.grad_clip).validate()

    # ----- small utilities ---------------------------------------------------------------------
    def seed(self, *parts) -> int:
        return derive_seed(self.cfg.seed, *parts)

    def save_progress(self) -> None:
        if self.ctx.is_main:
            self.rf.save("progress", {"timings": self.meter.timings, "peaks": self.meter.peaks,
                                      "extra": self.meter.extra})

    def new_supernet(self, init_seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = self.space.build_supernet()
        return net.to(self.device)

    def node_mask(self, node: dict) -> dict:
        return self.space.mask_from_json(node["mask"])

    def train_loader(self, node_id: str, stage: str, shards: tuple[int, int] = (1, 0)):
        from .data import make_loader

        return make_loader(self.data, "train", self.cfg.data.batch_size, seed=self.seed("data", node_id, stage),
                           drop_last=True, num_shards=shards[0], shard_index=shards[1])

    # ----- training of one node for one stage -------------------------------------------------
    def train_stage(self, node: dict, stage: str, epochs: int, init: dict | None, parallel: bool) -> None:
        """Train ``node`` for ``epochs`` epochs of stage ``stage``, resuming inside the stage from
        its checkpoint. ``init``: the checkpoint state to start from (the parent's, or the node's
        previous stage); None: a fresh initialisation seeded by (node, stage)."""
        from .training import build_optimizer, build_scheduler, train_epoch

        nid = node["id"]
        ck_name = f"node-{nid}"
        ck = self.rf.load(ck_name)
        net = self.new_supernet(self.seed("init", nid, stage))
        world = self.ctx.world_size if parallel else 1
        loader = self.train_loader(nid, stage, (world, self.ctx.rank if parallel else 0))
        model = ShardedForward(net, self.cfg.train.bn_shards // world)
        opt = build_optimizer(net, self.optim_cfg)
        sched = build_scheduler(opt, self.optim_cfg, epochs=epochs, steps_per_epoch=len(loader))
        if ck is not None and ck["stage"] == stage:       # resume inside the stage
            if ck["epoch"] >= epochs:
                return
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            e0, total_before, history = ck["epoch"], ck["epochs_total"] - ck["epoch"], list(ck["history"])
        elif init is not None:
            net.load_state_dict(init["model"])
            e0, total_before, history = 0, init.get("epochs_total", 0), list(init.get("history", []))
        else:
            e0, total_before, history = 0, 0, []
        writer = self.ctx.is_main or not parallel
        bar = _progress(range(e0, epochs), self.progress, desc=f"{stage} {nid}", leave=False,
                        initial=e0, total=epochs)
        for e in bar:
            loader.set_epoch(e)
            gen = torch.Generator().manual_seed(self.seed("arch", nid, stage, e))
            gen_state = gen.get_state()
            with self.meter.stage("warmup" if stage.startswith("warmup") else "leaf_training"), \
                    (GradAllReduce(net, self.ctx) if parallel else nullcontext()):
                stats = train_epoch(self.space, model, self.node_mask(node), loader, opt, generator=gen,
                                    device=self.device, scheduler=sched, grad_clip=self.optim_cfg.grad_clip,
                                    progress=self.progress, desc=f"{nid} epoch {total_before + e + 1}",
                                    sampling=self.cfg.train.sampling)
            if self.log_epochs:
                self.echo(f"{stage} {nid} epoch {total_before + e + 1}: loss {stats['loss']:.3f}, "
                          f"train acc {stats['acc']:.1f} %, lr {stats['lr']:.4f}, {stats['images_per_s']:.0f} images/s")
            history.append({"stage": stage, "epoch": total_before + e + 1, "loss": stats["loss"],
                            "acc": stats["acc"], "lr": stats["lr"], "images_per_s": stats["images_per_s"]})
            if writer:
                self.rf.save(ck_name, {"stage": stage, "epoch": e + 1, "epochs_total": total_before + e + 1,
                                       "model": net.state_dict(), "optimizer": opt.state_dict(),
                                       "scheduler": sched.state_dict(), "generator_at_epoch_start": gen_state,
                                       "rng": torch.get_rng_state(), "history": history})
                self.save_progress()

    # ----- split of one node --------------------------------------------------------------------
    def split_node(self, node: dict, level: int) -> dict:
        """The node's split record (JSON) at ``level``, computed once and checkpointed."""
        from .data import make_loader
        from .split import split_step

        name = f"split-{node['id']}-L{level}"
        done = self.rf.load(name)
        if done is not None:
            return done["record"]
        ck = self.rf.load(f"node-{node['id']}")
        net = self.new_supernet(0)
        net.load_state_dict(ck["model"])
        sp = self.cfg.split
        batches = []
        if sp.criterion not in ("none",):
            loader = make_loader(self.data, "train", sp.batch_size, seed=self.seed("split-data", node["id"], level),
                                 shuffle=True, augment=False, drop_last=True)
            for x, y in loader:
                batches.append((x, y))
                if len(batches) >= sp.repeats:
                    break
        gen = torch.Generator().manual_seed(self.seed("split", node["id"], level))
        with self.meter.stage("split"):
            rec = split_step(self.space, net, self.node_mask(node), batches, sp,
                             generator=gen, device=self.device, progress=self.progress)
        out = rec.to_json()
        self.rf.save(name, {"record": out})
        self.save_progress()
        return out

    # ----- the tree -----------------------------------------------------------------------------
    def run_levels(self) -> tuple[dict, list[str]]:
        """Warm-up and split every level; returns (tree, leaf ids)."""
        tree: dict[str, dict] = {ROOT: {"id": ROOT, "level": 0, "parent": None, "children": [],
                                        "mask": self.space.mask_to_json(self.space.full_mask()),
                                        "leaf": False, "split": None}}
        active = [ROOT]
        schedule = self.cfg.train.warmup_epochs
        for level, target in enumerate(schedule):
            single = len(active) == 1
            parallel = (single and self.ctx.distributed and self.cfg.train.bn_shards % self.ctx.world_size == 0)
            # train: supernets of the level spread over ranks (or the single one data-parallel)
            for i, nid in enumerate(active):
                if not (parallel or self.ctx.owner(i) == self.ctx.rank):
                    continue
                node = tree[nid]
                stage = f"warmup-{level}"
                ck = self.rf.load(f"node-{nid}")
                if ck is not None and ck["stage"] == stage:            # this stage, maybe partly done
                    init, have = None, ck["epochs_total"] - ck["epoch"]
                elif ck is not None and _stage_after(ck["stage"], stage):
                    continue                                            # already beyond (resume)
                elif ck is not None:                                    # carried from a level before
                    init, have = ck, ck["epochs_total"]
                else:                                                   # fresh child (or the root)
                    init = self.rf.load(f"node-{node['parent']}") if node["parent"] else None
                    have = init["epochs_total"] if init is not None else 0
                self.train_stage(node, stage, target - have, init, parallel)
            self.ctx.barrier()
            # split: each node by its owner (rank 0 for a single node)
            for i, nid in enumerate(active):
                if self.ctx.owner(i) == self.ctx.rank:
                    self.split_node(tree[nid], level)
            self.ctx.barrier()
            nxt = []
            for nid in active:
                rec = self.rf.load(f"split-{nid}-L{level}")["record"]
                node = tree[nid]
                node["split"] = rec
                if rec["split"]:
                    for gi, m in enumerate(rec["child_masks"]):
                        cid = f"{nid}.{gi}"
                        tree[cid] = {"id": cid, "level": level + 1, "parent": nid, "children": [],
                                     "mask": m, "leaf": False, "split": None}
                        node["children"].append(cid)
                        nxt.append(cid)
                else:
                    nxt.append(nid)  # carried to the next level, trains on
            active = nxt
            n_split = sum(1 for nid in tree if tree[nid]["split"] and tree[nid]["split"]["split"])
            self.echo(f"level {level + 1}/{len(schedule)}: {target} epochs, "
                      f"{len(active)} sub-supernet(s), {n_split} split(s) so far")
        return tree, active

    def train_leaves(self, tree: dict, leaves: list[str]) -> None:
        t = self.cfg.train
        for i, nid in enumerate(leaves):
            if self.ctx.owner(i) != self.ctx.rank or t.leaf_epochs == 0:
                continue
            node = tree[nid]
            ck = self.rf.load(f"node-{nid}")
            if ck is None:
                ck = self.rf.load(f"node-{node['parent']}")
            init = None if t.leaf_init == "reinit" or ck["stage"] == "leaf" else ck
            self.train_stage(node, "leaf", t.leaf_epochs, init, parallel=False)
        self.ctx.barrier()

    def leaf_state(self, nid: str, parent: str | None) -> dict:
        ck = self.rf.load(f"node-{nid}")
        return ck if ck is not None else self.rf.load(f"node-{parent}")

    # ----- search and ranking (rank 0) ------------------------------------------------------------
    def leaf_evaluator(self, tree: dict, leaves: list[str]):
        """A ``SubnetEvaluator`` over the leaves' weights, scoring every cell on the same fixed
        ``search.eval_images`` validation images (a class-stratified subset drawn with a fixed seed,
        so every run, seed and criterion scores on the same images)."""
        from .data import fixed_batches, stratified_take
        from .evaluate import SubnetEvaluator

        se = self.cfg.search
        nets = []
        for nid in leaves:
            st = self.leaf_state(nid, tree[nid]["parent"])
            net = self.new_supernet(0)
            net.load_state_dict(st["model"])
            nets.append((self.node_mask(tree[nid]), net))
        data = self.data
        if se.eval_images is not None and se.eval_images < len(data.valid):
            taken, _ = stratified_take(data.valid.labels, se.eval_images, torch.Generator().manual_seed(0))
            data = dataclasses.replace(data, valid=data.valid.subset(taken))
        valid = fixed_batches(data, "valid", se.eval_batch_size, device=self.device)
        calib = fixed_batches(self.data, "train", se.eval_batch_size, num_batches=se.bn_batches,
                              seed=self.seed("calib"), device=self.device) if se.bn == "recalibrate" else None
        return SubnetEvaluator(self.space, nets, valid, bn=se.bn, calib_batches=calib, device=self.device,
                               score=se.score)

    def run_evolution(self, evaluator, leaves: list[str]) -> dict:
        """The final search over the leaves (checkpointed): best arch, its fitness and metrics."""
        from .evolution import evolutionary_search, random_search

        se = self.cfg.search
        saved = self.rf.load("search")
        if saved is not None:
            return saved
        gen = torch.Generator().manual_seed(self.seed("search"))
        with self.meter.stage("search"):
            if se.method == "evolution":
                r = evolutionary_search(self.space, evaluator.masks, evaluator, generator=gen,
                                        progress=self.progress, config=se)
            else:
                r = random_search(self.space, evaluator.masks, evaluator,
                                  num_samples=se.population * se.generations, generator=gen,
                                  max_tries=se.max_tries, progress=self.progress)
            res = {"best_arch": self.space.arch_to_string(r.best_arch), "best_fitness": r.best_fitness,
                   "best_metrics": evaluator.metrics(r.best_arch), "score": se.score,
                   "best_leaf": leaves[evaluator.leaf_index(r.best_arch)],
                   "summary": r.to_dict(self.space), "evaluated": dict(r.evaluated)}
        self.rf.save("search", res)
        self.save_progress()
        return res

    def rank(self, evaluator, best_arch: str) -> tuple[dict, dict, dict | None]:
        """Ranking against the benchmark (checkpointed): (ranking for result.json, points for the
        plots, the benchmark row of ``best_arch``). Cells are scored by accuracy and by minus the
        loss; the parameter count and FLOPs of the same cells are ranked beside them."""
        from .ranking import best_arch_benchmark, ranking_report

        bench, b = self.p.benchmark, self.cfg.benchmark
        saved = self.rf.load("ranking")
        if saved is None:
            with self.meter.stage("ranking"):
                n_top = max(2, int(b.top_fraction * len(bench)))
                bar = _progress(None, self.progress, total=n_top * len(bench.acc_columns) + b.sample_size,
                                desc="ranking", leave=False)

                def predict(arch):
                    if bar is not None:
                        bar.update(1)
                    m = evaluator.metrics(arch)
                    return {"acc": m["acc"], "neg_loss": -m["loss"]}

                try:
                    rep = ranking_report(bench, predict, top_fraction=b.top_fraction, sample_size=b.sample_size,
                                         sample=b.sample, seed=0, include_points=True)
                finally:
                    if bar is not None:
                        bar.close()
                saved = {"report": rep, "best": best_arch_benchmark(bench, best_arch)}
            self.rf.save("ranking", saved)
            self.save_progress()
        rep = saved["report"]
        pts = rep.get("points", {}).get("sample", [])
        ranking = {"top": rep["top"]["columns"], "sampled": rep["sample"]["columns"],
                   "settings": {"top_fraction": rep["top"]["fraction"], "top_by": rep["top"]["by"],
                                "sample_size": rep["sample"]["size_requested"], "sample_n": rep["sample"]["n"],
                                "sample_method": rep["sample"]["method"], "sample_seed": rep["sample"]["seed"]},
                   # [[arch, {predictor: value}, {column: truth}], ...]
                   "sampled_points": pts}
        names = list(pts[0][1]) if pts else []
        points = {"predicted": {n: [p[1][n] for p in pts] for n in names},
                  "true": {c: [p[2][c] for p in pts] for c in bench.acc_columns}}
        return ranking, points, saved["best"]

    def search_and_rank(self, tree: dict, leaves: list[str]):
        evaluator = self.leaf_evaluator(tree, leaves)
        res = self.run_evolution(evaluator, leaves)
        if self.p.benchmark is None:
            return res, {}, {}, None
        ranking, points, bench_row = self.rank(evaluator, res["best_arch"])
        return res, ranking, points, bench_row


def _stage_after(have: str, want: str) -> bool:
    """True when checkpoint stage ``have`` comes after ``want`` (``warmup-<l>`` < ``leaf``)."""
    def order(s: str) -> float:
        return math.inf if s == "leaf" else int(s.split("-")[1])
    return order(have) > order(want)


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------
def run_search(config: SearchConfig, *, dist: DistContext | None = None,
               echo: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or ``config.resume``) a search; see the module docstring. ``echo``: a print-like
    callable for one-line status messages (the CLI passes ``print``; None: silent)."""
    ctx = dist or DistContext.single(config.device if isinstance(config, SearchConfig) else "cpu")
    t0 = time.perf_counter()
    prep = prepare(config, ctx.device)
    if prep.cfg.threads is not None:
        torch.set_num_threads(prep.cfg.threads)
    t_prepare = time.perf_counter() - t0
    cfg = prep.cfg
    if echo is not None:
        echo(f"naslid search: {cfg.space.name} (C={cfg.space.C}, N={cfg.space.N}) on {cfg.data.dataset} "
             f"({len(prep.data.train)} train / {len(prep.data.valid)} valid images, "
             f"{prep.data.image_shape[1]}x{prep.data.image_shape[2]}), criterion {cfg.split.criterion}, "
             f"warm-up {cfg.train.warmup_epochs}, {ctx.device}"
             + (f", {ctx.world_size} processes" if ctx.distributed else "")
             + f"; run folder {prep.out}" + (" (resumed)" if cfg.resume else ""))
    if ctx.is_main:
        rf = RunFolder.open(prep.out, prep.config_hash, cfg.resume)
        atomic_write_text(prep.out / "config.yaml", cfg.to_yaml())
        if prep.warm_state is not None and not rf.exists(f"node-{ROOT}"):
            rf.save(f"node-{ROOT}", prep.warm_state)
            if echo is not None:
                echo(f"warm start: the root's {cfg.train.warmup_epochs[0]}-epoch warm-up from {cfg.warm_start}")
    ctx.barrier()
    if not ctx.is_main:
        rf = RunFolder(prep.out, prep.config_hash)
    eng = Engine(prep, rf, ctx, echo)
    eng.meter.timings["prepare"] = eng.meter.timings.get("prepare", 0.0) + t_prepare
    eng.meter.peaks["prepare"] = max(eng.meter.peaks.get("prepare", 0), rss_bytes("VmHWM") or 0)
    tree, leaves = eng.run_levels()
    eng.train_leaves(tree, leaves)
    for nid in leaves:
        tree[nid]["leaf"] = True
    result = None
    if ctx.is_main:
        res, ranking, points, bench_row = eng.search_and_rank(tree, leaves)
        for nid, node in tree.items():
            st = rf.load(f"node-{nid}")
            node["num_archs"] = prep.space.num_archs(eng.node_mask(node))
            if st is None and node["parent"]:  # a leaf with 0 leaf epochs: its parent's weights
                st = rf.load(f"node-{node['parent']}")
            node["epochs"] = st["epochs_total"] if st else None
            node["history"] = st["history"] if st else []
        result = SearchResult(
            best_arch=res["best_arch"], best_valid_acc=res["best_metrics"]["acc"] / 100.0,
            best_valid_loss=res["best_metrics"]["loss"],
            best_leaf=res["best_leaf"], best_arch_benchmark=bench_row, split_tree=tree,
            ranking=ranking, timings={}, peak_memory_bytes={},
            search=res["summary"], config=cfg.to_dict(), data=prep.data.summary(),
            out_dir=str(prep.out), config_hash=prep.config_hash)
        from .report import write_report

        with eng.meter.stage("report"):
            body = result.to_json()
            body["artifacts"] = write_report(prep.out, body, search_history=res["summary"].get("history"),
                                             ranking_points=points, plots=cfg.plots,
                                             tensorboard=cfg.tensorboard, write_json=False)
        # result.json is written once, last, with the report stage's own timing included
        result.timings = body["timings"] = dict(eng.meter.timings)
        result.peak_memory_bytes = body["peak_memory_bytes"] = dict(eng.meter.peaks)
        result.extra_memory_bytes = body["extra_memory_bytes"] = dict(eng.meter.extra)
        atomic_write_json(prep.out / "result.json", body)
        rf.write_manifest(status="complete", best_arch=result.best_arch)
    ctx.barrier()
    if result is None:
        result = ctx.broadcast_object(None)
    else:
        ctx.broadcast_object(result) if ctx.distributed else None
    return result
