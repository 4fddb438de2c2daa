"""``RunContext``: what every stage of one run reads (configuration, space, data, ranks, run store,
stage meter, progress), and ``derive_seed``, the run's only source of randomness.

Determinism: all randomness of a node's stage is derived from (seed, node id, stage, epoch) by
``derive_seed``, so a node's result does not depend on the order nodes run in, on which rank runs
it, or on whether the process was restarted.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from ..config import SearchConfig
from ..data import DataSplits
from .distributed import DistContext
from .progress import Progress
from .store import RunStore
from ..spaces.base import SearchSpace, Supernet
from .stage_meter import StageMeter


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from the run seed and any labels (node id, stage, epoch): order-independent
    of anything else the process did."""
    h = hashlib.sha256(json.dumps([int(seed), *[str(p) for p in parts]]).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 31) - 1)


@dataclass
class RunContext:
    """The shared state of one run's stages (one per process).

    cfg       the validated ``SearchConfig``
    space     the search space; data: the ``DataSplits``
    dist      ranks and device (``DistContext``)
    store     the run's checkpoints; meter: time and memory per stage; progress: reporting
    """

    cfg: SearchConfig
    space: SearchSpace
    data: DataSplits
    dist: DistContext
    store: RunStore
    meter: StageMeter
    progress: Progress

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def seed(self, *parts: Any) -> int:
        """``derive_seed`` of the run's seed and ``parts``."""
        return derive_seed(self.cfg.seed, *parts)

    def new_supernet(self, init_seed: int) -> Supernet:
        """A freshly initialised supernet on the run's device, its weights drawn from
        ``init_seed`` (the global RNG is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = self.space.build_supernet()
        return net.to(self.device)

    def supernet_from(self, state: dict) -> Supernet:
        """A supernet on the run's device with the weights of checkpoint ``state`` (its ``model``)."""
        net = self.new_supernet(0)
        net.load_state_dict(state["model"])
        return net

    def node_mask(self, node: dict) -> dict:
        """The ``dict[str, BoolTensor]`` mask of a node record."""
        return self.space.mask_from_json(node["mask"])

    def save_meter(self) -> None:
        """Checkpoint the stage meter (rank 0 only: the other ranks' meters are not reported)."""
        if self.dist.is_main:
            self.store.save_meter(self.meter)
