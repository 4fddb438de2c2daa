"""Supernet training with single-path sampling inside a mask (warm-up and leaf training).

One call of ``train_epoch`` = one pass over a loader. ``sampling="uniform"``: for every batch one
architecture is drawn uniformly inside the mask (``space.sample(mask, generator)``), activated with
``supernet.set_arch`` and trained with cross-entropy. ``sampling="fair"`` (FairNAS's strict
fairness): for every batch the m archs of ``space.fair_archs`` (every enabled candidate of every
decision exactly once) each run forward/backward on the batch, their gradients are averaged, and one
optimiser step follows: m times the compute of a uniform epoch, but every candidate trains on every
batch (under uniform sampling a convolution of NB201 trains on a fifth of the batches while the
parameter-free candidates need no training, which biases short trainings towards them). All randomness comes from the loader's
(seed, epoch) and the caller's ``generator`` (a ``torch.Generator``, mutated in place: save
``generator.get_state()`` with the checkpoint and ``set_state`` it on resume).

Optimiser: SGD (momentum 0.9, Nesterov, weight decay 5e-4) with a cosine schedule stepped once
per *batch* (``T_max = epochs * steps_per_epoch``); build both with ``build_optimizer`` /
``build_scheduler`` from an ``OptimConfig``. Both are ``state_dict``-friendly.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..choices import SAMPLINGS
from ..spaces.base import SearchSpace, Supernet


@dataclass
class OptimConfig:
    """SGD + cosine settings. ``lr`` is a tunable (NB201 one-shot work: 0.025-0.05; NAS-LID's
    released code: 0.001). ``grad_clip``: max global grad norm (None: off; NB201 uses 5)."""

    lr: float = 0.025
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    eta_min: float = 0.0
    grad_clip: float | None = 5.0

    def validate(self) -> "OptimConfig":
        for name in ("lr", "weight_decay", "eta_min"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"OptimConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"OptimConfig.lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"OptimConfig.momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("OptimConfig: nesterov needs momentum > 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"OptimConfig.grad_clip must be > 0 or None, got {self.grad_clip}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def optim_config(train) -> OptimConfig:
    """The (validated) ``OptimConfig`` of a search config's ``train`` section: what the pipeline's
    nodes and ``naslid.studies.standalone``'s cells train with."""
    return OptimConfig(lr=train.lr, momentum=train.momentum, nesterov=train.nesterov,
                       weight_decay=train.weight_decay, grad_clip=train.grad_clip).validate()


def build_optimizer(parameters: Iterable[nn.Parameter] | nn.Module, cfg: OptimConfig
                    ) -> torch.optim.SGD:
    """SGD over ``parameters`` (or a module's) with ``cfg``'s lr/momentum/nesterov/weight decay."""
    cfg.validate()
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, *, epochs: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Cosine annealing from ``cfg.lr`` to ``cfg.eta_min`` over ``epochs * steps_per_epoch``
    batch steps (pass it to ``train_epoch``, which steps it after every batch)."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"build_scheduler: epochs must be a positive int, got {epochs!r}")
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"build_scheduler: steps_per_epoch must be a positive int, got "
                         f"{steps_per_epoch!r}")
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch,
                                                      eta_min=cfg.eta_min)


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (architecture sampling lives on the CPU)."""
    return torch.Generator().manual_seed(int(seed))


def train_epoch(space: SearchSpace, supernet: Supernet, mask: Mapping, loader: Iterable,
                optimizer: torch.optim.Optimizer, *, generator: torch.Generator,
                device: torch.device | str = "cpu", scheduler=None, grad_clip: float | None = None,
                max_batches: int | None = None, progress: bool = False, desc: str = "train",
                after_backward: Callable[[nn.Module], None] | None = None,
                sampling: str = "uniform") -> dict:
    """Train ``supernet`` for one pass over ``loader`` with uniform single-path sampling in ``mask``.

    Args:
        space, supernet: the search space and its supernet (already on ``device``).
        mask: ``dict[str, BoolTensor]`` of the (sub-)supernet; validated against ``space``.
        loader: iterable of (x float32 (B, C, H, W), y int64 (B,)), e.g. ``data.BatchLoader``
            (call its ``set_epoch`` first).
        optimizer: e.g. ``build_optimizer``; ``scheduler`` (optional) is stepped after every batch.
        generator: CPU generator for the per-batch architecture draws (mutated in place).
        grad_clip: max global gradient norm, or None.
        max_batches: stop after this many batches (CPU-scale runs, tests).
        after_backward: called with ``supernet`` after every backward pass of a step, before
            clipping and the optimiser step (data-parallel training: ``GradAllReduce``). Every rank
            must draw the same archs, i.e. use generators with the same seed/state.
        sampling: ``"uniform"`` or ``"fair"`` (see the module docstring).
    Returns ``{"loss": mean loss, "acc": accuracy %, "samples": n, "batches": b, "lr": last lr,
    "images_per_s": forward/backward images per wall second}`` (sample-weighted means). FloatingPointError on a non-finite loss, naming the batch.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"train_epoch: sampling must be one of {SAMPLINGS}, got {sampling!r}")
    mask = space.validate_mask(mask)
    supernet.train()
    it = iter(loader)
    bar = _epoch_bar(loader, max_batches, desc) if progress else None
    stats = _EpochStats()
    try:
        for x, y in it:
            if max_batches is not None and stats.batches >= max_batches:
                break
            archs = [space.sample(mask, generator)] if sampling == "uniform" else space.fair_archs(mask, generator)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss, logits = _train_step(space, supernet, archs, x, y, optimizer, batch=stats.batches,
                                       scheduler=scheduler, grad_clip=grad_clip, after_backward=after_backward)
            stats.add(loss, logits, y, len(archs))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{stats.loss_sum / stats.samples:.3f}")
    finally:
        if bar is not None:
            bar.close()
    return stats.result(optimizer)


def _epoch_bar(loader: Iterable, max_batches: int | None, desc: str) -> tqdm:
    """A progress bar over the loader's batches (at most ``max_batches``)."""
    total = len(loader) if hasattr(loader, "__len__") else None
    if max_batches is not None and total is not None:
        total = min(total, max_batches)
    return tqdm(total=total, desc=desc, leave=False)


def _train_step(space: SearchSpace, supernet: Supernet, archs: list[dict], x: torch.Tensor, y: torch.Tensor,
                optimizer: torch.optim.Optimizer, *, batch: int, scheduler, grad_clip: float | None,
                after_backward: Callable[[nn.Module], None] | None) -> tuple[float, torch.Tensor]:
    """One optimiser step on the batch x (B, C, H, W), y (B,): forward/backward of every arch of
    ``archs``, the gradients averaged over them. Returns (mean loss over the archs, the last
    arch's logits (B, num_classes), detached). FloatingPointError on a non-finite loss."""
    optimizer.zero_grad(set_to_none=True)
    loss_mean = 0.0
    for arch in archs:
        supernet.set_arch(arch)
        logits = supernet(x)
        loss = F.cross_entropy(logits, y)
        value = float(loss.detach())  # the one host sync per forward
        if not math.isfinite(value):
            raise FloatingPointError(
                f"train_epoch: non-finite loss {value} at batch {batch} (arch "
                f"{space.arch_to_string(arch)}); lower the learning rate")
        (loss / len(archs)).backward()
        loss_mean += value / len(archs)
    if after_backward is not None:
        after_backward(supernet)
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss_mean, logits.detach()


class _EpochStats:
    """Sample-weighted loss, correct predictions (counted on the device: no host sync per batch),
    samples, batches and forward/backward throughput of one epoch."""

    def __init__(self):
        self.loss_sum, self.correct, self.samples, self.batches = 0.0, 0, 0, 0
        self.archs_per_batch = 1
        self.t0 = time.perf_counter()

    def add(self, loss: float, logits: torch.Tensor, y: torch.Tensor, archs: int) -> None:
        """A batch with labels y (B,), mean loss ``loss`` and logits (B, num_classes) trained with
        ``archs`` archs."""
        bs = y.numel()
        self.loss_sum += loss * bs
        self.correct = self.correct + (logits.argmax(1) == y).sum()  # stays on the device
        self.samples += bs
        self.batches += 1
        self.archs_per_batch = archs

    def result(self, optimizer: torch.optim.Optimizer) -> dict:
        """``train_epoch``'s dict; ValueError when no batch was trained."""
        n = self.samples
        if n == 0:
            raise ValueError("train_epoch: the loader yielded no batches")
        return {"loss": self.loss_sum / n, "acc": 100.0 * int(self.correct) / n, "samples": n,
                "batches": self.batches, "lr": float(optimizer.param_groups[0]["lr"]),
                "images_per_s": n * self.archs_per_batch / max(time.perf_counter() - self.t0, 1e-9)}


def reinit_parameters(module: nn.Module, seed: int) -> nn.Module:
    """Re-initialise ``module`` in place as if freshly built (the leaves' ``reinit`` option).

    Calls ``reset_parameters()`` on every submodule that has one (conv, linear, BN) and resets BN
    running statistics, drawing from a private RNG seeded with ``seed`` (the global RNG state is
    restored afterwards). Returns ``module``.
    """
    devices = [p.device for p in module.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=sorted({d.index or 0 for d in devices}) if devices else []):
        torch.manual_seed(int(seed))
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.reset_parameters()  # also resets running stats
            elif hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
    return module
