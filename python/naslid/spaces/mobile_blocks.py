"""Building blocks of the mobile search spaces (ProxylessNAS, OFA / MobileNetV3).

* ``make_divisible``: the channel rounding rule of ProxylessNAS and OFA.
* ``ConvBNAct``: conv (no bias) -> optional BN -> optional activation.
* ``SqueezeExcite``: MobileNetV3 SE (reduction 4, mid channels divisible by 8, h-sigmoid gate).
* ``MBConv``: a plain (static) inverted residual block; what standalone subnets are made of.
* ``ElasticMBConv``: OFA's weight-sharing block with elastic kernel (centre crop + kernel
  transformation matrices) and elastic expand ratio (first channels); ``to_static`` extracts a
  ``MBConv`` holding the active weights.
* ``MobileNet``: the plain standalone network (stem, blocks, head, classifier).
* MAC helpers: analytic multiply-add counts of conv / linear layers.

Shapes: feature maps are (B, C, H, W); logits (B, num_classes).
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import add_into
from .batch_norm import batch_norm_args

ACTIVATIONS = ("relu", "relu6", "h_swish")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``) without going below 90 % of ``v`` (the rule of ProxylessNAS, OFA, MobileNetV2)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def build_activation(name: str | None) -> nn.Module:
    """``relu`` | ``relu6`` | ``h_swish`` (x * relu6(x + 3) / 6) | None (identity)."""
    if name is None:
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "relu6":
        return nn.ReLU6(inplace=False)
    if name == "h_swish":
        return nn.Hardswish()
    raise ValueError(f"build_activation: unknown activation {name!r}, expected one of {ACTIVATIONS}")


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv with padding ``kernel // 2`` (odd kernels: ceil(size / stride))."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def conv_macs(cin: int, cout: int, kernel: int, groups: int, h_out: int, w_out: int) -> int:
    """Multiply-adds of a conv: ``h_out * w_out * cout * (cin / groups) * kernel**2``."""
    return h_out * w_out * cout * (cin // groups) * kernel * kernel


def mbconv_params(cin: int, cout: int, kernel: int, mid: int, expand_conv: bool, se: bool) -> int:
    """Parameters of an ``MBConv`` (BN affine weights included, running stats not)."""
    n = (cin * mid + 2 * mid) if expand_conv else 0
    n += mid * kernel * kernel + 2 * mid + mid * cout + 2 * cout
    if se:
        sm = se_mid_channels(mid)
        n += 2 * mid * sm + sm + mid
    return n


class ConvBNAct(nn.Sequential):
    """conv(k, stride, padding k//2, groups, no bias) -> [BN] -> [activation]."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = None, use_bn: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.cin, self.cout, self.kernel, self.stride, self.groups = cin, cout, kernel, stride, groups
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        if use_bn:
            self.bn = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=bn_eps)
        if act is not None:
            self.act = build_activation(act)

    def macs(self, h: int, w: int) -> tuple[int, int, int]:
        """(multiply-adds, h_out, w_out) for an (h, w) input."""
        ho, wo = conv_out_size(h, self.kernel, self.stride), conv_out_size(w, self.kernel, self.stride)
        return conv_macs(self.cin, self.cout, self.kernel, self.groups, ho, wo), ho, wo


def se_mid_channels(channels: int, reduction: int = 4) -> int:
    """Hidden width of OFA's SE module for ``channels`` inputs."""
    return make_divisible(channels // reduction, 8)


class SqueezeExcite(nn.Module):
    """x * h_sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2); W1: C -> se_mid_channels(C), 1x1 convs."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        mid = se_mid_channels(channels, reduction)
        self.channels, self.mid = channels, mid
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        y = F.hardsigmoid(self.expand(F.relu(self.reduce(y))))
        return x * y

    def macs(self) -> int:
        """Multiply-adds of the two 1x1 convs on the pooled (1x1) map."""
        return 2 * self.channels * self.mid


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand, BN, act] -> kxk depthwise (stride), BN, act -> [SE] ->
    1x1 project, BN; plus the input when ``residual``.

    ``mid`` hidden channels (ProxylessNAS: round(cin * expand); OFA: make_divisible of that);
    ``expand_conv=False`` drops the 1x1 expand conv (expand ratio 1, then mid must equal cin).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, act: str,
                 use_se: bool = False, residual: bool = False, expand_conv: bool = True,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        if not expand_conv and mid != cin:
            raise ValueError(f"MBConv: without an expand conv mid ({mid}) must equal cin ({cin})")
        if residual and (stride != 1 or cin != cout):
            raise ValueError(f"MBConv: residual needs stride 1 and cin == cout "
                             f"(got stride {stride}, {cin} -> {cout})")
        self.cin, self.cout, self.kernel, self.stride, self.mid = cin, cout, kernel, stride, mid
        self.use_se, self.residual = use_se, residual
        bn = dict(bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.expand = ConvBNAct(cin, mid, 1, act=act, **bn) if expand_conv else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act, **bn)
        self.se = SqueezeExcite(mid) if use_se else None
        self.project = ConvBNAct(mid, cout, 1, act=None, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return add_into(y, x, (x,)) if self.residual else y  # = x + y, in place

    def macs(self, h: int, w: int, count_se: bool = True) -> tuple[int, int, int]:
        """(multiply-adds, h_out, w_out); ``count_se``: include the SE 1x1 convs."""
        return mbconv_macs(self.cin, self.cout, self.kernel, self.stride, self.mid,
                           self.expand is not None, self.use_se and count_se, h, w)


def mbconv_macs(cin: int, cout: int, kernel: int, stride: int, mid: int, expand_conv: bool,
                se: bool, h: int, w: int) -> tuple[int, int, int]:
    """(multiply-adds, h_out, w_out) of an ``MBConv`` on an (h, w) input, without building it:
    expand 1x1 (h*w*mid*cin) + depthwise (ho*wo*mid*k*k) + [SE 2*mid*se_mid] + project."""
    total = h * w * mid * cin if expand_conv else 0
    ho, wo = conv_out_size(h, kernel, stride), conv_out_size(w, kernel, stride)
    total += ho * wo * mid * kernel * kernel + ho * wo * cout * mid
    if se:
        total += 2 * mid * se_mid_channels(mid)
    return total, ho, wo


def _bn_forward(bn: nn.BatchNorm2d, x: torch.Tensor, c: int) -> torch.Tensor:
    """BatchNorm over the first ``c`` channels of ``bn``: the same semantics as ``bn(x)`` on a
    ``c``-channel BN (running statistics of the slice updated in place; ``momentum=None`` =
    cumulative average, ``num_batches_tracked`` counted)."""
    if c == bn.num_features:
        return bn(x)
    use_batch_stats, mean, var, factor = batch_norm_args(bn)
    return F.batch_norm(x, mean[:c] if mean is not None else None,
                        var[:c] if var is not None else None,
                        bn.weight[:c] if bn.weight is not None else None,
                        bn.bias[:c] if bn.bias is not None else None,
                        use_batch_stats, factor, bn.eps)


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    dst.weight.data.copy_(src.weight.data[:c])
    dst.bias.data.copy_(src.bias.data[:c])
    dst.running_mean.data.copy_(src.running_mean.data[:c])
    dst.running_var.data.copy_(src.running_var.data[:c])
    dst.num_batches_tracked.data.copy_(src.num_batches_tracked.data)
    dst.momentum, dst.eps = src.momentum, src.eps


_ELASTIC_ACTS = {"relu": F.relu, "relu6": F.relu6, "h_swish": F.hardswish}


class ElasticMBConv(nn.Module):
    """OFA's dynamic inverted residual: one set of weights at the largest kernel and expand ratio.

    Active kernel k: the centre k x k of the largest kernel; with ``kernel_transform`` (OFA's
    default) each step down (7 -> 5 -> 3) also multiplies the cropped kernel, flattened per
    channel, by a learned (k*k, k*k) matrix initialised to the identity. Active expand e:
    ``mid = make_divisible(round(cin * e), 8)`` first hidden channels of the expand conv, BNs,
    SE (hidden ``se_mid_channels(mid)``) and project conv.
    """

    def __init__(self, cin: int, cout: int, kernel_choices: Sequence[int],
                 expand_choices: Sequence[int], stride: int, act: str, use_se: bool,
                 residual: bool, kernel_transform: bool = True, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5):
        super().__init__()
        if act not in _ELASTIC_ACTS:
            raise ValueError(f"ElasticMBConv: act must be one of {list(_ELASTIC_ACTS)}, got {act!r}")
        self.cin, self.cout, self.stride, self.act_name = cin, cout, stride, act
        self.kernel_choices = tuple(sorted(int(k) for k in kernel_choices))
        self.expand_choices = tuple(sorted(int(e) for e in expand_choices))
        self.use_se, self.residual, self.kernel_transform = use_se, residual, kernel_transform
        self.bn_momentum, self.bn_eps = bn_momentum, bn_eps
        kmax = self.kernel_choices[-1]
        mid = self.mid_channels(self.expand_choices[-1])
        self.max_mid = mid
        self.expand_weight = nn.Parameter(torch.empty(mid, cin, 1, 1))
        self.expand_bn = nn.BatchNorm2d(mid, momentum=bn_momentum, eps=bn_eps)
        self.dw_weight = nn.Parameter(torch.empty(mid, 1, kmax, kmax))
        self.dw_bn = nn.BatchNorm2d(mid, momentum=bn_momentum, eps=bn_eps)
        if kernel_transform:
            for big, small in zip(self.kernel_choices[:0:-1], self.kernel_choices[-2::-1]):
                self.register_parameter(f"transform_{big}to{small}",
                                        nn.Parameter(torch.eye(small * small)))
        if use_se:
            se_mid = se_mid_channels(mid)
            self.se_reduce = nn.Conv2d(mid, se_mid, 1, bias=True)
            self.se_expand = nn.Conv2d(se_mid, mid, 1, bias=True)
        self.project_weight = nn.Parameter(torch.empty(cout, mid, 1, 1))
        self.project_bn = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=bn_eps)
        self.reset_parameters()
        self.active_kernel, self.active_expand = kmax, self.expand_choices[-1]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh init of the elastic tensors (He normal, fan_out; transformation matrices = I).
        Child modules (BNs, SE convs) reset themselves."""
        for w in (self.expand_weight, self.dw_weight, self.project_weight):
            nn.init.kaiming_normal_(w, mode="fan_out")
        for name, p in self.named_parameters(recurse=False):
            if name.startswith("transform_"):
                p.copy_(torch.eye(p.shape[0], dtype=p.dtype, device=p.device))

    def mid_channels(self, expand: int) -> int:
        return make_divisible(round(self.cin * expand), 8)

    def set_active(self, kernel: int, expand: int) -> None:
        if kernel not in self.kernel_choices or expand not in self.expand_choices:
            raise ValueError(f"ElasticMBConv.set_active: kernel {kernel} / expand {expand} not in "
                             f"{self.kernel_choices} / {self.expand_choices}")
        self.active_kernel, self.active_expand = kernel, expand

    def active_dw_weight(self, kernel: int, mid: int) -> torch.Tensor:
        """(mid, 1, kernel, kernel) depthwise filter for the active kernel size."""
        w = self.dw_weight[:mid]
        cur = self.kernel_choices[-1]
        for small in reversed(self.kernel_choices[:-1]):
            if cur <= kernel:
                break
            s = (cur - small) // 2
            w = w[:, :, s:s + small, s:s + small]
            if self.kernel_transform:
                m = getattr(self, f"transform_{cur}to{small}")
                w = F.linear(w.reshape(mid, small * small), m).reshape(mid, 1, small, small)
            cur = small
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, mid = self.active_kernel, self.mid_channels(self.active_expand)
        act = _ELASTIC_ACTS[self.act_name]
        y = act(_bn_forward(self.expand_bn, F.conv2d(x, self.expand_weight[:mid]), mid))
        y = F.conv2d(y, self.active_dw_weight(k, mid), None, self.stride, k // 2, 1, mid)
        y = act(_bn_forward(self.dw_bn, y, mid))
        if self.use_se:
            sm = se_mid_channels(mid)
            g = y.mean((2, 3), keepdim=True)
            g = F.relu(F.conv2d(g, self.se_reduce.weight[:sm, :mid], self.se_reduce.bias[:sm]))
            g = F.hardsigmoid(F.conv2d(g, self.se_expand.weight[:mid, :sm], self.se_expand.bias[:mid]))
            y = y * g
        y = _bn_forward(self.project_bn, F.conv2d(y, self.project_weight[:, :mid]), self.cout)
        return add_into(y, x, (x,)) if self.residual else y  # = x + y, in place

    @torch.no_grad()
    def to_static(self, kernel: int, expand: int) -> MBConv:
        """A plain ``MBConv`` equal to this block at (kernel, expand), weights copied."""
        self.set_active(kernel, expand)
        mid = self.mid_channels(expand)
        b = MBConv(self.cin, self.cout, kernel, self.stride, mid, self.act_name, self.use_se,
                   self.residual, True, self.bn_momentum, self.bn_eps)
        b.expand.conv.weight.copy_(self.expand_weight[:mid])
        _copy_bn(b.expand.bn, self.expand_bn, mid)
        b.depthwise.conv.weight.copy_(self.active_dw_weight(kernel, mid))
        _copy_bn(b.depthwise.bn, self.dw_bn, mid)
        if self.use_se:
            sm = b.se.mid
            b.se.reduce.weight.copy_(self.se_reduce.weight[:sm, :mid])
            b.se.reduce.bias.copy_(self.se_reduce.bias[:sm])
            b.se.expand.weight.copy_(self.se_expand.weight[:mid, :sm])
            b.se.expand.bias.copy_(self.se_expand.bias[:mid])
        b.project.conv.weight.copy_(self.project_weight[:, :mid])
        _copy_bn(b.project.bn, self.project_bn, self.cout)
        return b.train(self.training)


class MobileNet(nn.Module):
    """Plain standalone network: stem -> blocks -> head (before pooling) -> global average pool ->
    post_pool (e.g. OFA's 1x1 feature-mix conv on the pooled map) -> dropout -> classifier.

    x (B, C_in, H, W) -> logits (B, num_classes).
    """

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], head: nn.Module,
                 post_pool: nn.Module | None, classifier: nn.Linear, dropout: float = 0.0):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head
        self.post_pool = post_pool if post_pool is not None else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("MobileNet.forward", x, self.stem.conv.in_channels)
        x = self.head(self.blocks(self.stem(x)))
        x = self.post_pool(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def copy_module(m: nn.Module) -> nn.Module:
    """Deep copy of a (static) module: standalone subnets never share tensors with the supernet."""
    return copy.deepcopy(m)


def check_positive_int(fn: str, name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{fn}: {name} must be a positive int, got {v!r}")
    return v


def check_width(fn: str, width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) \
            or width <= 0:
        raise ValueError(f"{fn}: width must be a finite number > 0, got {width!r}")
    return float(width)


MIN_INPUT_SIZE = 32  # five stride-2 reductions: 32 px -> 1 x 1 before the head


def check_input_size(fn: str, input_size) -> int:
    if isinstance(input_size, bool) or not isinstance(input_size, int) \
            or input_size < MIN_INPUT_SIZE:
        raise ValueError(f"{fn}: input_size must be an int >= {MIN_INPUT_SIZE} (the network "
                         f"downsamples by 32), got {input_size!r}")
    return input_size


def check_input(fn: str, x: torch.Tensor, in_channels: int) -> None:
    """Images must be (B, in_channels, H, W)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != in_channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{fn}: expected input (B, {in_channels}, H, W), got {shape}")


def mixed_radix_index(decisions, arch) -> int:
    """Index of ``arch`` with every decision a digit (first decision most significant)."""
    idx = 0
    for k, cands in decisions.items():
        idx = idx * len(cands) + cands.index(arch[k])
    return idx


def mixed_radix_arch(decisions, index: int, fn: str) -> dict:
    """Inverse of ``mixed_radix_index``."""
    total = math.prod(len(c) for c in decisions.values())
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < total:
        raise ValueError(f"{fn}: index must be an int in [0, {total}), got {index!r}")
    out = {}
    for k, cands in reversed(list(decisions.items())):
        index, r = divmod(index, len(cands))
        out[k] = cands[r]
    return {k: out[k] for k in decisions}
