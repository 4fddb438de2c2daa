"""``NodeSplitter``: the split of one node of the tree at one level, computed once and checkpointed.

The node's supernet (its weights at the end of the level's training) is split by
``naslid.split.split_step`` on ``split.repeats`` non-augmented training batches of
``split.batch_size`` images, drawn with (seed, "split-data", node, level); the random paths,
random split and clusterer seeds come from (seed, "split", node, level).
"""
from __future__ import annotations

import torch

from ..data import make_loader
from .context import RunContext
from ..split import split_step


class NodeSplitter:
    """Splits the nodes of one run (see the module docstring)."""

    def __init__(self, run: RunContext):
        self.run = run

    def split(self, node: dict, level: int) -> dict:
        """The node's split record (SplitRecord JSON) at ``level``; computed and saved once."""
        run, nid = self.run, node["id"]
        done = run.store.split_record(nid, level)
        if done is not None:
            return done
        net = run.supernet_from(run.store.node(nid))
        batches = self.batches(nid, level)
        gen = torch.Generator().manual_seed(run.seed("split", nid, level))
        with run.meter.stage("split"):
            rec = split_step(run.space, net, run.node_mask(node), batches, run.cfg.split,
                             generator=gen, device=run.device, progress=run.progress.bars)
        out = rec.to_json()
        run.store.save_split_record(nid, level, out)
        run.save_meter()
        return out

    def batches(self, nid: str, level: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The split's ``repeats`` batches (x float32 (B, C, H, W), y int64 (B,)), B =
        ``split.batch_size``, on the CPU; none for criterion ``none``."""
        run, sp = self.run, self.run.cfg.split
        if sp.criterion == "none":
            return []
        loader = make_loader(run.data, "train", sp.batch_size, seed=run.seed("split-data", nid, level),
                             shuffle=True, augment=False, drop_last=True)
        batches = []
        for x, y in loader:
            batches.append((x, y))
            if len(batches) >= sp.repeats:
                break
        return batches
