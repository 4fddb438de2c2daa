"""``NodeTrainer``: trains one node of the split tree for one stage, resuming inside the stage.

A stage (``warmup-<level>`` or ``leaf``) of ``epochs`` epochs starts from a checkpoint state (the
parent's weights for a fresh child, the node's own from the level before for a carried node) or,
without one, from a fresh initialisation seeded by (node, stage). Each stage has its own SGD
optimiser and cosine schedule over its epochs (``naslid.blocks.supernet_training``). At the end of every epoch the
node's checkpoint is rewritten (model, optimiser, scheduler, the epoch's generator state, history),
so a killed run re-does at most the interrupted epoch, from the same state with the same seeds:
the loader's order comes from (seed, "data", node, stage) and the epoch, the architectures drawn
from (seed, "arch", node, stage, epoch).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..data import BatchLoader, make_loader
from .distributed import GradAllReduce, ShardedForward
from .context import RunContext
from .tree import LEAF_STAGE, stage_after, warmup_stage
from ..blocks.supernet_training import build_optimizer, build_scheduler, optim_config, train_epoch


@dataclass
class _Session:
    """The objects one stage trains with: the supernet, the module that runs it (BN ghost batches),
    the node's loader, optimiser and schedule."""

    net: nn.Module
    model: nn.Module
    loader: BatchLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


@dataclass
class _Start:
    """Where a stage starts: epoch ``epoch`` of the stage, ``total_before`` epochs trained before
    the stage, the node's history so far."""

    epoch: int
    total_before: int
    history: list


class NodeTrainer:
    """Warm-up and leaf training of the nodes of one run (see the module docstring)."""

    def __init__(self, run: RunContext):
        self.run = run
        self.optim = optim_config(run.cfg.train)

    # ----- which stage, from where ----------------------------------------------------------------
    def warm_up(self, node: dict, level: int, epochs: int, parallel: bool) -> None:
        """Train ``node`` until it has ``epochs`` epochs in total (its ancestors' included), as
        stage ``warmup-<level>``; nothing when its checkpoint is past that stage (resume)."""
        stage = warmup_stage(level)
        ck = self.run.store.node(node["id"])
        if ck is not None and ck["stage"] == stage:            # this stage, maybe partly done
            init, have = None, ck["epochs_total"] - ck["epoch"]
        elif ck is not None and stage_after(ck["stage"], stage):
            return                                              # already beyond (resume)
        elif ck is not None:                                    # carried from a level before
            init, have = ck, ck["epochs_total"]
        else:                                                   # fresh child (or the root)
            init = self.run.store.node(node["parent"]) if node["parent"] else None
            have = init["epochs_total"] if init is not None else 0
        self.train(node, stage, epochs - have, init, parallel)

    def train_leaf(self, node: dict) -> None:
        """Train leaf ``node`` ``train.leaf_epochs`` epochs from its weights (``inherit``) or from
        a fresh initialisation (``reinit``)."""
        t = self.run.cfg.train
        ck = self.run.store.node_or_parent(node)
        init = None if t.leaf_init == "reinit" or ck["stage"] == LEAF_STAGE else ck
        self.train(node, LEAF_STAGE, t.leaf_epochs, init, parallel=False)

    # ----- one stage --------------------------------------------------------------------------------
    def train(self, node: dict, stage: str, epochs: int, init: dict | None, parallel: bool) -> None:
        """Train ``node`` for ``epochs`` epochs of stage ``stage``, resuming inside the stage from
        its checkpoint. ``init``: the checkpoint state to start from (the parent's, or the node's
        previous stage); None: a fresh initialisation seeded by (node, stage). ``parallel``: every
        rank trains its shard of each batch (data-parallel)."""
        run, nid = self.run, node["id"]
        ck = run.store.node(nid)
        session = self._session(nid, stage, epochs, parallel)
        start = self._start(session, ck, stage, epochs, init)
        if start is None:
            return
        writer = run.dist.is_main or not parallel
        for e in run.progress.bar(range(start.epoch, epochs), desc=f"{stage} {nid}", leave=False,
                                  initial=start.epoch, total=epochs):
            epoch = start.total_before + e + 1
            stats, gen_state = self._epoch(session, node, stage, e, epoch, parallel)
            run.progress.epoch_done(stage, nid, epoch, stats)
            start.history.append({"stage": stage, "epoch": epoch, "loss": stats["loss"], "acc": stats["acc"],
                                  "lr": stats["lr"], "images_per_s": stats["images_per_s"]})
            if writer:
                self._save(session, nid, stage, e + 1, epoch, gen_state, start.history)

    def _session(self, nid: str, stage: str, epochs: int, parallel: bool) -> _Session:
        """A fresh supernet (seeded by node and stage), the node's loader (this rank's shard when
        ``parallel``), a new optimiser and a cosine schedule over the stage's ``epochs``."""
        run = self.run
        net = run.new_supernet(run.seed("init", nid, stage))
        world = run.dist.world_size if parallel else 1
        loader = make_loader(run.data, "train", run.cfg.data.batch_size, seed=run.seed("data", nid, stage),
                             drop_last=True, num_shards=world, shard_index=run.dist.rank if parallel else 0)
        model = ShardedForward(net, run.cfg.train.bn_shards // world)
        opt = build_optimizer(net, self.optim)
        sched = build_scheduler(opt, self.optim, epochs=epochs, steps_per_epoch=len(loader))
        return _Session(net, model, loader, opt, sched)

    @staticmethod
    def _start(session: _Session, ck: dict | None, stage: str, epochs: int, init: dict | None) -> _Start | None:
        """Load the state the stage starts from into ``session``: the node's own checkpoint of
        this stage (resume; None when the stage is complete), else ``init``, else nothing."""
        if ck is not None and ck["stage"] == stage:       # resume inside the stage
            if ck["epoch"] >= epochs:
                return None
            session.net.load_state_dict(ck["model"])
            session.optimizer.load_state_dict(ck["optimizer"])
            session.scheduler.load_state_dict(ck["scheduler"])
            return _Start(ck["epoch"], ck["epochs_total"] - ck["epoch"], list(ck["history"]))
        if init is not None:
            session.net.load_state_dict(init["model"])
            return _Start(0, init.get("epochs_total", 0), list(init.get("history", [])))
        return _Start(0, 0, [])

    def _epoch(self, session: _Session, node: dict, stage: str, e: int, epoch: int,
               parallel: bool) -> tuple[dict, torch.Tensor]:
        """Epoch ``e`` of the stage (the node's ``epoch``-th), its architectures drawn from
        (seed, "arch", node, stage, e): (``train_epoch``'s statistics, the generator's state at the
        epoch start)."""
        run, nid = self.run, node["id"]
        session.loader.set_epoch(e)
        gen = torch.Generator().manual_seed(run.seed("arch", nid, stage, e))
        gen_state = gen.get_state()
        with run.meter.stage("warmup" if stage.startswith("warmup") else "leaf_training"), \
                (GradAllReduce(session.net, run.dist) if parallel else nullcontext()):
            stats = train_epoch(run.space, session.model, run.node_mask(node), session.loader, session.optimizer,
                                generator=gen, device=run.device, scheduler=session.scheduler,
                                grad_clip=self.optim.grad_clip, progress=run.progress.bars,
                                desc=f"{nid} epoch {epoch}", sampling=run.cfg.train.sampling)
        return stats, gen_state

    def _save(self, session: _Session, nid: str, stage: str, stage_epoch: int, epoch: int,
              gen_state: torch.Tensor, history: list) -> None:
        """Checkpoint the node at the end of an epoch (and the stage meter)."""
        self.run.store.save_node(nid, {
            "stage": stage, "epoch": stage_epoch, "epochs_total": epoch, "model": session.net.state_dict(),
            "optimizer": session.optimizer.state_dict(), "scheduler": session.scheduler.state_dict(),
            "generator_at_epoch_start": gen_state, "rng": torch.get_rng_state(), "history": history})
        self.run.save_meter()
