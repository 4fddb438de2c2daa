"""The ProxylessNAS search space (MobileNetV2-like), as searched by ProxylessNAS and NAS-LID.

Network (width multiplier ``w``, channels rounded by ``make_divisible(., 8)``):
stem 3x3 stride 2 -> 32w, BN, ReLU6; first block MBConv e1 3x3 -> 16w (fixed, no shortcut);
21 searchable layers in 6 stages of base widths (24, 40, 80, 96, 192, 320) * w, depths
(4, 4, 4, 4, 4, 1), first-layer strides (2, 2, 2, 1, 2, 1); head 1x1 conv -> 1280 (scaled only
when w > 1, ProxylessNAS's rule: ``make_divisible(1280 w, 8) if w > 1 else 1280``), BN, ReLU6,
global average pool, [dropout], linear.

Decisions ``s{stage}_c{i}`` (the keys of NAS-LID's released masks), candidates in hyperbox's
order 3x3_MBConv3, 3x3_MBConv6, 5x5_MBConv3, 5x5_MBConv6, 7x7_MBConv3, 7x7_MBConv6, plus
``Zero`` for every layer but the first of a stage (15 layers with 7 choices, 6 with 6). Layers
other than stage-first ones carry an identity shortcut, so ``Zero`` makes the layer an identity.
The structure (which layers have Zero / shortcuts) is fixed by position, not by the channel
counts, so decisions and masks do not change with the width.

Each candidate has its own weights (ProxylessNAS / hyperbox ``OperationSpace``).

LID layers: the first block's output, the 21 layer outputs and the head output (23 maps).
Arch string: stages joined by ``|``, layers of a stage by ``,``, e.g.
``5x5_MBConv3,3x3_MBConv3,Zero,7x7_MBConv6|...``. Canonical key: the same with ``Zero`` layers
dropped (a stage's Zero layers are identities wherever they sit, so e.g. ``A,Zero,B,Zero`` and
``A,B,Zero,Zero`` are the same network).
"""
from __future__ import annotations

import itertools
import math
import re
from collections import OrderedDict
from types import MappingProxyType
from typing import Mapping, Sequence

import torch
from torch import nn

from .base import Arch, Mask, SearchSpace, Supernet
from .mobile_blocks import (ConvBNAct, MBConv, MobileNet, check_input, check_input_size,
                            check_positive_int, check_width, conv_out_size, copy_module,
                            make_divisible, mbconv_macs, mbconv_params, mixed_radix_arch, mixed_radix_index)

MB_CANDIDATES = ("3x3_MBConv3", "3x3_MBConv6", "5x5_MBConv3", "5x5_MBConv6", "7x7_MBConv3",
                 "7x7_MBConv6")
ZERO = "Zero"
BASE_STAGE_WIDTHS = (24, 40, 80, 96, 192, 320)
STAGE_DEPTHS = (4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (2, 2, 2, 1, 2, 1)
_OP_RE = re.compile(r"^(\d+)x(\d+)_MBConv(\d+)$")


def parse_op(name: str) -> tuple[int, int]:
    """'5x5_MBConv3' -> (kernel 5, expand 3). ValueError for Zero or unknown names."""
    m = _OP_RE.match(name) if isinstance(name, str) else None
    if m is None or m.group(1) != m.group(2):
        raise ValueError(f"proxyless: unknown op name {name!r} (expected e.g. '5x5_MBConv3')")
    return int(m.group(1)), int(m.group(3))


class ProxylessSpace(SearchSpace):
    """ProxylessNAS space. Options: ``num_classes`` (1000), ``in_channels`` (3), ``input_size``
    (224, for ``count_macs``), ``width`` (1.0), ``stage_widths`` (base widths before the width
    multiplier; NAS-LID's ImageNet run used (30, 40, 80, 96, 182, 320) with width 1.4),
    ``dropout`` before the classifier (0), BN ``bn_momentum`` (0.1) / ``bn_eps`` (1e-3)."""

    name = "proxyless"

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                 width: float = 1.0, stage_widths: Sequence[int] = BASE_STAGE_WIDTHS,
                 dropout: float = 0.0, bn_momentum: float = 0.1, bn_eps: float = 1e-3):
        fn = "ProxylessSpace"
        self.num_classes = check_positive_int(fn, "num_classes", num_classes)
        self.in_channels = check_positive_int(fn, "in_channels", in_channels)
        self.input_size = check_input_size(fn, input_size)
        self.width = check_width(fn, width)
        sw = tuple(stage_widths) if isinstance(stage_widths, (list, tuple)) else None
        if sw is None or len(sw) != 6:
            raise ValueError(f"{fn}: stage_widths must be a list of 6 positive ints, got {stage_widths!r}")
        for v in sw:
            check_positive_int(fn, "stage_widths entries", v)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{fn}: dropout must be in [0, 1), got {dropout!r}")
        self.stage_widths_base, self.dropout = sw, float(dropout)
        self.bn_momentum, self.bn_eps = bn_momentum, bn_eps
        w = self.width
        self.stem_channels = make_divisible(32 * w, 8)
        self.first_channels = make_divisible(16 * w, 8)
        self.stage_widths = tuple(make_divisible(b * w, 8) for b in sw)
        self.last_channels = make_divisible(1280 * w, 8) if w > 1.0 else 1280
        # layer table: (key, cin, cout, stride, stage_first)
        self.layers: list[tuple[str, int, int, int, bool]] = []
        cin = self.first_channels
        for s, (cout, depth, stride) in enumerate(zip(self.stage_widths, STAGE_DEPTHS, STAGE_STRIDES)):
            for i in range(depth):
                self.layers.append((f"s{s}_c{i}", cin, cout, stride if i == 0 else 1, i == 0))
                cin = cout
        self._decisions = OrderedDict(
            (key, MB_CANDIDATES if first else MB_CANDIDATES + (ZERO,))
            for key, _, _, _, first in self.layers)

    def __repr__(self) -> str:
        return "ProxylessSpace(" + ", ".join(f"{k}={v!r}" for k, v in self.options.items()) + ")"

    @property
    def options(self) -> dict:
        """The constructor options (``ProxylessSpace(**space.options)`` rebuilds the space)."""
        return dict(num_classes=self.num_classes, in_channels=self.in_channels,
                    input_size=self.input_size, width=self.width,
                    stage_widths=self.stage_widths_base, dropout=self.dropout,
                    bn_momentum=self.bn_momentum, bn_eps=self.bn_eps)

    @property
    def num_lid_layers(self) -> int:
        """Length of the LID vector: first block + 21 layers + head."""
        return len(self.layers) + 2

    # ----- decisions / encodings ---------------------------------------------------------------
    @property
    def decisions(self) -> "Mapping[str, tuple[str, ...]]":
        """Ordered, read-only view: decision key -> candidate names."""
        return MappingProxyType(self._decisions)

    def _stages(self, arch: Mapping[str, str]) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in STAGE_DEPTHS]
        for key, _, _, _, _ in self.layers:
            out[int(key[1:key.index("_")])].append(arch[key])
        return out

    def arch_to_string(self, arch: Mapping[str, str]) -> str:
        arch = self.validate_arch(arch)
        return "|".join(",".join(ops) for ops in self._stages(arch))

    def arch_from_string(self, s: str) -> Arch:
        if not isinstance(s, str):
            raise ValueError(f"proxyless arch_from_string: expected a string, got {type(s).__name__}")
        groups = s.strip().split("|")
        if len(groups) != len(STAGE_DEPTHS):
            raise ValueError(f"proxyless arch_from_string: {len(groups)} stages separated by '|', "
                             f"expected {len(STAGE_DEPTHS)}: {s!r}")
        arch: Arch = {}
        for st, (g, depth) in enumerate(zip(groups, STAGE_DEPTHS)):
            ops = [o.strip() for o in g.split(",")]
            if len(ops) != depth:
                raise ValueError(f"proxyless arch_from_string: stage {st} has {len(ops)} layers, "
                                 f"expected {depth}: {g!r}")
            for i, op in enumerate(ops):
                key = f"s{st}_c{i}"
                if op not in self._decisions[key]:
                    raise ValueError(f"proxyless arch_from_string: layer {key} op {op!r} is not one "
                                     f"of {list(self._decisions[key])}")
                arch[key] = op
        return {k: arch[k] for k in self._decisions}

    def canonical_key(self, arch: Mapping[str, str]) -> str:
        """Arch string with Zero layers dropped: equal exactly for the same network."""
        arch = self.validate_arch(arch)
        return "|".join(",".join(o for o in ops if o != ZERO) for ops in self._stages(arch))

    def index_of(self, arch: Mapping[str, str]) -> int:
        """Mixed-radix index over the raw decisions (first decision most significant)."""
        return mixed_radix_index(self._decisions, self.validate_arch(arch))

    def arch_at(self, index: int) -> Arch:
        return mixed_radix_arch(self._decisions, index, "proxyless arch_at")

    def num_networks(self, mask: Mask | None = None) -> int:
        """Distinct networks (distinct canonical keys) in ``mask``; ``num_archs`` counts raw
        decision combinations, which over-counts because Zero layers commute inside a stage."""
        mask = self.full_mask() if mask is None else self.validate_mask(mask)
        total = 1
        for st, depth in enumerate(STAGE_DEPTHS):
            allowed = [[c for c, ok in zip(self._decisions[f"s{st}_c{i}"], mask[f"s{st}_c{i}"])
                        if ok] for i in range(depth)]
            total *= len({tuple(o for o in combo if o != ZERO) for combo in itertools.product(*allowed)})
        return total

    # ----- networks ----------------------------------------------------------------------------
    def build_supernet(self) -> "ProxylessSupernet":
        return ProxylessSupernet(self)

    def build_subnet(self, arch: Mapping[str, str], supernet: "ProxylessSupernet | None" = None) -> MobileNet:
        """Standalone network for ``arch`` (Zero layers omitted); weights copied from ``supernet``
        when given, else freshly initialised."""
        arch = self.validate_arch(arch)
        if supernet is None:
            return self._fresh_subnet(arch)
        if not isinstance(supernet, ProxylessSupernet) or supernet.space.layers != self.layers \
                or supernet.space.num_classes != self.num_classes \
                or supernet.space.in_channels != self.in_channels:
            raise ValueError("proxyless build_subnet: supernet was not built by an identical space")
        blocks = [copy_module(supernet.first_block)]
        blocks += [copy_module(layer.candidates[arch[layer.key]]) for layer in supernet.layers
                   if arch[layer.key] != ZERO]
        return MobileNet(copy_module(supernet.stem), blocks, copy_module(supernet.head), None,
                         copy_module(supernet.classifier), self.dropout).train(supernet.training)

    def _fresh_subnet(self, arch: Arch) -> MobileNet:
        blocks = [self._first_block()]
        for key, cin, cout, stride, first in self.layers:
            if arch[key] != ZERO:
                blocks.append(self._mbconv(arch[key], cin, cout, stride, first))
        net = MobileNet(self._stem(), blocks, self._head(), None,
                        nn.Linear(self.last_channels, self.num_classes), self.dropout)
        init_weights(net)
        return net

    def _bn(self) -> dict:
        return dict(bn_momentum=self.bn_momentum, bn_eps=self.bn_eps)

    def _stem(self) -> ConvBNAct:
        return ConvBNAct(self.in_channels, self.stem_channels, 3, 2, act="relu6", **self._bn())

    def _first_block(self) -> MBConv:
        return MBConv(self.stem_channels, self.first_channels, 3, 1, self.stem_channels, "relu6",
                      expand_conv=False, **self._bn())

    def _head(self) -> ConvBNAct:
        return ConvBNAct(self.stage_widths[-1], self.last_channels, 1, act="relu6", **self._bn())

    def _mbconv(self, op: str, cin: int, cout: int, stride: int, first: bool) -> MBConv:
        k, e = parse_op(op)
        return MBConv(cin, cout, k, stride, round(cin * e), "relu6", residual=not first, **self._bn())

    def count_params(self, arch: Mapping[str, str]) -> int:
        """Parameters of the standalone subnet of ``arch`` (analytic; BN affine included)."""
        arch = self.validate_arch(arch)
        total = self.in_channels * self.stem_channels * 9 + 2 * self.stem_channels
        total += mbconv_params(self.stem_channels, self.first_channels, 3, self.stem_channels, False, False)
        for key, cin, cout, _, _ in self.layers:
            if arch[key] != ZERO:
                k, e = parse_op(arch[key])
                total += mbconv_params(cin, cout, k, round(cin * e), True, False)
        total += self.stage_widths[-1] * self.last_channels + 2 * self.last_channels
        return total + (self.last_channels + 1) * self.num_classes

    def count_macs(self, arch: Mapping[str, str], input_size: int | None = None) -> int:
        """Conv + linear multiply-adds of ``arch`` at ``input_size`` x ``input_size``."""
        arch = self.validate_arch(arch)
        size = self.input_size if input_size is None else check_input_size("proxyless count_macs", input_size)
        h = conv_out_size(size, 3, 2)
        total = h * h * self.stem_channels * self.in_channels * 9
        m, h, _ = mbconv_macs(self.stem_channels, self.first_channels, 3, 1, self.stem_channels,
                              False, False, h, h)
        total += m
        for key, cin, cout, stride, _ in self.layers:
            if arch[key] == ZERO:
                continue
            k, e = parse_op(arch[key])
            m, h, _ = mbconv_macs(cin, cout, k, stride, round(cin * e), True, False, h, h)
            total += m
        total += h * h * self.last_channels * self.stage_widths[-1]
        return total + self.last_channels * self.num_classes


def init_weights(net: nn.Module) -> nn.Module:
    """ProxylessNAS / OFA init: convs He normal (fan_out), BN 1/0, linear U(+-1/sqrt(fan_in)), bias 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.shape[1])
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


class ProxylessLayer(nn.Module):
    """One searchable layer: a candidate ``MBConv`` per op name (own weights); ``Zero`` = identity
    (the layer's shortcut plus a zero branch). Output (B, cout, H / stride, W / stride)."""

    def __init__(self, key: str, candidates: "OrderedDict[str, nn.Module]", has_zero: bool):
        super().__init__()
        self.key, self.has_zero = key, has_zero
        self.candidates = nn.ModuleDict(candidates)
        self.active = next(iter(candidates))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active == ZERO:
            return x
        return self.candidates[self.active](x)


class ProxylessSupernet(Supernet):
    """Single-path supernet of a ``ProxylessSpace``; ``set_arch`` picks one op per layer."""

    def __init__(self, space: ProxylessSpace):
        super().__init__()
        self.space = space
        self.stem = space._stem()
        self.first_block = space._first_block()
        layers = []
        for key, cin, cout, stride, first in space.layers:
            cands = OrderedDict((op, space._mbconv(op, cin, cout, stride, first)) for op in MB_CANDIDATES)
            layers.append(ProxylessLayer(key, cands, not first))
        self.layers = nn.ModuleList(layers)
        self.head = space._head()
        self.dropout = nn.Dropout(space.dropout) if space.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(space.last_channels, space.num_classes)
        init_weights(self)
        self.set_arch({k: c[-1] if c[-1] != ZERO else c[-2] for k, c in space.decisions.items()})

    def set_arch(self, arch: Mapping[str, str]) -> None:
        arch = self.space.validate_arch(arch)
        for layer in self.layers:
            layer.active = arch[layer.key]
        self.arch = arch

    def lid_layers(self) -> list[nn.Module]:
        """first block, the 21 layers, head (23 modules; a Zero layer outputs its input)."""
        return [self.first_block, *self.layers, self.head]

    def decision_parameters(self, key: str) -> list[nn.Parameter]:
        for layer in self.layers:
            if layer.key == key:
                return list(layer.parameters())
        raise ValueError(f"proxyless decision_parameters: unknown decision {key!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) -> logits (B, num_classes) through the active path."""
        check_input("ProxylessSupernet.forward", x, self.space.in_channels)
        x = self.first_block(self.stem(x))
        for layer in self.layers:
            x = layer(x)
        x = self.head(x).mean((2, 3))
        return self.classifier(self.dropout(x))
