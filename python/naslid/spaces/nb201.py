"""The NAS-Bench-201 cell search space: 6 edges x 5 ops = 15,625 cells, shared by all cells.

Network (NB201's ``TinyNetwork``, defaults C = 16, N = 5, 32x32 input):

    stem        Conv3x3(in_channels -> C, no bias) + BN              (B, C, H, W)
    stage 1     N cells, width C                                     (B, C, H, W)
    reduction   ResNet basic block C -> 2C, stride 2                 (B, 2C, H/2, W/2)
    stage 2     N cells, width 2C
    reduction   ResNet basic block 2C -> 4C, stride 2                (B, 4C, H/4, W/4)
    stage 3     N cells, width 4C
    head        BN + ReLU, global average pool, Linear(4C -> num_classes)

``lid_layers()`` are the 3N + 2 modules of ``net.cells`` in forward order (17 at N = 5): the outputs of
the N stage-1 cells, the first reduction block, the N stage-2 cells, the second reduction block and
the N stage-3 cells. That is NB201's 17-entry LID vector of NAS-LID.

Official encodings (verified against all 15,625 rows of the benchmark, see ``tests/test_space_nb201.py``):

- arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``;
- index: NB201 enumerates cells lexicographically over the edges (1<-0, 2<-0, 2<-1, 3<-0, 3<-1,
  3<-2), first edge most significant, ops in NB201's order, then shuffles that list with Python's
  ``random.seed(88); random.shuffle``. ``arch_at`` / ``index_of`` reproduce exactly that;
- canonical key: NB201's isomorphism string (``to_unique_str(consider_zero=True)``): node 0 is ``0``;
  each edge contributes ``#`` (zero: a ``none`` op or an input node that is exactly ``#``), the input
  node's expression (``skip_connect``) or ``(input)@op``; a node is the sorted ``+``-join of its edge
  terms. A node whose inputs are all zero becomes ``#+#`` rather than ``#``, so not every zero-output
  cell is merged: this gives NB201's 6,466 classes (a fully functional equivalence would give 4,930).
"""
from __future__ import annotations

import functools
import math
import numbers
import random
from collections import OrderedDict
from types import MappingProxyType
from typing import Iterator, Mapping

import torch
from torch import nn

from .base import Arch, Mask, SearchSpace, Supernet
from .cell_blocks import (NB201_EDGE_KEYS, NB201_EDGES, NB201_OPS, NB201Cell, NB201SearchCell,
                        ResNetBasicBlock, make_op)

NUM_NB201_ARCHS = len(NB201_OPS) ** len(NB201_EDGES)  # 15,625
_NB201_SHUFFLE_SEED = 88  # the seed NB201's generate_meta_info shuffles its enumeration with


# ----- options ---------------------------------------------------------------------------------
def _positive_int(fn: str, name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_input_size(fn: str, input_size) -> int:
    size = _positive_int(fn, "input_size", input_size)
    if size % 4 != 0:
        raise ValueError(f"{fn}: input_size {size} is not divisible by 4; NB201's two stride-2 "
                         "reduction blocks (conv + avg-pool shortcut) need even sizes at both")
    return size


def stage_widths(C: int) -> tuple[int, int, int]:
    """Widths of the three stages: (C, 2C, 4C)."""
    return (C, 2 * C, 4 * C)


# ----- arch helpers (no space instance needed) -------------------------------------------------
def _check_arch(fn: str, arch) -> Arch:
    """Validate an NB201 arch mapping (the 6 edge keys -> op names); return an ordered copy."""
    if not isinstance(arch, Mapping):
        raise TypeError(f"{fn}: arch must be a mapping edge key -> op name, got {type(arch).__name__}")
    missing = [k for k in NB201_EDGE_KEYS if k not in arch]
    extra = [k for k in arch if k not in NB201_EDGE_KEYS]
    if missing or extra:
        raise ValueError(f"{fn}: arch keys must be {list(NB201_EDGE_KEYS)}; missing {missing}, "
                         f"unknown {extra}")
    out: Arch = {}
    for k in NB201_EDGE_KEYS:
        if arch[k] not in NB201_OPS:
            raise ValueError(f"{fn}: arch[{k!r}] = {arch[k]!r} is not an NB201 op; choose one of "
                             f"{list(NB201_OPS)}")
        out[k] = arch[k]
    return out


def nb201_string(arch: Mapping[str, str]) -> str:
    """NB201 arch string of a validated arch."""
    groups = []
    for i in (1, 2, 3):
        groups.append("|" + "|".join(f"{arch[f'edge_{i}_{j}']}~{j}" for j in range(i)) + "|")
    return "+".join(groups)


def parse_nb201_string(s: str, fn: str = "parse_nb201_string") -> Arch:
    """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (inputs of a node in any order, each once)."""
    if not isinstance(s, str):
        raise TypeError(f"{fn}: arch string must be a str, got {type(s).__name__}")
    text = s.strip()
    groups = text.split("+")
    if len(groups) != 3:
        raise ValueError(f"{fn}: expected 3 node groups joined by '+', got {len(groups)} in {s!r}")
    arch: dict[str, str] = {}
    for i, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ValueError(f"{fn}: node {i} group {group!r} must look like '|op~j|...|' (in {s!r})")
        items = group[1:-1].split("|")
        if len(items) != i:
            raise ValueError(f"{fn}: node {i} must have {i} inputs, got {len(items)} in {group!r}")
        for item in items:
            parts = item.split("~")
            if len(parts) != 2:
                raise ValueError(f"{fn}: malformed edge {item!r} in node {i} (expected 'op~j')")
            op, src = parts
            if op not in NB201_OPS:
                raise ValueError(f"{fn}: unknown op {op!r} in {s!r}; choose one of {list(NB201_OPS)}")
            if not (src.isascii() and src.isdigit()) or int(src) >= i:
                raise ValueError(f"{fn}: node {i} input {src!r} in {item!r} must be an integer in "
                                 f"[0, {i - 1}]")
            key = f"edge_{i}_{int(src)}"
            if key in arch:
                raise ValueError(f"{fn}: node {i} lists input {int(src)} twice in {group!r}")
            arch[key] = op
    return {k: arch[k] for k in NB201_EDGE_KEYS}


def nb201_unique_str(arch: Mapping[str, str]) -> str:
    """NB201's isomorphism string of a validated arch (see the module docstring)."""
    expr = {0: "0"}
    for i in (1, 2, 3):
        terms = []
        for j in range(i):
            op, src = arch[f"edge_{i}_{j}"], expr[j]
            if op == "none" or src == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(src)
            else:
                terms.append(f"({src})@{op}")
        expr[i] = "+".join(sorted(terms))
    return expr[3]


def _arch_code(arch: Mapping[str, str]) -> int:
    """Position of ``arch`` in NB201's unshuffled enumeration (first edge most significant)."""
    code = 0
    for k in NB201_EDGE_KEYS:
        code = code * len(NB201_OPS) + NB201_OPS.index(arch[k])
    return code


def _arch_from_code(code: int) -> Arch:
    ops = []
    for _ in NB201_EDGE_KEYS:
        code, r = divmod(code, len(NB201_OPS))
        ops.append(NB201_OPS[r])
    return dict(zip(NB201_EDGE_KEYS, reversed(ops)))


@functools.lru_cache(maxsize=1)
def _index_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(code of official index i, official index of code c): NB201's seeded shuffle."""
    codes = list(range(NUM_NB201_ARCHS))
    random.Random(_NB201_SHUFFLE_SEED).shuffle(codes)
    index_of_code = [0] * NUM_NB201_ARCHS
    for i, c in enumerate(codes):
        index_of_code[c] = i
    return tuple(codes), tuple(index_of_code)


# ----- networks --------------------------------------------------------------------------------
class _NB201Body(nn.Module):
    """Stem, the 3N + 2 ``cells`` (cells and reduction blocks), head. x (B, in, H, W) -> (B, classes)."""

    def __init__(self, make_cell, C: int, N: int, num_classes: int, in_channels: int,
                 affine: bool, track_running_stats: bool):
        super().__init__()
        self.C, self.N, self.num_classes, self.in_channels = C, N, num_classes, in_channels
        self.affine, self.track_running_stats = affine, track_running_stats
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells = []
        widths = stage_widths(C)
        for s, c in enumerate(widths):
            if s > 0:
                cells.append(ResNetBasicBlock(widths[s - 1], c, affine, track_running_stats))
            cells.extend(make_cell(c) for _ in range(N))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def lid_layers(self) -> list[nn.Module]:
        """The 3N + 2 cell and reduction-block modules, in forward order."""
        return list(self.cells)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__}.forward: x must be a Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}.forward: x must be (B, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"{type(self).__name__}.forward: H and W must be divisible by 4, got "
                             f"{tuple(x.shape[2:])}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h)
        h = self.global_pooling(self.lastact(h)).flatten(1)
        return self.classifier(h)


class NB201Network(_NB201Body):
    """A standalone NB201 network of one arch (NB201's ``TinyNetwork`` with ``InferCell``s)."""

    def __init__(self, arch: Mapping[str, str], C: int = 16, N: int = 5, num_classes: int = 10,
                 in_channels: int = 3, affine: bool = True, track_running_stats: bool = True):
        arch = _check_arch("NB201Network", arch)
        super().__init__(lambda c: NB201Cell(arch, c, affine, track_running_stats),
                         C, N, num_classes, in_channels, affine, track_running_stats)
        self.arch = arch

    def extra_repr(self) -> str:
        return f"arch={nb201_string(self.arch)}"


def _refresh_mask_cache_hook(module: "NB201Supernet", incompatible_keys) -> None:
    """load_state_dict post-hook (a module-level function, so supernets stay picklable)."""
    module._refresh_mask_cache()


class NB201Supernet(_NB201Body, Supernet):
    """Weight-sharing NB201 supernet: every cell holds all 5 candidates of each of its 6 edges.

    ``set_arch(arch)`` activates one op per edge (the same in every cell, as in NB201), after which
    ``forward`` runs only that path. ``set_mask(mask)`` stores the allowed candidates as bool buffers
    in every choice edge (saved in the state dict); ``set_arch`` refuses archs outside it."""

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(lambda c: NB201SearchCell(c, affine, track_running_stats),
                         C, N, num_classes, in_channels, affine, track_running_stats)
        self._arch: Arch | None = None
        # host copy of the mask buffers, so set_arch never synchronises with the device; refreshed
        # by set_mask and after load_state_dict
        self._mask_cache: dict[str, tuple[bool, ...]] = {}
        self._refresh_mask_cache()
        self.register_load_state_dict_post_hook(_refresh_mask_cache_hook)

    def _refresh_mask_cache(self) -> None:
        cell = self.search_cells()[0]
        self._mask_cache = {k: tuple(bool(b) for b in cell.edges[k].mask.tolist())
                            for k in NB201_EDGE_KEYS}

    def search_cells(self) -> list[NB201SearchCell]:
        return [c for c in self.cells if isinstance(c, NB201SearchCell)]

    @property
    def arch(self) -> Arch | None:
        """The active arch (a copy), or None before ``set_arch``."""
        return None if self._arch is None else dict(self._arch)

    def get_mask(self) -> Mask:
        """The allowed candidates, key -> BoolTensor (5,) (from the first cell; all cells agree)."""
        return {k: torch.tensor(v, dtype=torch.bool) for k, v in self._mask_cache.items()}

    def set_mask(self, mask: Mapping[str, torch.Tensor]) -> None:
        """Restrict the supernet to ``mask`` (validated like ``NB201Space.validate_mask``)."""
        clean = NB201Space().validate_mask(mask)
        if self._arch is not None and not all(
                bool(clean[k][NB201_OPS.index(v)]) for k, v in self._arch.items()):
            self._arch = None  # the active arch left the mask: force a new set_arch
            for cell in self.search_cells():
                for edge in cell.edges.values():
                    edge.active = None
        for cell in self.search_cells():
            for k, edge in cell.edges.items():
                edge.mask.copy_(clean[k].to(edge.mask.device))
        self._refresh_mask_cache()

    def set_arch(self, arch: Mapping[str, str]) -> None:
        arch = _check_arch("NB201Supernet.set_arch", arch)
        bad = [k for k, v in arch.items() if not self._mask_cache[k][NB201_OPS.index(v)]]
        if bad:
            raise ValueError(f"NB201Supernet.set_arch: {nb201_string(arch)} uses candidates the "
                             f"supernet's mask disables on {bad}")
        for cell in self.search_cells():
            for k, edge in cell.edges.items():
                edge.active = NB201_OPS.index(arch[k])
        self._arch = arch

    def decision_parameters(self, key: str) -> list[nn.Parameter]:
        """Parameters of all candidates of edge ``key`` in every cell (the conv ops' weights)."""
        if key not in NB201_EDGE_KEYS:
            raise ValueError(f"NB201Supernet.decision_parameters: unknown key {key!r}; choose one of "
                             f"{list(NB201_EDGE_KEYS)}")
        return [p for cell in self.search_cells() for p in cell.edges[key].parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._arch is None:
            raise RuntimeError("NB201Supernet.forward: no architecture is active; call set_arch(arch)")
        return super().forward(x)


# ----- the space -------------------------------------------------------------------------------
class NB201Space(SearchSpace):
    """NAS-Bench-201: decisions are the 6 edges ``edge_<to>_<from>``, each over NB201's 5 ops.

    Options: ``C`` (stage-1 width, 16), ``N`` (cells per stage, 5), ``num_classes`` (10),
    ``in_channels`` (3), ``input_size`` (32; divisible by 4), ``width`` (multiplies C, rounded; 1.0),
    ``affine`` / ``track_running_stats`` (BatchNorm flags of the cell ops and reduction blocks; NB201's
    standalone networks use True / True)."""

    name = "nb201"

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                 input_size: int = 32, width: float = 1.0, affine: bool = True,
                 track_running_stats: bool = True):
        fn = "NB201Space"
        C = _positive_int(fn, "C", C)
        if isinstance(width, bool) or not isinstance(width, numbers.Real) or not math.isfinite(width) \
                or width <= 0:
            raise ValueError(f"{fn}: width must be a positive finite number, got {width!r}")
        self.C = int(round(C * float(width)))
        if self.C < 1:
            raise ValueError(f"{fn}: C * width = {C} * {width} rounds to {self.C} channels (< 1)")
        self.N = _positive_int(fn, "N", N)
        self.num_classes = _positive_int(fn, "num_classes", num_classes)
        self.in_channels = _positive_int(fn, "in_channels", in_channels)
        self.input_size = _check_input_size(fn, input_size)
        self.width = float(width)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self._decisions = OrderedDict((k, NB201_OPS) for k in NB201_EDGE_KEYS)

    def __repr__(self) -> str:
        return (f"NB201Space(C={self.C}, N={self.N}, num_classes={self.num_classes}, "
                f"in_channels={self.in_channels}, input_size={self.input_size})")

    @property
    def options(self) -> dict:
        return dict(C=self.C, N=self.N, num_classes=self.num_classes, in_channels=self.in_channels,
                    input_size=self.input_size, affine=self.affine,
                    track_running_stats=self.track_running_stats)

    def with_cells(self, N: int) -> "NB201Space":
        """The same space with ``N`` cells per stage (same width, input size and BatchNorm flags):
        the network the training-free scores rate under ``search.free_cells``."""
        return NB201Space(**dict(self.options, N=N))

    @property
    def decisions(self) -> "Mapping[str, tuple[str, ...]]":
        """Ordered, read-only view: edge key -> NB201's 5 op names."""
        return MappingProxyType(self._decisions)

    @property
    def num_lid_layers(self) -> int:
        return 3 * self.N + 2

    # ----- encodings ---------------------------------------------------------------------------
    def _as_arch(self, arch, fn: str) -> Arch:
        if isinstance(arch, str):
            return parse_nb201_string(arch, f"NB201Space.{fn}")
        return _check_arch(f"NB201Space.{fn}", arch)

    def validate_arch(self, arch: Mapping[str, str]) -> Arch:
        return _check_arch("NB201Space.validate_arch", arch)

    def arch_to_string(self, arch: Mapping[str, str]) -> str:
        return nb201_string(_check_arch("NB201Space.arch_to_string", arch))

    def arch_from_string(self, s: str) -> Arch:
        return parse_nb201_string(s, "NB201Space.arch_from_string")

    def canonical_key(self, arch) -> str:
        """NB201's isomorphism string: equal exactly when the benchmark's ``unique_id`` is equal.
        ``arch`` may be a mapping or an arch string."""
        return nb201_unique_str(self._as_arch(arch, "canonical_key"))

    def index_of(self, arch) -> int:
        """Official NB201 index (0..15624) of ``arch`` (a mapping or an arch string)."""
        return _index_tables()[1][_arch_code(self._as_arch(arch, "index_of"))]

    def arch_at(self, index: int) -> Arch:
        """The arch with official NB201 index ``index``."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"NB201Space.arch_at: index must be an int, got {type(index).__name__}")
        if not 0 <= index < NUM_NB201_ARCHS:
            raise ValueError(f"NB201Space.arch_at: index {index} outside [0, {NUM_NB201_ARCHS})")
        return _arch_from_code(_index_tables()[0][int(index)])

    def iter_archs(self) -> Iterator[Arch]:
        """All 15,625 archs in official index order."""
        for code in _index_tables()[0]:
            yield _arch_from_code(code)

    # ----- networks ----------------------------------------------------------------------------
    def build_supernet(self) -> NB201Supernet:
        return NB201Supernet(self.C, self.N, self.num_classes, self.in_channels, self.affine,
                             self.track_running_stats)

    def build_subnet(self, arch, supernet: NB201Supernet | None = None) -> NB201Network:
        """Standalone network of ``arch``; with ``supernet``, a copy of its weights and BN buffers
        (then also its device, dtype and train/eval mode). ``arch`` may be a mapping or a string."""
        arch = self._as_arch(arch, "build_subnet")
        net = NB201Network(arch, self.C, self.N, self.num_classes, self.in_channels, self.affine,
                           self.track_running_stats)
        if supernet is None:
            return net
        if not isinstance(supernet, NB201Supernet):
            raise TypeError(f"NB201Space.build_subnet: supernet must be an NB201Supernet, got "
                            f"{type(supernet).__name__}")
        mine = (self.C, self.N, self.num_classes, self.in_channels, self.affine,
                self.track_running_stats)
        theirs = (supernet.C, supernet.N, supernet.num_classes, supernet.in_channels,
                  supernet.affine, supernet.track_running_stats)
        if mine != theirs:
            raise ValueError(f"NB201Space.build_subnet: supernet (C, N, num_classes, in_channels, "
                             f"affine, track_running_stats) = {theirs} differs from the space's {mine}")
        ref = next(supernet.parameters())
        net.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for name in ("stem", "lastact", "classifier"):
                getattr(net, name).load_state_dict(getattr(supernet, name).state_dict())
            for mine_cell, super_cell in zip(net.cells, supernet.cells):
                if isinstance(mine_cell, ResNetBasicBlock):
                    mine_cell.load_state_dict(super_cell.state_dict())
                    continue
                for k in NB201_EDGE_KEYS:
                    chosen = super_cell.edges[k].candidates[NB201_OPS.index(arch[k])]
                    mine_cell.edges[k].load_state_dict(chosen.state_dict())
        net.train(supernet.training)
        return net

    # ----- counts ------------------------------------------------------------------------------
    @functools.cached_property
    def _param_table(self) -> tuple[int, list[dict[str, int]]]:
        """(parameters outside the cell ops, per stage: op -> parameters of one op instance),
        counted on real modules: the fixed part on the network of the all-``none`` cell."""
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())
        empty = NB201Network({k: "none" for k in NB201_EDGE_KEYS}, self.C, self.N, self.num_classes,
                             self.in_channels, self.affine, self.track_running_stats)
        per_stage = [{op: count(make_op(op, c, self.affine, self.track_running_stats))
                      for op in NB201_OPS} for c in stage_widths(self.C)]
        return count(empty), per_stage

    def count_params(self, arch) -> int:
        """Parameters of the standalone network of ``arch`` (exact; from cached per-op counts)."""
        arch = self._as_arch(arch, "count_params")
        fixed, per_stage = self._param_table
        return fixed + self.N * sum(table[arch[k]] for table in per_stage for k in NB201_EDGE_KEYS)

    def count_macs(self, arch, input_size: int | None = None) -> int:
        """Multiply-adds of the convolutions and the linear layer at ``input_size`` (square input;
        default the space's). Pooling, BN, ReLU and additions are not counted."""
        arch = self._as_arch(arch, "count_macs")
        h = self.input_size if input_size is None else _check_input_size("NB201Space.count_macs",
                                                                         input_size)
        widths = stage_widths(self.C)
        kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 9}
        macs = h * h * self.in_channels * self.C * 9  # stem
        for s, c in enumerate(widths):
            if s > 0:
                c_in, h = widths[s - 1], h // 2
                macs += h * h * (c_in * c * 9 + c * c * 9 + c_in * c)  # conv_a, conv_b, shortcut
            cell = sum(kernel.get(arch[k], 0) for k in NB201_EDGE_KEYS) * h * h * c * c
            macs += self.N * cell
        return macs + widths[-1] * self.num_classes
