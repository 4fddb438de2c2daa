"""The contract every search space implements (NB201, ProxylessNAS, OFA).

Vocabulary
----------
decision   a searchable choice: an NB201 edge, a ProxylessNAS layer, an OFA block's kernel, ...;
           identified by a string key. ``space.decisions`` maps key -> tuple of candidate names, in
           the space's canonical order (NB201: NB201's own op order).
arch       one architecture: ``dict[str, str]`` decision key -> chosen candidate name, with exactly
           the keys of ``space.decisions`` (ordered like them).
mask       which candidates each decision still allows: ``dict[str, torch.BoolTensor]``, one bool
           vector of length ``len(space.decisions[key])`` per key. A split produces child masks.
supernet   an ``nn.Module`` holding every candidate's weights; ``supernet.set_arch(arch)`` activates a
           single path, after which ``supernet(x)`` runs only that path.
LID layers the ordered modules whose outputs form an architecture's LID vector
           (``supernet.lid_layers()``); ``FeatureTap`` hooks them.

Shapes: images ``x`` are (B, C_in, H, W); logits (B, num_classes).
"""
from __future__ import annotations

import abc
import json
import math
from collections import OrderedDict
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

Arch = dict  # dict[str, str]
Mask = dict  # dict[str, torch.BoolTensor]


def _writable(t: torch.Tensor, other: torch.Tensor, inputs: tuple) -> bool:
    """Whether ``t += other`` may overwrite ``t``: a fresh result the caller owns (not one of
    ``inputs``: an identity op returns its input itself), of other's dtype, device and shape (no
    promotion or broadcast), not a view, not a leaf that requires grad."""
    return (not any(t is i for i in inputs) and other.dtype == t.dtype and other.device == t.device
            and other.shape == t.shape and t._base is None and not (t.requires_grad and t.is_leaf))


def add_into(total: torch.Tensor, y: torch.Tensor, inputs: tuple = ()) -> torch.Tensor:
    """``total + y``, computed into ``total`` (or else into ``y``: addition is commutative, so the
    value is bit-identical) in place where that is safe (``_writable``): one tensor fewer alive.

    The ops that made ``total`` / ``y`` must not save their outputs for backward (conv, BatchNorm,
    average pooling, ``x * 0`` do not); autograd's version counter raises at backward otherwise, it
    never gives silent wrong gradients. ``inputs``: tensors the caller does not own."""
    if _writable(total, y, inputs):
        return total.add_(y)
    if _writable(y, total, inputs):
        return y.add_(total)
    return total + y


class Supernet(nn.Module, abc.ABC):
    """A weight-sharing supernet; single-path: one candidate per decision is active at a time."""

    @abc.abstractmethod
    def set_arch(self, arch: Mapping[str, str]) -> None:
        """Activate ``arch`` (every decision key -> candidate name) for the following forwards."""

    @abc.abstractmethod
    def lid_layers(self) -> list[nn.Module]:
        """The modules whose outputs form the LID vector, in order; fixed length for the space."""

    @abc.abstractmethod
    def decision_parameters(self, key: str) -> list[nn.Parameter]:
        """Parameters that belong to decision ``key``'s candidates only (all of its candidates).

        Gradient matching (GM-NAS) uses every *other* parameter: see ``shared_parameters``."""

    def shared_parameters(self, exclude: str | None = None) -> list[nn.Parameter]:
        """All parameters except those of decision ``exclude`` (GM-NAS's gradient vector)."""
        skip = {id(p) for p in self.decision_parameters(exclude)} if exclude is not None else set()
        return [p for p in self.parameters() if id(p) not in skip]


class SearchSpace(abc.ABC):
    """A search space: decisions, masks, sampling, encodings, supernet and standalone subnets.

    Entry points other code relies on (keep the names): ``decisions``, ``full_mask()``,
    ``sample(mask, generator)``, ``arch_from_string(s)``, ``arch_to_string(arch)``,
    ``canonical_key(arch)``, ``build_supernet()``, ``build_subnet(arch, supernet=None)``,
    ``count_params(arch)``, ``count_macs(arch, input_size=None)``, ``num_archs(mask)``,
    ``validate_arch(arch)``, ``validate_mask(mask)``, ``mask_to_json`` / ``mask_from_json``.
    """

    name: str = "abstract"

    # ----- decisions ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def decisions(self) -> "OrderedDict[str, tuple[str, ...]]":
        """Ordered mapping decision key -> candidate names."""

    # ----- masks -------------------------------------------------------------------------------
    def full_mask(self) -> Mask:
        """Every candidate of every decision allowed."""
        return {k: torch.ones(len(c), dtype=torch.bool) for k, c in self.decisions.items()}

    def validate_mask(self, mask: Mapping[str, Sequence[bool] | torch.Tensor]) -> Mask:
        """Check keys, lengths and non-emptiness; return a clean ``dict[str, BoolTensor]``.

        Raises ValueError naming the problem (wrong/missing keys, wrong length, all-false decision).
        """
        if not isinstance(mask, Mapping):
            raise TypeError(f"mask must be a mapping decision -> bools, got {type(mask).__name__}")
        want, got = list(self.decisions), list(mask)
        missing = [k for k in want if k not in mask]
        extra = [k for k in got if k not in self.decisions]
        if missing or extra:
            raise ValueError(
                f"{self.name} mask: keys do not match the space's decisions "
                f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unknown {extra[:5]}{'...' if len(extra) > 5 else ''})"
            )
        out: Mask = {}
        for k in want:
            v = torch.as_tensor(mask[k]).to(torch.bool).flatten()
            n = len(self.decisions[k])
            if v.numel() != n:
                raise ValueError(f"{self.name} mask[{k!r}]: length {v.numel()}, expected {n} "
                                 f"(candidates {list(self.decisions[k])})")
            if not bool(v.any()):
                raise ValueError(f"{self.name} mask[{k!r}]: every candidate is disabled")
            out[k] = v
        return out

    def mask_to_json(self, mask: Mask) -> dict:
        """JSON-ready form: key -> list of 0/1 (the layout of NAS-LID's released masks)."""
        mask = self.validate_mask(mask)
        return {k: [int(b) for b in v.tolist()] for k, v in mask.items()}

    def mask_from_json(self, obj: Mapping | str) -> Mask:
        """Inverse of ``mask_to_json``; ``obj`` may be a dict or a JSON string."""
        if isinstance(obj, str):
            obj = json.loads(obj)
        return self.validate_mask({k: [bool(x) for x in v] for k, v in obj.items()})

    def num_archs(self, mask: Mask | None = None) -> int:
        """Number of architectures the mask allows (product of allowed counts)."""
        mask = self.full_mask() if mask is None else self.validate_mask(mask)
        return math.prod(int(v.sum()) for v in mask.values())

    def mask_contains(self, mask: Mask, arch: Mapping[str, str]) -> bool:
        """True when every decision of ``arch`` is allowed by ``mask``."""
        arch = self.validate_arch(arch)
        return all(bool(mask[k][self.decisions[k].index(v)]) for k, v in arch.items())

    # ----- architectures -----------------------------------------------------------------------
    def validate_arch(self, arch: Mapping[str, str]) -> Arch:
        """Check keys and candidate names; return an ordered copy. ValueError names the problem."""
        if not isinstance(arch, Mapping):
            raise TypeError(f"arch must be a mapping decision -> op name, got {type(arch).__name__}")
        missing = [k for k in self.decisions if k not in arch]
        extra = [k for k in arch if k not in self.decisions]
        if missing or extra:
            raise ValueError(f"{self.name} arch: missing decisions {missing[:5]}, unknown {extra[:5]}")
        out: Arch = {}
        for k, cands in self.decisions.items():
            if arch[k] not in cands:
                raise ValueError(f"{self.name} arch[{k!r}] = {arch[k]!r} is not one of {list(cands)}")
            out[k] = arch[k]
        return out

    def sample(self, mask: Mask | None, generator: torch.Generator) -> Arch:
        """Uniform sample of an architecture inside ``mask`` (each decision independently)."""
        mask = self.full_mask() if mask is None else self.validate_mask(mask)
        arch: Arch = {}
        for k, cands in self.decisions.items():
            allowed = torch.nonzero(mask[k]).flatten()
            j = int(torch.randint(len(allowed), (1,), generator=generator))
            arch[k] = cands[int(allowed[j])]
        return arch

    def fair_archs(self, mask: Mask | None, generator: torch.Generator) -> list[Arch]:
        """FairNAS's strict fairness inside ``mask``: m = the largest number of enabled candidates
        of any decision; returns m archs in which every enabled candidate of every decision appears
        once (decisions with fewer candidates repeat some, drawn at random). Each decision's order
        is an independent random permutation."""
        mask = self.full_mask() if mask is None else self.validate_mask(mask)
        enabled = {k: [cands[int(i)] for i in torch.nonzero(mask[k]).flatten()]
                   for k, cands in self.decisions.items()}
        m = max(len(v) for v in enabled.values())
        seqs: dict[str, list[str]] = {}
        for k, v in enabled.items():
            seq: list[str] = []
            while len(seq) < m:
                seq += [v[int(i)] for i in torch.randperm(len(v), generator=generator)]
            seqs[k] = seq[:m]
        return [{k: seqs[k][j] for k in self.decisions} for j in range(m)]

    @abc.abstractmethod
    def arch_to_string(self, arch: Mapping[str, str]) -> str:
        """The space's string encoding (NB201: NB201's official arch string)."""

    @abc.abstractmethod
    def arch_from_string(self, s: str) -> Arch:
        """Inverse of ``arch_to_string``; ValueError on malformed strings."""

    def canonical_key(self, arch: Mapping[str, str]) -> str:
        """Equal exactly for isomorphic architectures. Default: the arch string (no isomorphisms)."""
        return self.arch_to_string(arch)

    # ----- networks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def build_supernet(self) -> Supernet:
        """A freshly initialised supernet with this space's options."""

    @abc.abstractmethod
    def build_subnet(self, arch: Mapping[str, str], supernet: Supernet | None = None) -> nn.Module:
        """A standalone plain ``nn.Module`` for ``arch``; weights copied from ``supernet`` if given."""

    def count_params(self, arch: Mapping[str, str]) -> int:
        """Trainable parameters of the standalone subnet of ``arch``."""
        return sum(p.numel() for p in self.build_subnet(arch).parameters())

    @abc.abstractmethod
    def count_macs(self, arch: Mapping[str, str], input_size: int | None = None) -> int:
        """Multiply-adds of conv and linear layers of ``arch`` at ``input_size`` (default: the
        space's input size); BN, activations and pooling are not counted."""

    def iter_decision_keys(self) -> Iterator[str]:
        return iter(self.decisions)
