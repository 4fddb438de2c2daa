"""Scale-out with torch.distributed: who does what, and data-parallel warm-up.

Under ``torchrun --nproc-per-node N naslid search ...`` (gloo on CPU, nccl on CUDA) the pipeline
(the scheduler: ``naslid.run.tree.TreeScheduler``; the training of a node: ``naslid.run.node_training``):

- spreads the supernets of a level, and the leaves, over the ranks: node ``i`` of a level (in the
  tree's sorted order) belongs to rank ``i % N``; every node's work is seeded by the node's id only
  (``naslid.run.context.derive_seed``), never by the rank or by what ran before on that process, so a node's
  result is the same on whichever rank computes it (bitwise, same device);
- trains a level that has a single supernet (the root) data-parallel when ``train.bn_shards``
  (BatchNorm "ghost" shards per global batch, default 1) is divisible by N: every rank draws the
  same architecture per step (same generator), takes its contiguous slice of the same global batch
  (``data.BatchLoader`` sharding), runs ``bn_shards / N`` shards of it, and the gradients are
  averaged over ranks by an all-reduce hook before clipping and the optimiser step. The
  single-process run computes the same ``bn_shards`` shards in one process (``ShardedForward``),
  so both runs compute the same function: the global-batch mean loss with per-shard BatchNorm
  statistics, and the same averaged gradient. Otherwise the root is trained by rank 0 alone;
- exchanges results through the run folder (checkpoints are on a shared file system) with
  barriers; rank 0 writes the manifest, the search, the ranking and the report.

"Identical in content" (what the test checks): the same split tree (every node's mask, chosen
decision and partition), the same leaves, the same best architecture. Floats (losses, LID vectors,
accuracies) agree to rounding: the data-parallel gradient is a sum in another order, which changes
the last bits; node-parallel work is bitwise identical. BatchNorm running statistics are updated
per rank and are not part of the content: evaluation recalibrates them (``search.bn``) and the
split step uses batch statistics by default.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU -> ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"config.device: {device!r} requested but no CUDA device is available")
    return dev


@dataclass
class DistContext:
    """Rank / world size / device of this process; a single-process context when not distributed."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def single(cls, device: str = "cpu") -> "DistContext":
        return cls(0, 1, resolve_device(device))

    @classmethod
    def from_env(cls, device: str = "cpu") -> "DistContext":
        """From torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); single otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls.single(device)
        return cls.init(int(os.environ["RANK"]), world, "env://", device,
                        local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    @classmethod
    def init(cls, rank: int, world_size: int, init_method: str, device: str = "cpu",
             local_rank: int | None = None) -> "DistContext":
        """Join a process group (gloo on CPU, nccl on CUDA; one GPU per local rank)."""
        import torch.distributed as dist

        dev = resolve_device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank if local_rank is not None else rank % torch.cuda.device_count())
            torch.cuda.set_device(dev)
        here = False
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=init_method,
                                    rank=rank, world_size=world_size,
                                    timeout=datetime.timedelta(hours=2))
            here = True
        return cls(rank, world_size, dev, here)

    def owner(self, i: int) -> int:
        """Rank that computes the ``i``-th node of a level."""
        return i % self.world_size

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def broadcast_object(self, obj, src: int = 0):
        """``obj`` of rank ``src`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_ok(self, ok: bool) -> bool:
        """True on every rank iff ``ok`` on every rank (so a failure on one rank stops all)."""
        if not self.distributed:
            return ok
        import torch.distributed as dist

        t = torch.tensor([0 if ok else 1], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return int(t.item()) == 0

    def close(self, finished: bool = False) -> None:
        """Leave the process group (if this context joined it). ``finished``: every rank completed
        its work; they meet at a barrier first, so no rank tears down its gloo connections while
        another still uses them (without it, one run in about seven aborted at exit with
        "terminate called without an active exception"). Not after a failure: a rank that died
        would leave the others waiting at the barrier."""
        if self.initialized_here:
            import torch.distributed as dist

            if dist.is_initialized():
                if finished:
                    self.barrier()
                dist.destroy_process_group()
            self.initialized_here = False


class ShardedForward(nn.Module):
    """Runs ``net`` on ``shards`` equal chunks of the batch and concatenates the logits, so that
    BatchNorm statistics are per chunk ("ghost" batches). With ``shards`` = 1 it is ``net``.

    Delegates ``set_arch`` / ``lid_layers`` / ``decision_parameters`` to ``net`` so it can stand
    in for the supernet in ``training.train_epoch``."""

    def __init__(self, net: nn.Module, shards: int):
        super().__init__()
        self.net = net
        self.shards = int(shards)

    def set_arch(self, arch) -> None:
        self.net.set_arch(arch)

    def lid_layers(self):
        return self.net.lid_layers()

    def decision_parameters(self, key):
        return self.net.decision_parameters(key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shards == 1:
            return self.net(x)
        if x.shape[0] % self.shards:
            raise ValueError(f"ShardedForward: batch of {x.shape[0]} does not split into {self.shards} shards")
        return torch.cat([self.net(c) for c in x.chunk(self.shards)])


class GradAllReduce:
    """Context manager: while active, every parameter's gradient is all-reduced (averaged over
    ranks) as soon as backward has accumulated it (before clipping and the optimiser step).
    All ranks must run the same graph (same architecture), which the pipeline guarantees."""

    def __init__(self, module: nn.Module, ctx: DistContext):
        self.module, self.ctx, self.handles = module, ctx, []

    def _hook(self, p: torch.Tensor) -> None:
        import torch.distributed as dist

        dist.all_reduce(p.grad)
        p.grad.div_(self.ctx.world_size)

    def __enter__(self):
        if self.ctx.distributed:
            for p in self.module.parameters():
                if p.requires_grad:
                    self.handles.append(p.register_post_accumulate_grad_hook(self._hook))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []
        return False
