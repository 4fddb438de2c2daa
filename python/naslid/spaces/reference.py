"""Loaders for architectures released by the NAS-LID and GM-NAS authors (ImageNet, ProxylessNAS
and OFA spaces) into architectures / masks of our spaces.

* ``load_naslid_mask(src, space)``: NAS-LID's hyperbox masks (``naslid_proxylessv{1,2}_mask.json``,
  ``naslid_ofa_mask.json``) -> a mask of ``space``. The OFA mask is one-hot over NAS-LID's choice
  sets (depth {3, 4}, kernel {3, 5, 7}, expand {4, 6}); values are mapped by number onto the
  space's own choice sets. hyperbox's ``er_block{b}_subMB_mc*`` keys must equal ``er_block{b}``
  and are dropped.
* ``load_net_config(src, space)``: a ProxylessNAS / OFA "net config" (``GM_*.config``,
  ``proxyless_gpu.config``: the layer-by-layer JSON of ``ProxylessNASNets`` / ``OFAMobileNetV3``)
  -> an arch of ``space``; every channel count, stride, activation, SE flag and shortcut is
  checked against the space.
* ``config_space_options(src)``: (space name, options) of the space a config belongs to (width
  found as the multiple of 0.05 that reproduces every channel count); ``space_for_config``.
* ``single_arch(space, mask)``: the architecture of a one-hot mask.
* ``to_net_config(space, arch)``: the inverse of ``load_net_config`` (same JSON layout).

Every mismatch raises ValueError naming the file's layer / key and the expected value.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Mapping

import torch

from .base import Arch, Mask, SearchSpace
from .ofa import BASE_WIDTHS as OFA_BASE_WIDTHS, NUM_UNITS, UNIT_ACTS, UNIT_SE, OFASpace
from .proxyless import ZERO, ProxylessSpace, parse_op
from .mobile_blocks import make_divisible

#: NAS-LID's OFA search (``Imagenet_train/train.py``): depth_list [3, 4], expand_ratio_list [4, 6].
NASLID_OFA_CHOICES = {"depth": (3, 4), "kernel": (3, 5, 7), "expand": (4, 6)}
#: NAS-LID's ProxylessNAS ImageNet run: ``width_mult=1.4``, ``width_stages=[30,40,80,96,182,320]``
#: (base widths, multiplied by 1.4 and rounded to multiples of 8: 40, 56, 112, 136, 256, 448).
NASLID_PROXYLESS_OPTIONS = {"width": 1.4, "stage_widths": (30, 40, 80, 96, 182, 320)}
NASLID_OFA_OPTIONS = {"width": 1.2, "depth_choices": (3, 4), "expand_choices": (4, 6)}


def _read_json(src, what: str) -> tuple[dict, str]:
    if isinstance(src, Mapping):
        return dict(src), what
    if isinstance(src, (str, os.PathLike)):
        try:
            with open(src) as f:
                return json.load(f), os.fspath(src)
        except json.JSONDecodeError as e:
            raise ValueError(f"{what}: {os.fspath(src)} is not valid JSON ({e})") from None
    raise TypeError(f"{what}: expected a path or a dict, got {type(src).__name__}")


# ----------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------
def load_naslid_mask(src, space: SearchSpace, ofa_choices: Mapping | None = None) -> Mask:
    """A NAS-LID hyperbox mask (path or dict: key -> list of bools) as a mask of ``space``.

    ProxylessNAS: the keys and candidate orders are ours, loaded as is. OFA: one-hot lists over
    ``ofa_choices`` (default ``NASLID_OFA_CHOICES``) are mapped by value; an enabled value that
    the space does not offer is an error."""
    obj, name = _read_json(src, "load_naslid_mask")
    fn = f"load_naslid_mask({name})"
    if isinstance(space, ProxylessSpace):
        try:
            return space.mask_from_json(obj)
        except ValueError as e:
            raise ValueError(f"{fn}: does not fit the proxyless space: {e}") from None
    if not isinstance(space, OFASpace):
        raise ValueError(f"{fn}: no NAS-LID mask format for space {space.name!r}")
    choices = dict(NASLID_OFA_CHOICES if ofa_choices is None else ofa_choices)
    base: dict[str, list] = {}
    for k, v in obj.items():
        if "_subMB_mc" in k:
            root = k.split("_subMB_mc")[0]
            if root not in obj:
                raise ValueError(f"{fn}: key {k!r} without its {root!r}")
            if [bool(x) for x in v] != [bool(x) for x in obj[root]]:
                raise ValueError(f"{fn}: {k!r} = {v} differs from {root!r} = {obj[root]}")
            continue
        base[k] = v
    mask: Mask = {}
    for k, v in base.items():
        if k not in space.decisions:
            raise ValueError(f"{fn}: key {k!r} is not a decision of the ofa space "
                             f"(max depth {space.max_depth}: keys depth1..5, "
                             f"ks_block1..{5 * space.max_depth})")
        kind = "depth" if k.startswith("depth") else "kernel" if k.startswith("ks_") else "expand"
        src_vals = tuple(choices[kind])
        if not isinstance(v, (list, tuple)) or len(v) != len(src_vals):
            raise ValueError(f"{fn}: {k!r} has {len(v) if isinstance(v, (list, tuple)) else v!r} "
                             f"entries, expected {len(src_vals)} (one per {kind} in {src_vals})")
        cands = space.decisions[k]
        bits = torch.zeros(len(cands), dtype=torch.bool)
        for val, on in zip(src_vals, v):
            if not on:
                continue
            if str(val) not in cands:
                raise ValueError(f"{fn}: {k!r} enables {kind} {val}, which the space does not offer "
                                 f"(its choices: {list(cands)})")
            bits[cands.index(str(val))] = True
        mask[k] = bits
    try:
        return space.validate_mask(mask)
    except ValueError as e:
        raise ValueError(f"{fn}: does not fit the ofa space: {e}") from None


def single_arch(space: SearchSpace, mask: Mask) -> Arch:
    """The architecture of a mask with exactly one allowed candidate per decision."""
    mask = space.validate_mask(mask)
    arch: Arch = {}
    for k, v in mask.items():
        if int(v.sum()) != 1:
            allowed = [c for c, b in zip(space.decisions[k], v) if b]
            raise ValueError(f"single_arch: decision {k!r} allows {allowed}, not exactly one op")
        arch[k] = space.decisions[k][int(torch.nonzero(v))]
    return arch


# ----------------------------------------------------------------------------------------------
# net configs
# ----------------------------------------------------------------------------------------------
def _conv(block: Mapping) -> Mapping:
    conv = block.get("mobile_inverted_conv", block.get("conv"))
    if not isinstance(conv, Mapping):
        raise ValueError(f"block {block.get('name')!r} has no mobile_inverted_conv / conv entry")
    return conv


def _widths(cfg: Mapping) -> tuple[str, list[int]]:
    """(kind, the channel counts the width determines) of a config."""
    name = cfg.get("name")
    blocks = cfg.get("blocks")
    if not isinstance(blocks, list) or not blocks or "first_conv" not in cfg:
        raise ValueError("net config: needs 'first_conv' and a non-empty 'blocks' list")
    stem = cfg["first_conv"]["out_channels"]
    first = _conv(blocks[0])["out_channels"]
    outs = []
    for b in blocks[1:]:
        c = _conv(b)
        if c.get("name") != "ZeroLayer" and c["out_channels"] not in outs:
            outs.append(c["out_channels"])
    if name == "ProxylessNASNets":
        return "proxyless", [stem, first, *outs, cfg["feature_mix_layer"]["out_channels"]]
    if name in ("OFAMobileNetV3", "MobileNetV3"):
        return "ofa", [stem, first, *outs, cfg["final_expand_layer"]["out_channels"],
                       cfg["feature_mix_layer"]["out_channels"]]
    raise ValueError(f"net config: unknown network name {name!r} "
                     f"(expected ProxylessNASNets, OFAMobileNetV3 or MobileNetV3)")


def config_space_options(src) -> tuple[str, dict]:
    """(space name, options) reproducing a net config's channel counts with the default base
    widths: the smallest width in 0.05 steps (0.05 .. 4) that gives every channel count."""
    cfg, name = _read_json(src, "config_space_options")
    kind, got = _widths(cfg)
    for i in range(1, 81):
        w = round(i * 0.05, 2)
        if kind == "proxyless":
            sp = ProxylessSpace(width=w)
            want = [sp.stem_channels, sp.first_channels, *sp.stage_widths, sp.last_channels]
        else:
            want = [make_divisible(b * w, 8) for b in OFA_BASE_WIDTHS]
        if want == got:
            opts = {"width": w, "num_classes": int(cfg["classifier"]["out_features"]),
                    "in_channels": int(cfg["first_conv"]["in_channels"])}
            return kind, opts
    raise ValueError(f"config_space_options({name}): channel counts {got} match no width "
                     f"multiple of 0.05 of the {kind} space's base widths")


def space_for_config(src, **overrides) -> SearchSpace:
    """The space (ProxylessSpace / OFASpace) that a net config's network belongs to."""
    kind, opts = config_space_options(src)
    opts.update(overrides)
    return ProxylessSpace(**opts) if kind == "proxyless" else OFASpace(**opts)


def _expect(fn: str, where: str, what: str, got, want) -> None:
    if got != want:
        raise ValueError(f"{fn}: {where}: {what} is {got!r}, the space has {want!r}")


def load_net_config(src, space: SearchSpace) -> Arch:
    """The architecture of a ProxylessNAS / OFA net config in ``space`` (which must have the
    config's width, classes and input channels: see ``space_for_config``)."""
    cfg, name = _read_json(src, "load_net_config")
    fn = f"load_net_config({name})"
    try:
        kind, _ = _widths(cfg)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{fn}: malformed net config ({e!r})") from None
    except ValueError as e:
        raise ValueError(f"{fn}: {e}") from None
    if kind != space.name:
        raise ValueError(f"{fn}: a {kind} network, but the space is {space.name!r}")
    try:
        if kind == "proxyless":
            return _proxyless_config(fn, cfg, space)
        return _ofa_config(fn, cfg, space)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{fn}: malformed net config ({e!r})") from None


def _head_checks(fn: str, cfg: Mapping, space, stem_act: str) -> None:
    fc = cfg["first_conv"]
    _expect(fn, "first_conv", "in_channels", fc["in_channels"], space.in_channels)
    _expect(fn, "first_conv", "out_channels", fc["out_channels"], space.stem_channels)
    _expect(fn, "first_conv", "kernel/stride", (fc["kernel_size"], fc["stride"]), (3, 2))
    _expect(fn, "first_conv", "act_func", fc.get("act_func"), stem_act)
    _expect(fn, "classifier", "out_features", cfg["classifier"]["out_features"], space.num_classes)
    first = _conv(cfg["blocks"][0])
    _expect(fn, "blocks[0]", "(in, out, kernel, stride, expand)",
            (first["in_channels"], first["out_channels"], first["kernel_size"], first["stride"],
             first["expand_ratio"]), (space.stem_channels, space.first_channels, 3, 1, 1))


def _proxyless_config(fn: str, cfg: Mapping, space: ProxylessSpace) -> Arch:
    _head_checks(fn, cfg, space, "relu6")
    blocks = cfg["blocks"][1:]
    _expect(fn, "blocks", "count after the first block", len(blocks), len(space.layers))
    arch: Arch = {}
    for i, ((key, cin, cout, stride, first), blk) in enumerate(zip(space.layers, blocks), start=1):
        conv, where = _conv(blk), f"blocks[{i}] ({key})"
        if conv.get("name") == "ZeroLayer":
            if first:
                raise ValueError(f"{fn}: {where}: ZeroLayer at a stage-first layer")
            if blk.get("shortcut") is None:
                raise ValueError(f"{fn}: {where}: ZeroLayer without shortcut (the space's Zero is "
                                 f"an identity layer)")
            arch[key] = ZERO
            continue
        _expect(fn, where, "(in, out, stride)", (conv["in_channels"], conv["out_channels"],
                                                 conv["stride"]), (cin, cout, stride))
        _expect(fn, where, "shortcut", blk.get("shortcut") is not None, not first)
        if conv.get("mid_channels") not in (None, round(cin * conv["expand_ratio"])):
            raise ValueError(f"{fn}: {where}: mid_channels {conv['mid_channels']} is not "
                             f"round(in * expand) = {round(cin * conv['expand_ratio'])}")
        op = f"{conv['kernel_size']}x{conv['kernel_size']}_MBConv{conv['expand_ratio']}"
        if op not in space.decisions[key]:
            raise ValueError(f"{fn}: {where}: op {op!r} is not one of {list(space.decisions[key])}")
        arch[key] = op
    fm = cfg["feature_mix_layer"]
    _expect(fn, "feature_mix_layer", "(in, out)", (fm["in_channels"], fm["out_channels"]),
            (space.stage_widths[-1], space.last_channels))
    return space.validate_arch(arch)


def _ofa_config(fn: str, cfg: Mapping, space: OFASpace) -> Arch:
    _head_checks(fn, cfg, space, "h_swish")
    # split blocks[1:] into units: a unit starts at a block without shortcut
    units: list[list[Mapping]] = []
    for blk in cfg["blocks"][1:]:
        if blk.get("shortcut") is None or not units:
            units.append([])
        units[-1].append(blk)
    _expect(fn, "blocks", "number of units (blocks without shortcut start one)", len(units), NUM_UNITS)
    arch: Arch = {}
    for u, ublocks in enumerate(units, start=1):
        if len(ublocks) not in space.depth_choices:
            raise ValueError(f"{fn}: unit {u} has depth {len(ublocks)}, not one of the space's "
                             f"depth choices {space.depth_choices}")
        arch[f"depth{u}"] = str(len(ublocks))
        rows = space._unit_blocks(u)
        for j, (_, _, b, cin, cout, stride) in enumerate(rows):
            if j >= len(ublocks):  # inactive block: first candidates (see OFASpace.canonical_arch)
                arch[f"ks_block{b}"] = space.decisions[f"ks_block{b}"][0]
                arch[f"er_block{b}"] = space.decisions[f"er_block{b}"][0]
                continue
            conv, where = _conv(ublocks[j]), f"unit {u} block {j + 1} (block{b})"
            _expect(fn, where, "(in, out, stride)", (conv["in_channels"], conv["out_channels"],
                                                     conv["stride"]), (cin, cout, stride))
            _expect(fn, where, "act_func", conv.get("act_func"), UNIT_ACTS[u - 1])
            _expect(fn, where, "use_se", bool(conv.get("use_se")), UNIT_SE[u - 1])
            e = conv["expand_ratio"]
            if conv.get("mid_channels") not in (None, space.mid_channels(cin, e)):
                raise ValueError(f"{fn}: {where}: mid_channels {conv['mid_channels']} differs from "
                                 f"the space's {space.mid_channels(cin, e)}")
            for key, val in ((f"ks_block{b}", conv["kernel_size"]), (f"er_block{b}", e)):
                if str(val) not in space.decisions[key]:
                    raise ValueError(f"{fn}: {where}: {key} = {val} is not one of "
                                     f"{list(space.decisions[key])}")
                arch[key] = str(val)
    fe, fm = cfg["final_expand_layer"], cfg["feature_mix_layer"]
    _expect(fn, "final_expand_layer", "(in, out)", (fe["in_channels"], fe["out_channels"]),
            (space.unit_widths[-1], space.final_expand_channels))
    _expect(fn, "feature_mix_layer", "(in, out)", (fm["in_channels"], fm["out_channels"]),
            (space.final_expand_channels, space.last_channels))
    return space.validate_arch(OrderedDict((k, arch[k]) for k in space.decisions))


# ----------------------------------------------------------------------------------------------
# writing net configs
# ----------------------------------------------------------------------------------------------
def _conv_layer(cin: int, cout: int, kernel: int, stride: int, act: str | None,
                use_bn: bool = True) -> dict:
    return {"name": "ConvLayer", "kernel_size": kernel, "stride": stride, "dilation": 1, "groups": 1,
            "bias": False, "has_shuffle": False, "in_channels": cin, "out_channels": cout,
            "use_bn": use_bn, "act_func": act, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def _identity(c: int) -> dict:
    return {"name": "IdentityLayer", "in_channels": c, "out_channels": c, "use_bn": False,
            "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def _mb(cin: int, cout: int, kernel: int, stride: int, expand: int, **extra) -> dict:
    return {"name": "MBInvertedConvLayer", "in_channels": cin, "out_channels": cout,
            "kernel_size": kernel, "stride": stride, "expand_ratio": expand, "mid_channels": None,
            **extra}


def to_net_config(space: SearchSpace, arch: Mapping[str, str]) -> dict:
    """The ProxylessNAS / OFA net config (the layout of ``proxyless_gpu.config`` / ``GM_*.config``)
    of ``arch``; ``load_net_config`` reads it back (OFA: as ``canonical_arch(arch)``)."""
    arch = space.validate_arch(arch)
    bn = {"momentum": space.bn_momentum, "eps": space.bn_eps}
    classifier = {"name": "LinearLayer", "in_features": space.last_channels,
                  "out_features": space.num_classes, "bias": True, "use_bn": False, "act_func": None,
                  "dropout_rate": space.dropout, "ops_order": "weight_bn_act"}
    if isinstance(space, ProxylessSpace):
        blocks = [{"name": "MobileInvertedResidualBlock", "shortcut": None,
                   "mobile_inverted_conv": _mb(space.stem_channels, space.first_channels, 3, 1, 1)}]
        for key, cin, cout, stride, first in space.layers:
            if arch[key] == ZERO:
                conv = {"name": "ZeroLayer", "stride": stride}
            else:
                k, e = parse_op(arch[key])
                conv = _mb(cin, cout, k, stride, e)
            blocks.append({"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv,
                           "shortcut": None if first else _identity(cin)})
        return {"name": "ProxylessNASNets", "bn": bn,
                "first_conv": _conv_layer(space.in_channels, space.stem_channels, 3, 2, "relu6"),
                "blocks": blocks,
                "feature_mix_layer": _conv_layer(space.stage_widths[-1], space.last_channels, 1, 1,
                                                 "relu6"),
                "classifier": classifier}
    if isinstance(space, OFASpace):
        first = _mb(space.stem_channels, space.first_channels, 3, 1, 1, act_func="relu", use_se=False)
        blocks = [{"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": first,
                   "shortcut": _identity(space.first_channels)}]
        for u, j, b, cin, cout, stride in space.active_blocks(arch):
            conv = _mb(cin, cout, int(arch[f"ks_block{b}"]), stride, int(arch[f"er_block{b}"]),
                       act_func=UNIT_ACTS[u - 1], use_se=UNIT_SE[u - 1])
            blocks.append({"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv,
                           "shortcut": None if j == 0 else _identity(cin)})
        return {"name": "OFAMobileNetV3", "bn": bn,
                "first_conv": _conv_layer(space.in_channels, space.stem_channels, 3, 2, "h_swish"),
                "blocks": blocks,
                "final_expand_layer": _conv_layer(space.unit_widths[-1], space.final_expand_channels,
                                                  1, 1, "h_swish"),
                "feature_mix_layer": _conv_layer(space.final_expand_channels, space.last_channels,
                                                 1, 1, "h_swish", use_bn=False),
                "classifier": classifier}
    raise ValueError(f"to_net_config: no net config format for space {space.name!r}")
