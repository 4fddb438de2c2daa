"""The NB201 cell's low-memory forward without autograd (the LID split step's probing forward).

The plain cell forward (``cell_blocks.cell_forward``) keeps, at its peak, the cell input, two node
sums and an edge's full-size ReLU and convolution outputs: about six cell-sized tensors. This one
keeps the cell input, two node tensors and a few batch chunks (``chunks`` per batch):

- every edge runs in batch chunks (ReLU, convolution, average pooling and ``x * 0`` are per sample),
  so no full-size ReLU or convolution output exists;
- an edge that is the last reader of a node the cell owns writes its output over that node, chunk by
  chunk (chunk b of the output depends only on chunk b of the input);
- train-mode BatchNorm needs the whole batch's statistics: where the edge's output lands in an empty
  buffer or over its own input, the convolution's chunks are written first and the module's own
  BatchNorm then runs in place over the whole tensor (``batch_norm_``: the same kernel and rounding
  as ``nn.BatchNorm2d``); where it must be added into a node that already holds a sum (``edge_add``),
  the convolution runs twice, once for the statistics (chunk moments merged in float64) and once to
  normalise and add (``two-pass``).

Order (x the cell input, A and B the two buffers; IEEE addition is commutative, and the sums are
associated as in the plain forward: node 2 = e20 + e21, node 3 = (e31 + e30) + e32)::

    A := e10(x)                      node 1
    B := e21(A) or e20(x)            node 2's cheaper-to-add edge is added, the other written
    B += the other                   (two-pass when it is a train-mode convolution)
    A := e31(A)                      over node 1: its last reader
    A += e30(x)                      two-pass when a train-mode convolution (x is the caller's)
    B := e32(B); A += B              over node 2: its last reader; returns A (node 3)

Costs: the convolutions of edges e30 and of one of e20/e21 run twice when they are train-mode
convolutions (at most 8 convolutions instead of 6 per cell). Results equal the plain forward's up
to rounding: the batch statistics of the two-pass edges are summed in another order, and the
convolution library may round a chunk differently from the whole batch (the tests bound both).

Shapes: x (B, C, H, W) -> (B, C, H, W). Use ``low_memory_forward(module, chunks)`` (a context
manager) to switch every NB201 cell and reduction block inside ``module`` to this forward; it
applies only where autograd is off (``torch.no_grad``), the plain forward runs otherwise.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..validation import auto_or_integer
from .batch_norm import batch_norm_, batch_norm_args, uses_batch_stats


def _is_conv_bn(op: nn.Module) -> bool:
    """ReLU -> Conv2d -> BatchNorm2d (``cell_blocks.ReLUConvBN``, any stride)."""
    return (isinstance(op, nn.Sequential) and len(op) == 3 and isinstance(op[0], nn.ReLU)
            and isinstance(op[1], nn.Conv2d) and isinstance(op[2], _BatchNorm))


def _needs_two_passes(op: nn.Module) -> bool:
    """Whether adding ``op``'s output into a filled node needs the convolution twice."""
    return _is_conv_bn(op) and uses_batch_stats(op[2])


def _chunks(n: int, chunks: int) -> list[slice]:
    """``chunks`` (at most n) contiguous slices covering range(n)."""
    step = max(1, math.ceil(n / max(1, chunks)))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def _per_sample(op: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The op applied to a batch chunk, for the ops whose output sample b depends on input sample b
    only (no batch statistics): None for a train-mode ReLUConvBN and for unknown modules."""
    from .cell_blocks import AvgPool3x3, Zero

    if isinstance(op, (nn.Identity, Zero, AvgPool3x3)):
        return op
    if _is_conv_bn(op) and not uses_batch_stats(op[2]):
        return op  # eval-mode BatchNorm: running statistics, per sample
    return None


def edge_write(op: nn.Module, src: torch.Tensor, dst: torch.Tensor | None, chunks: int) -> torch.Tensor:
    """``dst := op(src)``, chunk by chunk. ``dst`` is an empty buffer of the output's shape (None:
    allocate it from the first chunk's output), or ``src`` itself when this edge is src's last reader
    and keeps its shape (the output is then written over its input). Returns ``dst``."""
    if isinstance(op, nn.Identity):
        if dst is None:
            return src.clone()
        return dst if dst is src else dst.copy_(src)
    conv_bn = _needs_two_passes(op)  # train-mode ReLUConvBN: chunks written, then BatchNorm in place
    fn = (lambda t: op[1](op[0](t))) if conv_bn else _per_sample(op)
    if fn is None or src.shape[0] == 0:  # an op this forward does not know, or no samples: run it whole
        y = op(src)
        return y if dst is None else dst.copy_(y)
    for s in _chunks(src.shape[0], chunks):
        y = fn(src[s])
        if dst is None:
            dst = y.new_empty((src.shape[0],) + tuple(y.shape[1:]))
        dst[s].copy_(y)
        del y
    return batch_norm_(op[2], dst) if conv_bn else dst


def _two_pass_stats(op: nn.Sequential, src: torch.Tensor,
                    chunks: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Batch mean and biased variance per channel of ``conv(relu(src))`` (B, C_out, H, W), from
    chunk moments merged in float64 (Chan et al.'s pairwise update). Returns (mean, var, count)."""
    relu, conv = op[0], op[1]
    mean = m2 = None
    count = 0
    for s in _chunks(src.shape[0], chunks):
        y = conv(relu(src[s]))
        n_b = y.numel() // y.shape[1]
        var_b, mean_b = (v.double() for v in torch.var_mean(y, dim=(0, 2, 3), correction=0))
        del y
        if mean is None:
            mean, m2 = mean_b, var_b * n_b
        else:
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + var_b * n_b + delta * delta * (count * n_b / total)
        count += n_b
    return mean, m2 / count, count


def edge_add(op: nn.Module, src: torch.Tensor, dst: torch.Tensor, chunks: int) -> torch.Tensor:
    """``dst += op(src)`` with ``src`` left unchanged (it is read again later, or the caller's),
    chunk by chunk. A train-mode ReLUConvBN runs its convolution twice (``_two_pass_stats``, then
    normalise and add); its BatchNorm's running statistics and counter are updated as its forward
    would. Returns ``dst``."""
    if isinstance(op, nn.Identity):
        return dst.add_(src)
    if src.shape[0] == 0:
        return dst.add_(op(src))
    if _needs_two_passes(op):
        relu, conv, bn = op[0], op[1], op[2]
        _, run_mean, run_var, factor = batch_norm_args(bn)
        mean, var, count = _two_pass_stats(op, src, chunks)
        if run_mean is not None:
            run_mean.mul_(1.0 - factor).add_(mean.to(run_mean.dtype), alpha=factor)
        if run_var is not None:
            unbiased = var * (count / max(count - 1, 1))
            run_var.mul_(1.0 - factor).add_(unbiased.to(run_var.dtype), alpha=factor)
        invstd = torch.rsqrt(var + bn.eps)
        scale = invstd if bn.weight is None else invstd * bn.weight.double()
        shift = -mean * scale if bn.bias is None else bn.bias.double() - mean * scale
        shape = (1, -1, 1, 1)
        scale = scale.to(dst.dtype).view(shape)
        shift = shift.to(dst.dtype).view(shape)
        for s in _chunks(src.shape[0], chunks):
            y = conv(relu(src[s]))
            dst[s].add_(y.mul_(scale).add_(shift))
            del y
        return dst
    fn = _per_sample(op)
    if fn is None:
        return dst.add_(op(src))
    for s in _chunks(src.shape[0], chunks):
        dst[s].add_(fn(src[s]))
    return dst


def cell_forward_low_memory(x: torch.Tensor, op_of: Callable[[str], nn.Module], chunks: int) -> torch.Tensor:
    """The 4-node NB201 DAG (node_i = sum_{j<i} op_ij(node_j); returns node 3) in two buffers besides
    the input ``x`` (B, C, H, W); ``op_of(key)`` is edge ``key``'s active op module. No autograd."""
    a = edge_write(op_of("edge_1_0"), x, torch.empty_like(x), chunks)           # node 1
    e20, e21 = op_of("edge_2_0"), op_of("edge_2_1")
    b = torch.empty_like(x)
    if _needs_two_passes(e20) and not _needs_two_passes(e21):
        edge_add(e21, a, edge_write(e20, x, b, chunks), chunks)                  # node 2
    else:
        edge_add(e20, x, edge_write(e21, a, b, chunks), chunks)
    edge_write(op_of("edge_3_1"), a, a, chunks)                                  # over node 1
    edge_add(op_of("edge_3_0"), x, a, chunks)
    a.add_(edge_write(op_of("edge_3_2"), b, b, chunks))                          # over node 2
    return a


def reduction_forward_low_memory(x: torch.Tensor, block: nn.Module, chunks: int) -> torch.Tensor:
    """NB201's ResNet reduction block (``cell_blocks.ResNetBasicBlock``: conv_a (stride 2) -> conv_b,
    plus the shortcut avg-pool -> 1x1 convolution) in one output-sized buffer besides the input
    ``x`` (B, C_in, H, W) -> (B, C_out, H/2, W/2). No autograd."""
    out = edge_write(block.conv_a, x, None, chunks)
    edge_write(block.conv_b, out, out, chunks)       # over conv_a's output: its last reader
    for s in _chunks(x.shape[0], chunks):            # shortcut + residual (per sample, no BN)
        out[s].add_(block.downsample(x[s]))
    return out


#: ``probe_chunks="auto"``: the low-memory forward in this many chunks, for inputs of at least
#: ``AUTO_MIN_BYTES`` (a cell-sized tensor of 64 MiB: NB201 C = 16 at 224 px from batch 21 on; at
#: 32 px from batch 1,024): below it the memory saved is small and the plain forward is faster.
AUTO_CHUNKS = 8
AUTO_MIN_BYTES = 64 * 2**20


def resolve_chunks(chunks: int | str, where: str = "probe_chunks") -> tuple[int, int]:
    """``chunks`` ("auto" or an int >= 0) as (chunks, minimum input bytes); ValueError naming
    ``where`` otherwise."""
    auto_or_integer(where, chunks, 0)  # the same rule as SplitConfig.probe_chunks
    return (AUTO_CHUNKS, AUTO_MIN_BYTES) if chunks == "auto" else (chunks, 0)


def use_low_memory(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module`` (an NB201 cell or reduction block) runs its low-memory forward on ``x``:
    chunks set, autograd off, and ``x`` at least the module's minimum size."""
    return bool(module.low_memory_chunks) and not torch.is_grad_enabled() and \
        x.numel() * x.element_size() >= module.low_memory_min_bytes


@contextlib.contextmanager
def low_memory_forward(module: nn.Module, chunks: int | str = "auto") -> Iterator[None]:
    """Within the block, every NB201 cell and reduction block inside ``module`` (the modules with a
    ``low_memory_chunks`` attribute) runs ``cell_forward_low_memory`` / ``reduction_forward_low_memory``
    with ``chunks`` batch chunks whenever autograd is off (``use_low_memory``); ``chunks=0`` keeps the
    plain forward; ``"auto"``: ``AUTO_CHUNKS`` chunks for inputs of at least ``AUTO_MIN_BYTES``. The
    previous settings come back on exit."""
    n, min_bytes = resolve_chunks(chunks, "low_memory_forward: chunks")
    cells = [m for m in module.modules() if hasattr(m, "low_memory_chunks")]
    before = [(m.low_memory_chunks, m.low_memory_min_bytes) for m in cells]
    for m in cells:
        m.low_memory_chunks, m.low_memory_min_bytes = n, min_bytes
    try:
        yield
    finally:
        for m, (c, b) in zip(cells, before):
            m.low_memory_chunks, m.low_memory_min_bytes = c, b
