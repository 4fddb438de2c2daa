"""NAS-Bench-201 building blocks: the five cell operations, the ResNet reduction block, the cell.

Semantics follow NAS-Bench-201 (Dong & Yang, ICLR 2020) exactly, because parameter counts and
weight shapes are checked against the benchmark:

- ``nor_conv_kxk`` = ReLU -> Conv2d(k, stride 1, padding k//2, no bias) -> BatchNorm2d (affine);
- ``avg_pool_3x3`` = AvgPool2d(3, stride 1, padding 1, count_include_pad=False) (no parameters: inside
  a cell the input and output widths are equal, so NB201's 1x1 pre-projection never exists);
- ``skip_connect`` = identity; ``none`` = zero (``x * 0``, NB201's ``Zero``);
- ResNet basic block (stride 2): ReLU-Conv3x3(s2)-BN -> ReLU-Conv3x3-BN, plus a shortcut
  AvgPool2d(2, 2) -> Conv1x1 (no bias, no BN);
- a cell has 4 nodes; node i (1..3) is the sum of op(node j) over j < i; the cell outputs node 3.

All modules map (B, C, H, W) -> (B, C, H, W), except the reduction block: (B, C_in, H, W) ->
(B, C_out, H/2, W/2).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn

from .base import add_into
from .cell_low_memory import cell_forward_low_memory, reduction_forward_low_memory, use_low_memory

#: NB201's operation order (``NAS_BENCH_201`` in the benchmark's code); candidate i of every edge.
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The 6 edges of a cell as (to_node, from_node), in NB201's string order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

#: Decision keys of the edges, same order: ``edge_<to>_<from>``.
NB201_EDGE_KEYS: tuple[str, ...] = tuple(f"edge_{i}_{j}" for i, j in NB201_EDGES)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(C_in, C_out, k, stride, padding k//2, bias=False) -> BatchNorm2d(C_out).

    x (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2,
                      bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class Zero(nn.Module):
    """NB201's ``none``: the input times zero (same shape, keeps NaN/Inf semantics of ``x * 0``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class AvgPool3x3(nn.AvgPool2d):
    """NB201's ``avg_pool_3x3`` inside a cell: 3x3, stride 1, padding 1, padding not counted."""

    def __init__(self):
        super().__init__(3, stride=1, padding=1, count_include_pad=False)


def make_op(name: str, channels: int, affine: bool = True,
            track_running_stats: bool = True) -> nn.Module:
    """One NB201 cell operation with ``channels`` in and out, stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine, track_running_stats)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine, track_running_stats)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"make_op: unknown NB201 operation {name!r}; choose one of {list(NB201_OPS)}")


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: (B, C_in, H, W) -> (B, C_out, H/2, W/2); H and W must be even."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine, track_running_stats)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine, track_running_stats)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    #: as ``NB201Cell.low_memory_chunks``
    low_memory_chunks: int = 0
    low_memory_min_bytes: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_low_memory(self, x):
            return reduction_forward_low_memory(x, self, self.low_memory_chunks)
        return add_into(self.downsample(x), self.conv_b(self.conv_a(x)))


def cell_forward(x: torch.Tensor, edge_fn) -> torch.Tensor:
    """Run the 4-node NB201 DAG: node_i = sum_{j<i} edge_fn(key_ij, node_j); return node 3.

    Lean: the edges run in the order that keeps the fewest cell-sized tensors alive (node 1's two
    consumers first, so that node 1 is dropped before node 2 is complete; the cell input stays
    alive anyway, its caller and the module's hooks hold it), and the sums accumulate in place
    (``add_into``). The additions are those of the plain sum (node 2 = e20 + e21, node 3 =
    (e30 + e31) + e32, IEEE addition being commutative), so the output is bit-identical; the edge
    ops are independent of each other (each its own modules, no randomness), so their order is free.
    """
    n1 = edge_fn("edge_1_0", x)
    n3 = edge_fn("edge_3_1", n1)
    n2 = edge_fn("edge_2_1", n1)
    # With autograd on, node 1 has been fed to two ops that may have saved it (average pooling
    # does): it must not be overwritten even where n2 or n3 is node 1 itself (skip_connect); the
    # memory matters under no_grad (the LID split step), where nothing saves it and it goes now.
    used = (x, n1) if torch.is_grad_enabled() else (x,)
    del n1
    # n2 and n3 may both be node 1 itself (skip_connect edges): each protects the other
    n2 = add_into(n2, edge_fn("edge_2_0", x), used + (n3,))
    n3 = add_into(n3, edge_fn("edge_3_0", x), used + (n2,))
    return add_into(n3, edge_fn("edge_3_2", n2), used + (n2,))


class NB201Cell(nn.Module):
    """A fixed NB201 cell (NB201's ``InferCell``): one op module per edge, ``none`` edges included.

    x (B, C, H, W) -> (B, C, H, W)."""

    #: batch chunks of the low-memory forward without autograd (0: the plain forward), used for
    #: inputs of at least ``low_memory_min_bytes``; set by ``cell_low_memory.low_memory_forward``
    low_memory_chunks: int = 0
    low_memory_min_bytes: int = 0

    def __init__(self, arch: Mapping[str, str], channels: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.arch = {k: arch[k] for k in NB201_EDGE_KEYS}
        self.edges = nn.ModuleDict(OrderedDict(
            (k, make_op(self.arch[k], channels, affine, track_running_stats)) for k in NB201_EDGE_KEYS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_low_memory(self, x):
            return cell_forward_low_memory(x, lambda key: self.edges[key], self.low_memory_chunks)
        return cell_forward(x, lambda key, h: self.edges[key](h))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.arch.items())


class NB201ChoiceEdge(nn.Module):
    """All five candidate ops of one edge of one supernet cell; one is active at a time.

    ``mask`` (bool, (5,)) is a registered buffer: candidates the (sub-)supernet allows. ``active``
    is the index of the candidate ``forward`` runs. x (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.candidates = nn.ModuleList(
            make_op(name, channels, affine, track_running_stats) for name in NB201_OPS)
        self.register_buffer("mask", torch.ones(len(NB201_OPS), dtype=torch.bool))
        self.active: int | None = None

    def active_op(self) -> nn.Module:
        """The active candidate's module."""
        if self.active is None:
            raise RuntimeError("NB201 supernet: no architecture is active; call set_arch(arch) first")
        return self.candidates[self.active]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active_op()(x)


class NB201SearchCell(nn.Module):
    """A supernet cell: one ``NB201ChoiceEdge`` per edge. x (B, C, H, W) -> (B, C, H, W)."""

    #: as ``NB201Cell.low_memory_chunks``
    low_memory_chunks: int = 0
    low_memory_min_bytes: int = 0

    def __init__(self, channels: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.edges = nn.ModuleDict(OrderedDict(
            (k, NB201ChoiceEdge(channels, affine, track_running_stats)) for k in NB201_EDGE_KEYS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_low_memory(self, x):
            return cell_forward_low_memory(x, lambda key: self.edges[key].active_op(),
                                           self.low_memory_chunks)
        return cell_forward(x, lambda key, h: self.edges[key](h))
