"""Zero-cost proxies: training-free architecture scores to compare NAS-LID against.

Both proxies score the *stand-alone* network of an architecture (``space.build_subnet(arch)``),
freshly initialised under an explicit seed, on the same cells NAS-LID ranks; higher = better.

``synflow``  Tanaka et al. 2020, as a NAS proxy in Abdelfattah et al. 2021 ("Zero-cost proxies
             for lightweight NAS"). Data-free. On a float64 copy of the network with every
             parameter replaced by its absolute value, BatchNorm in eval mode (a fresh network's
             running statistics: mean 0, variance 1, so BN is a per-channel positive scale) and
             dropout off, feed one all-ones input x = 1 of shape (1, C_in, H, W), take
             R = sum of the logits, backpropagate, and sum ``|θ ⊙ ∂R/∂θ|`` over the weights of
             every conv and linear layer (biases and BN parameters are made positive but not
             summed). ``proxy_score`` returns this raw score (>= 0); ``synflow`` also gives its
             natural log.
``naswot``   Mellor et al. 2021 ("Neural Architecture Search without Training"). One batch of N
             images (the user's data), the network in train mode (BN uses the batch statistics).
             For every call of a rectifier module (``nn.ReLU``, ``nn.ReLU6``) the binary code
             c = (input > 0) of each sample is flattened to a row of the (N, D) 0/1 matrix C and
             K += C Cᵀ + (1 − C)(1 − C)ᵀ, so K_ij = (units seen) − Hamming(code_i, code_j).
             Score: log|det K|. A singular K (two samples with identical codes everywhere, e.g. a
             cell whose output is always zero, or any rank deficiency) gives ``float('-inf')``,
             never NaN; singularity is decided exactly on the integer K (``naslid.scores.exact_det``),
             never by a float LU's rounding, so it is the same on every CPU.

Public API::

    PROXIES = ("synflow", "naswot")
    proxy_score(name, space, arch, *, batch=None, seed=0, device="cpu") -> float
    score_archs(name, space, archs, *, batch=None, seed=0, device="cpu", progress=False)
        -> dict[arch string, float]
    synflow(net, input_shape, *, device="cpu") -> SynflowResult      # any nn.Module
    naswot(net, batch, *, device="cpu") -> float                     # any nn.Module
    naswot_kernel(net, batch, *, device="cpu") -> (N, N) float64 tensor

Spaces: synflow works on every space (nb201, proxyless, ofa). naswot works on nb201 (ReLU inside
ReLU-Conv-BN ops, the reduction blocks and the head) and proxyless (ReLU6 modules everywhere); OFA
is refused with a ValueError because most of its activations are h-swish (not a rectifier: no
on/off code) and its squeeze-excite ReLUs are functional calls that cannot be hooked. The
networks passed to ``synflow`` / ``naswot`` are never modified (they work on a deep copy).
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from .exact_det import integer_logabsdet
from ..spaces.base import SearchSpace

PROXIES: tuple[str, ...] = ("synflow", "naswot")

#: spaces whose stand-alone networks use only hookable rectifier modules (see the module docstring)
NASWOT_SPACES: tuple[str, ...] = ("nb201", "proxyless")

#: module types whose input sign gives NASWOT's binary code
RECTIFIERS: tuple[type, ...] = (nn.ReLU, nn.ReLU6)

#: activation modules NASWOT has no binary code for; a network containing one is refused
_NON_RECTIFIERS: tuple[type, ...] = (nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.ELU,
                                     nn.CELU, nn.SELU, nn.LeakyReLU, nn.PReLU, nn.Mish, nn.Sigmoid,
                                     nn.Tanh, nn.Softplus)

#: layers whose weights synflow sums over
_SYNFLOW_LAYERS: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


# ------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------
def _check_name(fn: str, name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{fn}: name must be a str, one of {list(PROXIES)}; got "
                        f"{type(name).__name__}")
    if name.lower() not in PROXIES:
        raise ValueError(f"{fn}: unknown proxy {name!r}; choose one of {list(PROXIES)}")
    return name.lower()


def _check_space(fn: str, space) -> SearchSpace:
    if not isinstance(space, SearchSpace):
        raise TypeError(f"{fn}: space must be a naslid SearchSpace (naslid.spaces.get_space), got "
                        f"{type(space).__name__}")
    return space


def _check_seed(fn: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2 ** 63:
        raise ValueError(f"{fn}: seed must be in [0, 2**63), got {seed}")
    return int(seed)


def _check_net(fn: str, net) -> nn.Module:
    if not isinstance(net, nn.Module):
        raise TypeError(f"{fn}: net must be an nn.Module, got {type(net).__name__}")
    return net


def _check_batch(fn: str, batch, in_channels: int | None = None) -> torch.Tensor:
    """A finite floating (N >= 2, C, H, W) tensor (any rank >= 2 when ``in_channels`` is None)."""
    if batch is None:
        raise ValueError(f"{fn}: naswot needs batch, a (N, C_in, H, W) float tensor of N >= 2 "
                         "images (the user's data); got None")
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"{fn}: batch must be a torch.Tensor, got {type(batch).__name__}")
    if not batch.is_floating_point():
        raise TypeError(f"{fn}: batch must be a floating tensor (normalised images), got dtype "
                        f"{batch.dtype}")
    if in_channels is not None and (batch.dim() != 4 or batch.shape[1] != in_channels):
        raise ValueError(f"{fn}: batch must be (N, {in_channels}, H, W), got {tuple(batch.shape)}")
    if batch.dim() < 2:
        raise ValueError(f"{fn}: batch must be (N, ...) with at least 2 dims, got "
                         f"{tuple(batch.shape)}")
    if batch.shape[0] < 2:
        raise ValueError(f"{fn}: batch needs N >= 2 samples (K is N x N), got shape "
                         f"{tuple(batch.shape)}")
    if batch.numel() == 0:
        raise ValueError(f"{fn}: batch is empty, shape {tuple(batch.shape)}")
    if not bool(torch.isfinite(batch).all()):
        bad = int((~torch.isfinite(batch)).sum())
        raise ValueError(f"{fn}: batch {tuple(batch.shape)} has {bad} non-finite values (NaN/Inf)")
    return batch


def _check_input_shape(fn: str, input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, torch.Size):
        input_shape = tuple(input_shape)
    def bad(s) -> bool:
        return isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1

    if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2 \
            or any(bad(s) for s in input_shape):
        raise ValueError(f"{fn}: input_shape must be a tuple of positive ints (1, C_in, ...), got "
                         f"{input_shape!r}")
    return tuple(int(s) for s in input_shape)


# ------------------------------------------------------------------------------------------------
# synflow
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynflowResult:
    """synflow of one network.

    ``score``      Σ over conv/linear weights of |θ · ∂R/∂θ| (>= 0; 0 when no weight reaches the
                   logits, e.g. an NB201 cell whose output is always zero);
    ``log_score``  ln(score), ``-inf`` when score == 0;
    ``R``          the sum of the logits of the all-ones input (the "synaptic flow");
    ``per_layer``  qualified module name -> that layer's sum (the terms of ``score``).
    """

    score: float
    log_score: float
    R: float
    per_layer: dict = field(default_factory=dict)


def synflow_network(net: nn.Module) -> nn.Module:
    """The network synflow differentiates: a float64 deep copy of ``net`` in eval mode (BN uses
    running statistics; dropout off) with every parameter replaced by its absolute value. BN
    layers without running statistics (``track_running_stats=False``) get a fresh network's
    (mean 0, variance 1). Buffers are kept as they are; ``net`` is not modified."""
    net = copy.deepcopy(_check_net("synflow_network", net)).double().eval()
    ref = next(net.parameters(), None)
    dev = ref.device if ref is not None else None
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None:
                m.running_mean = torch.zeros(m.num_features, dtype=torch.float64, device=dev)
                m.running_var = torch.ones_like(m.running_mean)
    return net


def synflow(net: nn.Module, input_shape: Sequence[int], *, device: str | torch.device = "cpu"
            ) -> SynflowResult:
    """synflow of ``net`` (any ``nn.Module`` mapping (1, C_in, ...) -> (1, num_classes) logits).

    ``input_shape``: the all-ones input's shape, e.g. (1, 3, 32, 32). The score sums over the
    ``weight`` of every ``nn.Conv1d/2d/3d`` and ``nn.Linear``. Cost: one float64 forward and
    backward of one sample. Raises FloatingPointError when R or the score overflows float64 (a very
    deep or wide network at a large input: use a smaller ``input_size``)."""
    fn = "synflow"
    shape = _check_input_shape(fn, input_shape)
    work = synflow_network(net).to(device)
    for p in work.parameters():
        p.grad = None
    x = torch.ones(shape, dtype=torch.float64, device=device)
    with torch.enable_grad():
        R = work(x).sum()
        if R.requires_grad:
            R.backward()
    r = float(R.detach())
    per_layer: dict[str, float] = {}
    total = 0.0
    with torch.no_grad():
        for name, m in work.named_modules():
            if isinstance(m, _SYNFLOW_LAYERS) and m.weight.grad is not None:
                v = float((m.weight * m.weight.grad).abs().sum())
                per_layer[name] = v
                total += v
            elif isinstance(m, _SYNFLOW_LAYERS):
                per_layer[name] = 0.0  # never reached the logits
    if not (math.isfinite(r) and math.isfinite(total)):
        raise FloatingPointError(f"{fn}: R = {r}, score = {total} overflowed float64 at input "
                                 f"{shape}; use a smaller input size or width")
    return SynflowResult(score=total, log_score=math.log(total) if total > 0 else float("-inf"),
                         R=r, per_layer=per_layer)


# ------------------------------------------------------------------------------------------------
# NASWOT
# ------------------------------------------------------------------------------------------------
def naswot_kernel(net: nn.Module, batch: torch.Tensor, *, device: str | torch.device = "cpu"
                  ) -> torch.Tensor:
    """NASWOT's kernel K (N, N) float64 of ``net`` on ``batch`` (N, ...), N >= 2.

    A deep copy of ``net`` runs ``batch`` (cast to the network's dtype) in train mode without
    gradients. Every call of an ``nn.ReLU`` / ``nn.ReLU6`` module adds C Cᵀ + (1 − C)(1 − C)ᵀ,
    C (N, D) the 0/1 codes (input > 0) of that call, D its features per sample; rectifier modules
    the forward never calls add nothing. K_ij = (total units) − Hamming distance of the codes.
    ValueError when ``net`` contains a non-rectifier activation module (h-swish, GELU, ...) or no
    rectifier runs."""
    fn = "naswot"
    _check_net(fn, net)
    batch = _check_batch(fn, batch)
    others = sorted({type(m).__name__ for m in net.modules() if isinstance(m, _NON_RECTIFIERS)})
    if others:
        names = [r.__name__ for r in RECTIFIERS]
        raise ValueError(f"{fn}: the network uses activation modules {others} that have no on/off "
                         f"code; NASWOT supports rectifiers only ({names})")
    work = copy.deepcopy(net).to(device).train()
    ref = next(work.parameters(), None)
    x = batch.to(device=device, dtype=ref.dtype if ref is not None else batch.dtype)
    n = x.shape[0]
    K = torch.zeros(n, n, dtype=torch.float64, device=device)
    calls = [0]

    def hook(module, inputs):
        c = (inputs[0].detach().reshape(n, -1) > 0).to(torch.float64)  # (N, D)
        K.add_(c @ c.T).add_((1.0 - c) @ (1.0 - c).T)
        calls[0] += 1

    handles = [m.register_forward_pre_hook(hook)
               for m in work.modules() if isinstance(m, RECTIFIERS)]
    try:
        with torch.no_grad():
            work(x)
    finally:
        for h in handles:
            h.remove()
    if calls[0] == 0:
        raise ValueError(f"{fn}: no ReLU / ReLU6 module ran in the forward of "
                         f"{type(net).__name__}; NASWOT needs rectifier modules it can hook")
    return K


def naswot_logdet(K: torch.Tensor) -> float:
    """log|det K| of a NASWOT kernel K (N, N) of integer counts; ``-inf`` exactly when K is
    singular (e.g. two samples with identical codes). The singularity decision is exact, not a
    float LU's rounding (``naslid.scores.exact_det.integer_logabsdet``): the same on every CPU and LAPACK.
    ValueError when K is not square or holds non-integer values."""
    return integer_logabsdet(K)


def naswot(net: nn.Module, batch: torch.Tensor, *, device: str | torch.device = "cpu") -> float:
    """NASWOT score log|det K| of ``net`` on ``batch`` (N, ...) (see ``naswot_kernel``); ``-inf``
    when K is singular. Invariant to the order of the samples. Cost: one forward of the batch plus
    an (N, D) x (D, N) product per rectifier call."""
    return naswot_logdet(naswot_kernel(net, batch, device=device))


# ------------------------------------------------------------------------------------------------
# architectures of a space
# ------------------------------------------------------------------------------------------------
def fresh_subnet(space: SearchSpace, arch, seed: int = 0) -> nn.Module:
    """``space.build_subnet(arch)`` initialised under ``torch.manual_seed(seed)``; the global CPU
    generator's state is restored afterwards. ``arch``: a mapping or the space's arch string."""
    fn = "fresh_subnet"
    _check_space(fn, space)
    seed = _check_seed(fn, seed)
    if isinstance(arch, str):
        arch = space.arch_from_string(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build_subnet(arch)


def _input_shape(space: SearchSpace) -> tuple[int, int, int, int]:
    return (1, int(space.in_channels), int(space.input_size), int(space.input_size))


def _check_support(fn: str, name: str, space: SearchSpace) -> None:
    if name == "naswot" and space.name not in NASWOT_SPACES:
        raise ValueError(f"{fn}: proxy 'naswot' is not available for space {space.name!r} (its "
                         "h-swish activations have no on/off code and its squeeze-excite ReLUs "
                         "are functional calls that cannot be hooked); naswot supports "
                         f"{list(NASWOT_SPACES)}, synflow every space")


def _score(name: str, space: SearchSpace, arch, batch, seed: int, device) -> float:
    net = fresh_subnet(space, arch, seed)
    if name == "synflow":
        return synflow(net, _input_shape(space), device=device).score
    return naswot(net, batch, device=device)


def _check_request(fn: str, name, space, seed, batch):
    """The checks every entry point makes before scoring: (name, seed, batch) validated (the
    batch only for ``naswot``, which needs it)."""
    name = _check_name(fn, name)
    _check_space(fn, space)
    seed = _check_seed(fn, seed)
    _check_support(fn, name, space)
    if name == "naswot":
        batch = _check_batch(fn, batch, int(space.in_channels))
    return name, seed, batch


def proxy_score(name: str, space: SearchSpace, arch, *, batch: torch.Tensor | None = None,
                seed: int = 0, device: str | torch.device = "cpu") -> float:
    """Proxy ``name`` of ``arch`` (a mapping or the space's arch string) in ``space``.

    The stand-alone network is built fresh under ``seed`` (``fresh_subnet``).
    ``synflow``: data-free (``batch`` is ignored), input (1, in_channels, input_size, input_size)
    of ones; returns the raw score (>= 0; 0 for cells that never reach the logits).
    ``naswot``: ``batch`` (N >= 2, in_channels, H, W) floating, finite, required; returns
    log|det K| (``-inf`` when K is singular). Higher = better for both."""
    name, seed, batch = _check_request("proxy_score", name, space, seed, batch)
    return _score(name, space, arch, batch, seed, device)


def score_archs(name: str, space: SearchSpace, archs: Iterable, *,
                batch: torch.Tensor | None = None, seed: int = 0,
                device: str | torch.device = "cpu", progress: bool = False) -> dict[str, float]:
    """``proxy_score`` of every arch of ``archs`` (mappings or arch strings), keyed by
    ``space.arch_to_string(arch)`` in first-seen order; duplicates are scored once. Every arch is
    checked before any is scored. ``progress``: a tqdm bar."""
    fn = "score_archs"
    name, seed, batch = _check_request(fn, name, space, seed, batch)
    if isinstance(archs, (str, Mapping)):
        raise TypeError(f"{fn}: archs must be an iterable of archs, got a single "
                        f"{type(archs).__name__}; wrap it in a list")
    return {key: _score(name, space, arch, batch, seed, device)
            for key, arch in unique_archs(space, archs, progress=progress, desc=name)}


def unique_archs(space: SearchSpace, archs: Iterable, *, progress: bool = False, desc: str = ""):
    """(arch string, arch) pairs of ``archs`` (mappings or arch strings), each checked by the space,
    duplicates once, in first-seen order; ``progress``: wrapped in a tqdm bar titled ``desc``."""
    todo: dict[str, dict] = {}
    for a in archs:
        arch = space.arch_from_string(a) if isinstance(a, str) else space.validate_arch(a)
        todo.setdefault(space.arch_to_string(arch), arch)
    items: Iterable = todo.items()
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, total=len(todo), desc=desc, leave=False)
    return items


__all__ = ["unique_archs", "PROXIES", "NASWOT_SPACES", "RECTIFIERS", "SynflowResult", "synflow", "synflow_network",
           "naswot", "naswot_kernel", "naswot_logdet", "fresh_subnet", "proxy_score", "score_archs"]
