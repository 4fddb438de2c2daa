"""BatchNorm's own bookkeeping, written once for the forwards that call its kernel themselves (the
elastic blocks' channel slices, the low-memory probe's in-place BatchNorm): what
``nn.BatchNorm2d.forward`` passes to ``F.batch_norm``, and that call written over its input."""
from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def uses_batch_stats(bn: _BatchNorm) -> bool:
    """Whether ``bn`` normalises with batch statistics (without touching its counters)."""
    return bn.training or (bn.running_mean is None and bn.running_var is None)


def batch_norm_args(bn: _BatchNorm) -> tuple[bool, torch.Tensor | None, torch.Tensor | None, float]:
    """What ``nn.BatchNorm2d.forward`` passes to ``F.batch_norm``, with its ``num_batches_tracked``
    update (momentum None: the cumulative average's factor 1 / count): (use batch statistics,
    running mean or None, running var or None, momentum factor)."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    keep = not bn.training or bn.track_running_stats
    mean, var = (bn.running_mean, bn.running_var) if keep else (None, None)
    return uses_batch_stats(bn), mean, var, factor


def batch_norm_(bn: _BatchNorm, t: torch.Tensor) -> torch.Tensor:
    """``bn(t)`` written over ``t`` (B, C, H, W), with the module's own kernel and bookkeeping
    (running statistics and ``num_batches_tracked`` updated as ``bn.forward`` does). Returns ``t``."""
    use_batch, mean, var, factor = batch_norm_args(bn)
    c = t.shape[1]
    save_mean = t.new_empty(c if use_batch else 0)
    save_invstd = t.new_empty(c if use_batch else 0)
    torch.ops.aten.native_batch_norm.out(t, bn.weight, bn.bias, mean, var, use_batch, factor, bn.eps,
                                         out=t, save_mean=save_mean, save_invstd=save_invstd)
    return t
