"""The Once-for-All (OFA) MobileNetV3 search space.

Network (width multiplier ``w``; every width ``make_divisible(base * w, 8)``, base widths
(16, 16, 24, 40, 80, 112, 160, 960, 1280) as in OFA's ``OFAMobileNetV3``):
stem 3x3 stride 2 -> 16w, BN, h-swish; first block MBConv e1 3x3 -> 16w with identity shortcut
(fixed); 5 elastic units of up to ``max(depth_choices)`` blocks each, widths (24, 40, 80, 112,
160) * w, first-block strides (2, 2, 2, 1, 2), activations ReLU (units 1-2) / h-swish (units 3-5),
SE in units 2, 4 and 5 (OFA's ``se_stages``); final expand 1x1 -> 960w, BN, h-swish; global
average pool; 1x1 conv -> 1280w (no BN, no bias), h-swish; [dropout]; linear.
Every block but a unit's first has an identity shortcut.

Decisions (the keys of NAS-LID's released mask): ``depth{u}`` (u = 1..5, candidates the depth
choices), ``ks_block{b}`` (kernel) and ``er_block{b}`` (expand ratio) for every block b = 1..20
(numbered globally, 4 blocks per unit at max depth 4). Candidate names are the numbers as strings
("3", "5", "7"). Order: depth1, ks_block1, er_block1, ..., ks_block4, er_block4, depth2, ...

Inactive blocks: a unit of depth d runs its first d blocks; the kernel / expand decisions of the
blocks beyond d do not change the network. ``canonical_key`` ignores them, ``num_archs`` (the
base class) counts raw decision combinations (inactive choices included, what uniform sampling
of decisions is uniform over), ``num_networks`` counts distinct networks.

Weight sharing (OFA): each block holds one ``ElasticMBConv`` at the largest kernel and expand
ratio; smaller kernels are centre crops (with OFA's kernel transformation matrices by default),
smaller expand ratios the first hidden channels.

LID vector (comparable across depths): 7 entries, the outputs of the first block, of each of the
5 units (the output of its last active block, whatever the depth) and of the final expand layer.

Arch string: units joined by ``|``, each ``d{depth}:`` then all its blocks as ``k{kernel}e{expand}``
joined by ``,`` (inactive blocks included), e.g. ``d3:k7e6,k5e4,k3e6,k3e4|...``; the canonical key
lists only the active blocks.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from types import MappingProxyType
from typing import Mapping, Sequence

import torch
from torch import nn

from .base import Arch, Mask, SearchSpace, Supernet
from .mobile_blocks import (ConvBNAct, ElasticMBConv, MBConv, MobileNet, check_input,
                            check_input_size, check_positive_int, check_width, conv_out_size,
                            copy_module, make_divisible, mbconv_macs, mbconv_params, mixed_radix_arch,
                            mixed_radix_index)
from .proxyless import init_weights

BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
UNIT_STRIDES = (2, 2, 2, 1, 2)
UNIT_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
UNIT_SE = (False, True, False, True, True)
NUM_UNITS = 5
_BLOCK_RE = re.compile(r"^k(\d+)e(\d+)$")
_UNIT_RE = re.compile(r"^d(\d+):(.*)$")


def _choices(fn: str, name: str, v, odd: bool = False) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or len(v) == 0:
        raise ValueError(f"{fn}: {name} must be a non-empty list of positive ints, got {v!r}")
    for c in v:
        if isinstance(c, bool) or not isinstance(c, int) or c < 1 or (odd and c % 2 == 0):
            raise ValueError(f"{fn}: {name} entries must be positive{' odd' if odd else ''} ints, "
                             f"got {v!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"{fn}: {name} has duplicates: {v!r}")
    return tuple(sorted(v))


class OFASpace(SearchSpace):
    """OFA MobileNetV3 space. Options: ``num_classes`` (1000), ``in_channels`` (3), ``input_size``
    (224), ``width`` (1.0; NAS-LID used 1.2), ``kernel_choices`` (3, 5, 7), ``expand_choices``
    (3, 4, 6; NAS-LID: 4, 6), ``depth_choices`` (2, 3, 4; NAS-LID: 3, 4), ``dropout`` (0.1),
    ``kernel_transform`` (True: OFA's kernel transformation matrices), BN ``bn_momentum`` (0.1)
    / ``bn_eps`` (1e-5)."""

    name = "ofa"

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                 width: float = 1.0, kernel_choices: Sequence[int] = (3, 5, 7),
                 expand_choices: Sequence[int] = (3, 4, 6), depth_choices: Sequence[int] = (2, 3, 4),
                 dropout: float = 0.1, kernel_transform: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5):
        fn = "OFASpace"
        self.num_classes = check_positive_int(fn, "num_classes", num_classes)
        self.in_channels = check_positive_int(fn, "in_channels", in_channels)
        self.input_size = check_input_size(fn, input_size)
        self.width = check_width(fn, width)
        self.kernel_choices = _choices(fn, "kernel_choices", kernel_choices, odd=True)
        self.expand_choices = _choices(fn, "expand_choices", expand_choices)
        self.depth_choices = _choices(fn, "depth_choices", depth_choices)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{fn}: dropout must be in [0, 1), got {dropout!r}")
        self.dropout, self.kernel_transform = float(dropout), bool(kernel_transform)
        self.bn_momentum, self.bn_eps = bn_momentum, bn_eps
        widths = [make_divisible(b * self.width, 8) for b in BASE_WIDTHS]
        self.stem_channels, self.first_channels = widths[0], widths[1]
        self.unit_widths = tuple(widths[2:7])
        self.final_expand_channels, self.last_channels = widths[7], widths[8]
        self.max_depth = self.depth_choices[-1]
        # block table: (unit u (1-based), j within unit, global index b, cin, cout, stride)
        self.blocks: list[tuple[int, int, int, int, int, int]] = []
        cin = self.first_channels
        for u in range(1, NUM_UNITS + 1):
            for j in range(self.max_depth):
                b = (u - 1) * self.max_depth + j + 1
                self.blocks.append((u, j, b, cin, self.unit_widths[u - 1],
                                    UNIT_STRIDES[u - 1] if j == 0 else 1))
                cin = self.unit_widths[u - 1]
        ks = tuple(str(k) for k in self.kernel_choices)
        er = tuple(str(e) for e in self.expand_choices)
        d = OrderedDict()
        for u in range(1, NUM_UNITS + 1):
            d[f"depth{u}"] = tuple(str(x) for x in self.depth_choices)
            for _, _, b, _, _, _ in self._unit_blocks(u):
                d[f"ks_block{b}"] = ks
                d[f"er_block{b}"] = er
        self._decisions = d

    def _unit_blocks(self, u: int):
        return self.blocks[(u - 1) * self.max_depth:u * self.max_depth]

    def __repr__(self) -> str:
        return "OFASpace(" + ", ".join(f"{k}={v!r}" for k, v in self.options.items()) + ")"

    @property
    def options(self) -> dict:
        """The constructor options (``OFASpace(**space.options)`` rebuilds the space)."""
        return dict(num_classes=self.num_classes, in_channels=self.in_channels,
                    input_size=self.input_size, width=self.width,
                    kernel_choices=self.kernel_choices, expand_choices=self.expand_choices,
                    depth_choices=self.depth_choices, dropout=self.dropout,
                    kernel_transform=self.kernel_transform, bn_momentum=self.bn_momentum,
                    bn_eps=self.bn_eps)

    @property
    def num_lid_layers(self) -> int:
        """Length of the LID vector: first block + 5 unit outputs + final expand (any depth)."""
        return NUM_UNITS + 2

    # ----- decisions / encodings ---------------------------------------------------------------
    @property
    def decisions(self) -> "Mapping[str, tuple[str, ...]]":
        """Ordered, read-only view: decision key -> candidate names."""
        return MappingProxyType(self._decisions)

    def active_blocks(self, arch: Mapping[str, str]) -> list[tuple[int, int, int, int, int, int]]:
        """Rows of the block table that ``arch`` runs (first depth{u} blocks of each unit)."""
        arch = self.validate_arch(arch)
        return [row for row in self.blocks if row[1] < int(arch[f"depth{row[0]}"])]

    def arch_to_string(self, arch: Mapping[str, str]) -> str:
        arch = self.validate_arch(arch)
        return "|".join(
            f"d{arch[f'depth{u}']}:" + ",".join(f"k{arch[f'ks_block{b}']}e{arch[f'er_block{b}']}"
                                                 for _, _, b, _, _, _ in self._unit_blocks(u))
            for u in range(1, NUM_UNITS + 1))

    def arch_from_string(self, s: str) -> Arch:
        fn = "ofa arch_from_string"
        if not isinstance(s, str):
            raise ValueError(f"{fn}: expected a string, got {type(s).__name__}")
        units = s.strip().split("|")
        if len(units) != NUM_UNITS:
            raise ValueError(f"{fn}: {len(units)} units separated by '|', expected {NUM_UNITS}: {s!r}")
        arch: Arch = {}
        for u, text in enumerate(units, start=1):
            m = _UNIT_RE.match(text.strip())
            if m is None:
                raise ValueError(f"{fn}: unit {u} {text!r} is not 'd<depth>:k<k>e<e>,...'")
            arch[f"depth{u}"] = m.group(1)
            blocks = [t.strip() for t in m.group(2).split(",")]
            if len(blocks) != self.max_depth:
                raise ValueError(f"{fn}: unit {u} lists {len(blocks)} blocks, expected "
                                 f"{self.max_depth} (inactive blocks included): {text!r}")
            for (_, _, b, _, _, _), t in zip(self._unit_blocks(u), blocks):
                mb = _BLOCK_RE.match(t)
                if mb is None:
                    raise ValueError(f"{fn}: block {b} {t!r} is not 'k<kernel>e<expand>'")
                arch[f"ks_block{b}"], arch[f"er_block{b}"] = mb.group(1), mb.group(2)
        try:
            return self.validate_arch(arch)
        except ValueError as e:
            raise ValueError(f"{fn}: {e}") from None

    def canonical_arch(self, arch: Mapping[str, str]) -> Arch:
        """``arch`` with the kernel / expand of inactive blocks set to their first candidate."""
        arch = dict(self.validate_arch(arch))
        for u, j, b, _, _, _ in self.blocks:
            if j >= int(arch[f"depth{u}"]):
                arch[f"ks_block{b}"] = self._decisions[f"ks_block{b}"][0]
                arch[f"er_block{b}"] = self._decisions[f"er_block{b}"][0]
        return arch

    def canonical_key(self, arch: Mapping[str, str]) -> str:
        """Depths and the active blocks only: equal exactly for the same network."""
        arch = self.validate_arch(arch)
        return "|".join(
            f"d{arch[f'depth{u}']}:" + ",".join(
                f"k{arch[f'ks_block{b}']}e{arch[f'er_block{b}']}"
                for _, j, b, _, _, _ in self._unit_blocks(u) if j < int(arch[f"depth{u}"]))
            for u in range(1, NUM_UNITS + 1))

    def index_of(self, arch: Mapping[str, str]) -> int:
        """Mixed-radix index over the raw decisions (first decision most significant)."""
        return mixed_radix_index(self._decisions, self.validate_arch(arch))

    def arch_at(self, index: int) -> Arch:
        return mixed_radix_arch(self._decisions, index, "ofa arch_at")

    def num_networks(self, mask: Mask | None = None) -> int:
        """Distinct networks in ``mask``: per unit, sum over allowed depths d of the product of
        (allowed kernels x allowed expands) over its first d blocks; product over units."""
        mask = self.full_mask() if mask is None else self.validate_mask(mask)
        total = 1
        for u in range(1, NUM_UNITS + 1):
            per_block = [int(mask[f"ks_block{b}"].sum()) * int(mask[f"er_block{b}"].sum())
                         for _, _, b, _, _, _ in self._unit_blocks(u)]
            total *= sum(math.prod(per_block[:int(d)])
                         for d, ok in zip(self._decisions[f"depth{u}"], mask[f"depth{u}"]) if ok)
        return total

    # ----- networks ----------------------------------------------------------------------------
    def _bn(self) -> dict:
        return dict(bn_momentum=self.bn_momentum, bn_eps=self.bn_eps)

    def _stem(self) -> ConvBNAct:
        return ConvBNAct(self.in_channels, self.stem_channels, 3, 2, act="h_swish", **self._bn())

    def _first_block(self) -> MBConv:
        return MBConv(self.stem_channels, self.first_channels, 3, 1, self.stem_channels, "relu",
                      residual=self.stem_channels == self.first_channels, expand_conv=False,
                      **self._bn())

    def _final_expand(self) -> ConvBNAct:
        return ConvBNAct(self.unit_widths[-1], self.final_expand_channels, 1, act="h_swish",
                         **self._bn())

    def _feature_mix(self) -> ConvBNAct:
        return ConvBNAct(self.final_expand_channels, self.last_channels, 1, act="h_swish", use_bn=False)

    def mid_channels(self, cin: int, expand: int) -> int:
        """Hidden channels of a block (OFA's dynamic rule)."""
        return make_divisible(round(cin * expand), 8)

    def build_supernet(self) -> "OFASupernet":
        return OFASupernet(self)

    def build_subnet(self, arch: Mapping[str, str], supernet: "OFASupernet | None" = None) -> MobileNet:
        """Standalone network for ``arch`` (active blocks only, static kernels / widths); weights
        copied (cropped / transformed) from ``supernet`` when given, else freshly initialised."""
        arch = self.validate_arch(arch)
        if supernet is None:
            blocks = [self._first_block()]
            for u, j, b, cin, cout, stride in self.active_blocks(arch):
                k, e = int(arch[f"ks_block{b}"]), int(arch[f"er_block{b}"])
                blocks.append(MBConv(cin, cout, k, stride, self.mid_channels(cin, e), UNIT_ACTS[u - 1],
                                     UNIT_SE[u - 1], residual=j > 0, **self._bn()))
            net = MobileNet(self._stem(), blocks, self._final_expand(), self._feature_mix(),
                            nn.Linear(self.last_channels, self.num_classes), self.dropout)
            return init_weights(net)
        if not isinstance(supernet, OFASupernet) or supernet.space.blocks != self.blocks \
                or supernet.space.kernel_choices != self.kernel_choices \
                or supernet.space.expand_choices != self.expand_choices \
                or supernet.space.num_classes != self.num_classes \
                or supernet.space.in_channels != self.in_channels:
            raise ValueError("ofa build_subnet: supernet was not built by an identical space")
        saved = [(blk.active_kernel, blk.active_expand) for unit in supernet.units for blk in unit.blocks]
        blocks = [copy_module(supernet.first_block)]
        for u, j, b, _, _, _ in self.active_blocks(arch):
            blk = supernet.units[u - 1].blocks[j]
            blocks.append(blk.to_static(int(arch[f"ks_block{b}"]), int(arch[f"er_block{b}"])))
        for (k, e), blk in zip(saved, (blk for unit in supernet.units for blk in unit.blocks)):
            blk.set_active(k, e)
        return MobileNet(copy_module(supernet.stem), blocks, copy_module(supernet.final_expand),
                         copy_module(supernet.feature_mix), copy_module(supernet.classifier),
                         self.dropout).train(supernet.training)

    def count_params(self, arch: Mapping[str, str]) -> int:
        """Parameters of the standalone subnet of ``arch`` (analytic; BN affine included)."""
        arch = self.validate_arch(arch)
        total = self.in_channels * self.stem_channels * 9 + 2 * self.stem_channels
        total += mbconv_params(self.stem_channels, self.first_channels, 3, self.stem_channels, False, False)
        for u, _, b, cin, cout, _ in self.active_blocks(arch):
            k, e = int(arch[f"ks_block{b}"]), int(arch[f"er_block{b}"])
            total += mbconv_params(cin, cout, k, self.mid_channels(cin, e), True, UNIT_SE[u - 1])
        total += self.unit_widths[-1] * self.final_expand_channels + 2 * self.final_expand_channels
        total += self.final_expand_channels * self.last_channels
        return total + (self.last_channels + 1) * self.num_classes

    def count_macs(self, arch: Mapping[str, str], input_size: int | None = None,
                   count_se: bool = True) -> int:
        """Conv + linear multiply-adds of ``arch`` at ``input_size`` x ``input_size``.
        ``count_se``: include the SE modules' 1x1 convs on the pooled map (OFA's / GM-NAS's
        counter hooks every Conv2d, so they count them; the published labels agree only then)."""
        arch = self.validate_arch(arch)
        size = self.input_size if input_size is None else check_input_size("ofa count_macs", input_size)
        h = conv_out_size(size, 3, 2)
        total = h * h * self.stem_channels * self.in_channels * 9
        m, h, _ = mbconv_macs(self.stem_channels, self.first_channels, 3, 1, self.stem_channels,
                              False, False, h, h)
        total += m
        for u, _, b, cin, cout, stride in self.active_blocks(arch):
            k, e = int(arch[f"ks_block{b}"]), int(arch[f"er_block{b}"])
            m, h, _ = mbconv_macs(cin, cout, k, stride, self.mid_channels(cin, e), True,
                                  UNIT_SE[u - 1] and count_se, h, h)
            total += m
        total += h * h * self.final_expand_channels * self.unit_widths[-1]
        total += self.final_expand_channels * self.last_channels
        return total + self.last_channels * self.num_classes


class OFAUnit(nn.Module):
    """An elastic unit: runs its first ``depth`` blocks. Output (B, width_u, H', W')."""

    def __init__(self, blocks: Sequence[ElasticMBConv]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.depth = len(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks[:self.depth]:
            x = blk(x)
        return x


class OFASupernet(Supernet):
    """OFA weight-sharing supernet of an ``OFASpace``; ``set_arch`` sets depths, kernels, expands."""

    def __init__(self, space: OFASpace):
        super().__init__()
        self.space = space
        self.stem = space._stem()
        self.first_block = space._first_block()
        units = []
        for u in range(1, NUM_UNITS + 1):
            units.append(OFAUnit([
                ElasticMBConv(cin, cout, space.kernel_choices, space.expand_choices, stride,
                              UNIT_ACTS[u - 1], UNIT_SE[u - 1], residual=j > 0,
                              kernel_transform=space.kernel_transform, **space._bn())
                for _, j, _, cin, cout, stride in space._unit_blocks(u)]))
        self.units = nn.ModuleList(units)
        self.final_expand = space._final_expand()
        self.feature_mix = space._feature_mix()
        self.dropout = nn.Dropout(space.dropout) if space.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(space.last_channels, space.num_classes)
        init_weights(self)  # elastic blocks initialise their own weight tensors
        self.set_arch({k: c[-1] for k, c in space.decisions.items()})

    def set_arch(self, arch: Mapping[str, str]) -> None:
        arch = self.space.validate_arch(arch)
        for u, j, b, _, _, _ in self.space.blocks:
            self.units[u - 1].blocks[j].set_active(int(arch[f"ks_block{b}"]), int(arch[f"er_block{b}"]))
        for u, unit in enumerate(self.units, start=1):
            unit.depth = int(arch[f"depth{u}"])
        self.arch = arch

    def lid_layers(self) -> list[nn.Module]:
        """first block, the 5 units (output of the last active block), final expand: 7 maps."""
        return [self.first_block, *self.units, self.final_expand]

    def decision_parameters(self, key: str) -> list[nn.Parameter]:
        """``ks_block{b}`` / ``er_block{b}``: every parameter of block b (kernel and expand share
        them); ``depth{u}``: the blocks of unit u beyond its smallest depth choice."""
        sp = self.space
        if key not in sp.decisions:
            raise ValueError(f"ofa decision_parameters: unknown decision {key!r}")
        if key.startswith("depth"):
            u = int(key[5:])
            return [p for blk in self.units[u - 1].blocks[sp.depth_choices[0]:] for p in blk.parameters()]
        b = int(key.split("block")[1])
        u, j = (b - 1) // sp.max_depth + 1, (b - 1) % sp.max_depth
        return list(self.units[u - 1].blocks[j].parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) -> logits (B, num_classes) through the active subnet."""
        check_input("OFASupernet.forward", x, self.space.in_channels)
        x = self.first_block(self.stem(x))
        for unit in self.units:
            x = unit(x)
        x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))
