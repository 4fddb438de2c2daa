"""Accuracy and cross-entropy of one architecture with weights inherited from a (sub-)supernet.

Scores (``SCORES``): ``"acc"`` (top-1 accuracy %) or ``"loss"`` (fitness = minus the mean
cross-entropy, so higher is better either way). Loss has no ties: on a few thousand images many
cells share an accuracy, while their mean losses differ, which a ranking needs.

BatchNorm handling (``bn=``):

``"recalibrate"`` (default)  reset every BN layer's running statistics, forward the calibration
                             batches (training-set images, no augmentation) in train mode without
                             gradients, accumulating a cumulative average (``momentum=None``), then
                             evaluate in eval mode with those statistics (SPOS / OFA practice).
``"batch"``                  evaluate with BN in train mode: each validation batch is normalised
                             with its own statistics (no calibration pass; results depend on the
                             batch composition, which ``fixed_batches`` keeps fixed).

Either way ``evaluate_arch`` has no lasting side effect: BN buffers, momenta and the train/eval
mode of every module are restored afterwards, so evaluating never changes a later training run or
checkpoint. Pre-fetch the batches once (``data.fixed_batches``) and reuse them for every arch.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces.base import SearchSpace, Supernet

from ..choices import EVAL_BN_MODES, SCORES
Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def _bn_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class _Preserve:
    """Context manager restoring BN buffers/momenta and every module's ``training`` flag."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.bn = [(m, m.momentum, {k: v.clone() for k, v in m.named_buffers(recurse=False)
                                    if v is not None})
                   for m in _bn_layers(self.module)]
        return self

    def __exit__(self, *exc):
        for m, momentum, bufs in self.bn:
            m.momentum = momentum
            for k, v in bufs.items():
                getattr(m, k).copy_(v)
        for m, mode in self.modes:
            m.training = mode
        return False


@torch.no_grad()
def recalibrate_bn(supernet: nn.Module, calib_batches: Batches, device: torch.device | str = "cpu"
                   ) -> None:
    """Reset all BN running stats and re-estimate them as the exact average over
    ``calib_batches`` (list of (x (B, C, H, W), y)) of the currently active path; leaves the
    supernet in eval mode. Permanently changes the BN buffers (``evaluate_arch`` restores them)."""
    if not calib_batches:
        raise ValueError("recalibrate_bn: calib_batches is empty")
    bns = _bn_layers(supernet)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the calibration batches
    supernet.train()
    for x, _ in calib_batches:
        supernet(x.to(device))
    supernet.eval()


@torch.no_grad()
def classify(model: nn.Module, batches: Batches, device: torch.device | str = "cpu") -> dict:
    """``{"acc": top-1 accuracy %, "loss": mean cross-entropy}`` of ``model`` (in its current
    mode) over ``batches`` (list of (x (B, C, H, W), y (B,)))."""
    correct, loss, n = 0, 0.0, 0
    for x, y in batches:
        logits = model(x.to(device))
        y = y.to(device)
        correct = correct + (logits.argmax(1) == y).sum()  # no per-batch host sync
        loss = loss + F.cross_entropy(logits.float(), y, reduction="sum")
        n += y.numel()
    if n == 0:
        raise ValueError("classify: no samples in the validation batches")
    return {"acc": 100.0 * int(correct) / n, "loss": float(loss) / n}


def accuracy(model: nn.Module, batches: Batches, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy in percent of ``model`` (in its current mode) over ``batches``."""
    return classify(model, batches, device)["acc"]


def fitness(metrics: Mapping[str, float], score: str) -> float:
    """The search's fitness of an arch's ``classify`` metrics: accuracy %, or minus the loss."""
    if score not in SCORES:
        raise ValueError(f"fitness: score must be one of {SCORES}, got {score!r}")
    return float(metrics["acc"]) if score == "acc" else -float(metrics["loss"])


def evaluate_arch(space: SearchSpace, supernet: Supernet, arch: Mapping[str, str],
                  valid_batches: Batches, *, bn: str = "recalibrate",
                  calib_batches: Batches | None = None, device: torch.device | str = "cpu"
                  ) -> float:
    """Validation accuracy (%) of ``arch`` with ``supernet``'s weights (``arch_metrics``'s "acc")."""
    return arch_metrics(space, supernet, arch, valid_batches, bn=bn, calib_batches=calib_batches,
                        device=device)["acc"]


def arch_metrics(space: SearchSpace, supernet: Supernet, arch: Mapping[str, str],
                 valid_batches: Batches, *, bn: str = "recalibrate",
                 calib_batches: Batches | None = None, device: torch.device | str = "cpu"
                 ) -> dict:
    """``classify`` metrics ({"acc" %, "loss"}) of ``arch`` with ``supernet``'s weights.

    Args:
        valid_batches: list of (x float32 (B, C, H, W), y int64 (B,)) — validation split only.
        bn: ``"recalibrate"`` (needs ``calib_batches``: training-split batches) or ``"batch"``.
    The supernet's BN buffers and modes are restored afterwards (no side effect).
    """
    if bn not in EVAL_BN_MODES:
        raise ValueError(f"evaluate_arch: bn must be one of {EVAL_BN_MODES}, got {bn!r}")
    if bn == "recalibrate" and not calib_batches:
        raise ValueError("evaluate_arch: bn='recalibrate' needs non-empty calib_batches")
    arch = space.validate_arch(arch)
    with _Preserve(supernet):
        supernet.set_arch(arch)
        if bn == "recalibrate":
            recalibrate_bn(supernet, calib_batches, device)
        else:
            supernet.eval()
            for m in _bn_layers(supernet):
                m.train()
        return classify(supernet, valid_batches, device)


class SubnetEvaluator:
    """``evaluator(arch) -> fitness`` over several (sub-)supernets: the arch is evaluated with the
    first leaf whose mask contains it (leaves of a split tree partition the space). Fitness is the
    accuracy % (``score="acc"``) or minus the mean cross-entropy (``score="loss"``);
    ``metrics(arch)`` gives both.

    ``leaves``: sequence of (mask, supernet). Results are cached by the exact arch string (not
    the canonical key: isomorphic archs run different paths through the shared weights);
    ``cache`` maps arch string -> {"acc", "loss"} and can be saved/restored for resuming.
    """

    def __init__(self, space: SearchSpace, leaves: Sequence[tuple[Mapping, Supernet]],
                 valid_batches: Batches, *, bn: str = "recalibrate",
                 calib_batches: Batches | None = None, device: torch.device | str = "cpu",
                 score: str = "acc"):
        if not leaves:
            raise ValueError("SubnetEvaluator: no leaves given")
        if bn not in EVAL_BN_MODES:
            raise ValueError(f"SubnetEvaluator: bn must be one of {EVAL_BN_MODES}, got {bn!r}")
        if bn == "recalibrate" and not calib_batches:
            raise ValueError("SubnetEvaluator: bn='recalibrate' needs non-empty calib_batches")
        if not valid_batches:
            raise ValueError("SubnetEvaluator: valid_batches is empty")
        if score not in SCORES:
            raise ValueError(f"SubnetEvaluator: score must be one of {SCORES}, got {score!r}")
        self.score = score
        self.space = space
        self.leaves = [(space.validate_mask(m), s) for m, s in leaves]
        self.valid_batches, self.calib_batches = valid_batches, calib_batches
        self.bn, self.device = bn, device
        self.cache: dict[str, dict] = {}

    @property
    def masks(self) -> list[dict]:
        return [m for m, _ in self.leaves]

    def leaf_index(self, arch: Mapping[str, str]) -> int:
        """Index of the first leaf whose mask contains ``arch``; ValueError if none does."""
        for i, (m, _) in enumerate(self.leaves):
            if self.space.mask_contains(m, arch):
                return i
        raise ValueError(f"SubnetEvaluator: arch {self.space.arch_to_string(arch)} is in no "
                         f"leaf's mask")

    def metrics(self, arch: Mapping[str, str]) -> dict:
        """{"acc": %, "loss": mean cross-entropy} of ``arch`` on the fixed validation batches."""
        key = self.space.arch_to_string(arch)
        if key not in self.cache:
            _, net = self.leaves[self.leaf_index(arch)]
            self.cache[key] = arch_metrics(self.space, net, arch, self.valid_batches, bn=self.bn,
                                           calib_batches=self.calib_batches, device=self.device)
        return self.cache[key]

    def __call__(self, arch: Mapping[str, str]) -> float:
        return fitness(self.metrics(arch), self.score)

    def evaluate_many(self, archs: Sequence[Mapping[str, str]], progress: bool = False
                      ) -> list[float]:
        it: Sequence = archs
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(archs, desc="evaluate", leave=False)
        return [self(a) for a in it]

