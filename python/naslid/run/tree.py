"""The split tree and its scheduler: levels, which rank works on which node, barriers, node records.

Nodes are named ``r`` (the root), ``r.0``, ``r.1``, ``r.0.1`` ... (child i = group i of its
parent's split). A node record is the JSON-ready dict written to ``result.json``'s ``split_tree``:
``id, level, parent, children, mask`` (JSON mask), ``leaf``, ``split`` (the SplitRecord JSON, None
until split), then, when the run ends, ``num_archs, epochs, history`` (``complete_records``).

Level l = 0..L-1 (cumulative epochs E_l = ``train.warmup_epochs[l]``): every supernet of the level
trains until it has E_l epochs (stage ``warmup-<l>``), then is split; a node that does not split is
carried to the next level and trains on. The leaves then train ``train.leaf_epochs`` more (stage
``leaf``). The i-th node of a level (or leaf) is worked on by rank ``i mod world size``; a level with
a single node is trained data-parallel by every rank when ``train.bn_shards`` is divisible by the
world size. Ranks meet at a barrier after each training and split phase, and every rank reads the
split records back from the run folder, so every rank holds the same tree.

The training and the split of one node are stages passed in (``NodeTrainer``, ``NodeSplitter``):
this module only decides who does what, when, and records the outcome.
"""
from __future__ import annotations

import math
from typing import Protocol

ROOT = "r"
LEAF_STAGE = "leaf"


def warmup_stage(level: int) -> str:
    """The name of level ``level``'s training stage: ``warmup-<level>``."""
    return f"warmup-{level}"


def stage_after(have: str, want: str) -> bool:
    """True when checkpoint stage ``have`` comes after ``want`` (``warmup-<l>`` < ``leaf``)."""
    def order(s: str) -> float:
        return math.inf if s == LEAF_STAGE else int(s.split("-")[1])
    return order(have) > order(want)


def new_node(node_id: str, level: int, parent: str | None, mask: dict) -> dict:
    """A node record (see the module docstring) before training: not split, not a leaf."""
    return {"id": node_id, "level": level, "parent": parent, "children": [], "mask": mask,
            "leaf": False, "split": None}


def add_split(tree: dict, node_id: str, level: int, record: dict) -> list[str]:
    """Record ``node_id``'s split ``record`` (SplitRecord JSON) at ``level`` in ``tree``, adding one
    child per group; returns the node's successors on the next level (its children, or itself
    when it did not split)."""
    node = tree[node_id]
    node["split"] = record
    if not record["split"]:
        return [node_id]  # carried to the next level, trains on
    for gi, mask in enumerate(record["child_masks"]):
        child = f"{node_id}.{gi}"
        tree[child] = new_node(child, level + 1, node_id, mask)
        node["children"].append(child)
    return list(node["children"])


def count_splits(tree: dict) -> int:
    """Nodes of ``tree`` that were split."""
    return sum(1 for node in tree.values() if node["split"] and node["split"]["split"])


class _Trainer(Protocol):
    def warm_up(self, node: dict, level: int, epochs: int, parallel: bool) -> None: ...
    def train_leaf(self, node: dict) -> None: ...


class _Splitter(Protocol):
    def split(self, node: dict, level: int) -> dict: ...


class TreeScheduler:
    """Runs the levels and the leaf training of one run over the ranks of ``dist``.

    dist      ``naslid.run.distributed.DistContext``
    store     ``naslid.run.store.RunStore`` (split records are read back from it)
    progress  ``naslid.run.progress.Progress`` (one status line per level)
    trainer   ``warm_up(node, level, epochs, parallel)`` and ``train_leaf(node)``
    splitter  ``split(node, level)``: the node's split record, saved in ``store``
    """

    def __init__(self, dist, store, progress, trainer: _Trainer, splitter: _Splitter):
        self.dist, self.store, self.progress = dist, store, progress
        self.trainer, self.splitter = trainer, splitter

    def _mine(self, i: int) -> bool:
        return self.dist.owner(i) == self.dist.rank

    def data_parallel(self, active: list[str], bn_shards: int) -> bool:
        """Whether a level of ``active`` nodes trains data-parallel: one node, several ranks and
        ``bn_shards`` divisible by the world size."""
        return len(active) == 1 and self.dist.distributed and bn_shards % self.dist.world_size == 0

    def run_levels(self, root_mask: dict, schedule: list[int], bn_shards: int) -> tuple[dict, list[str]]:
        """Warm up and split every level of ``schedule`` (cumulative epochs) from a root with the
        JSON mask ``root_mask``; returns (tree, ids of the last level's nodes: the leaves)."""
        tree = {ROOT: new_node(ROOT, 0, None, root_mask)}
        active = [ROOT]
        for level, epochs in enumerate(schedule):
            parallel = self.data_parallel(active, bn_shards)
            for i, nid in enumerate(active):
                if parallel or self._mine(i):
                    self.trainer.warm_up(tree[nid], level, epochs, parallel)
            self.dist.barrier()
            for i, nid in enumerate(active):
                if self._mine(i):
                    self.splitter.split(tree[nid], level)
            self.dist.barrier()
            active = [succ for nid in active
                      for succ in add_split(tree, nid, level, self.store.split_record(nid, level))]
            self.progress.level_done(level, len(schedule), epochs, len(active), count_splits(tree))
        return tree, active

    def train_leaves(self, tree: dict, leaves: list[str], leaf_epochs: int) -> None:
        """Train every leaf ``leaf_epochs`` more epochs (on its owner rank), then mark it a leaf."""
        for i, nid in enumerate(leaves):
            if self._mine(i) and leaf_epochs != 0:
                self.trainer.train_leaf(tree[nid])
        self.dist.barrier()
        for nid in leaves:
            tree[nid]["leaf"] = True


def complete_records(tree: dict, store, space) -> None:
    """Add ``num_archs``, ``epochs`` (total trained) and ``history`` (per-epoch loss, accuracy, ...)
    to every node record, from the node's checkpoint (a leaf trained no further: its parent's)."""
    for node in tree.values():
        state = store.node_or_parent(node)
        node["num_archs"] = space.num_archs(space.mask_from_json(node["mask"]))
        node["epochs"] = state["epochs_total"] if state else None
        node["history"] = state["history"] if state else []
