"""Per-op vectors of the split step: LID vectors (NAS-LID) and flattened gradients (GM-NAS).

Both run the supernet on one batch ``x`` (B, C, H, W) with the single path already set by
``supernet.set_arch``. ``probe_state`` puts the supernet in the probing mode (BatchNorm train or
eval) and restores its training flag and BatchNorm running statistics afterwards, so a split step
leaves the supernet's state as it found it (gradients excepted: ``grad_vector`` leaves ``.grad``
set to None).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextlib.contextmanager
def probe_state(supernet: nn.Module, bn_mode: str = "train") -> Iterator[None]:
    """Set ``supernet.train(bn_mode == 'train')``; restore mode and BN buffers on exit."""
    if bn_mode not in ("train", "eval"):
        raise ValueError(f"probe_state: bn_mode={bn_mode!r} is not one of ['train', 'eval']")
    was_training = supernet.training
    saved = [(m, {n: b.detach().clone() for n, b in m.named_buffers(recurse=False) if b is not None})
             for m in supernet.modules() if isinstance(m, _BatchNorm)]
    supernet.train(bn_mode == "train")
    try:
        yield
    finally:
        with torch.no_grad():
            for m, bufs in saved:
                for n, b in bufs.items():
                    getattr(m, n).copy_(b)
        supernet.train(was_training)


def lid_vector(supernet: nn.Module, x: torch.Tensor, *, k: int = 20, estimator: str = "naslid",
               backend: str = "auto", stats: dict | None = None,
               probe_chunks: int | str = "auto") -> torch.Tensor:
    """LID of each of ``supernet.lid_layers()``'s outputs on batch ``x`` (B, ...), computed during
    the forward (the tap reduces each output as it is produced and keeps nothing), without autograd.

    ``stats``: if given, ``stats["lid_seconds"]`` is increased by the time spent in the LID ops.
    ``probe_chunks``: NB201 cells and reduction blocks run their low-memory forward in that many
    batch chunks (``naslid.spaces.cell_low_memory``; equal to the plain forward up to rounding);
    0: the plain forward; ``auto``: 8 chunks for inputs of at least 64 MiB (``SplitConfig``).
    Returns a float64 CPU tensor (L,)."""
    from naslid.spaces.cell_low_memory import low_memory_forward
    from naslid.spaces.taps import FeatureTap

    with torch.no_grad(), low_memory_forward(supernet, probe_chunks), \
            FeatureTap(supernet, reduce="lid", k=k, estimator=estimator, reduction="mean",
                       backend=backend) as tap:
        supernet(x)
    if stats is not None:
        stats["lid_seconds"] = stats.get("lid_seconds", 0.0) + tap.reduce_seconds
    return tap.lid_vector().detach().to(device="cpu", dtype=torch.float64)


def grad_vector(supernet: nn.Module, x: torch.Tensor, y: torch.Tensor, params: list[nn.Parameter],
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                out_device: torch.device | str | None = "cpu", out: torch.Tensor | None = None) -> torch.Tensor:
    """GM-NAS: the flattened gradient of ``loss_fn(supernet(x), y)`` w.r.t. ``params`` (the shared
    parameters: every parameter except the split decision's) after one forward/backward.

    Gradients are zeroed (set to None) before and after; a parameter off the active path
    contributes zeros so every op's vector has the same length P = sum(p.numel()).
    Returns a float32 tensor (P,) on ``out_device`` (default CPU, as GM-NAS copies each op's
    gradient off the accelerator; None keeps it on the parameters' device). ``out`` (P,) float32:
    write into it instead (``out_device`` is then ignored) and return it."""
    supernet.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = loss_fn(supernet(x), y)
        if loss.dim() != 0:
            raise ValueError(f"grad_vector: loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        loss.backward()
    total = sum(p.numel() for p in params)
    if out is not None:
        if out.shape != (total,):
            raise ValueError(f"grad_vector: out must have shape ({total},), got {tuple(out.shape)}")
        flat = out
        flat.zero_()
    else:
        dev = params[0].device if out_device is None and params else (out_device or "cpu")
        flat = torch.zeros(total, dtype=torch.float32, device=dev)
    offset = 0
    for p in params:
        n = p.numel()
        if p.grad is not None:
            flat[offset:offset + n].copy_(p.grad.reshape(-1))
        offset += n
    supernet.zero_grad(set_to_none=True)
    return flat
