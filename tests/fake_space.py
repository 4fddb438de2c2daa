"""A tiny search space + supernet for the data/training/search/ranking tests (CPU, milliseconds).

Decisions ``d0..d{n-1}``, each over candidates ``ops`` (default ("lin", "tanh", "id")). The
supernet: flatten -> Linear(in, hidden) -> BN1d -> one block per decision (the chosen candidate:
Linear+BN+ReLU, Linear+BN+Tanh, or identity) -> Linear(hidden, classes).
``symmetric=True`` makes ``canonical_key`` order-insensitive (sorted ops): archs that are
permutations of each other are "isomorphic", to test uniqueness by canonical key.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn

from naslid.spaces.base import SearchSpace, Supernet


class _Block(nn.Module):
    def __init__(self, hidden: int, ops):
        super().__init__()
        self.ops = tuple(ops)
        self.cands = nn.ModuleList()
        for op in self.ops:
            if op == "id":
                self.cands.append(nn.Identity())
            else:
                act = nn.ReLU() if op == "lin" else nn.Tanh()
                self.cands.append(nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), act))
        self.active = 0

    def forward(self, x):
        return self.cands[self.active](x)


class FakeSupernet(Supernet):
    def __init__(self, space: "FakeSpace"):
        super().__init__()
        self.space = space
        self.inp = nn.Sequential(nn.Flatten(), nn.Linear(space.in_features, space.hidden),
                                 nn.BatchNorm1d(space.hidden), nn.ReLU())
        self.blocks = nn.ModuleDict({k: _Block(space.hidden, c) for k, c in space.decisions.items()})
        self.head = nn.Linear(space.hidden, space.num_classes)
        self.arch = None

    def set_arch(self, arch: Mapping[str, str]) -> None:
        arch = self.space.validate_arch(arch)
        for k, v in arch.items():
            self.blocks[k].active = self.space.decisions[k].index(v)
        self.arch = arch

    def lid_layers(self):
        return list(self.blocks.values())

    def decision_parameters(self, key: str):
        return list(self.blocks[key].parameters())

    def forward(self, x):
        if self.arch is None:
            raise RuntimeError("FakeSupernet: call set_arch first")
        h = self.inp(x)
        for b in self.blocks.values():
            h = b(h)
        return self.head(h)


class FakeSpace(SearchSpace):
    name = "fake"

    def __init__(self, n: int = 3, ops=("lin", "tanh", "id"), *, in_features: int = 3 * 8 * 8,
                 hidden: int = 16, num_classes: int = 10, symmetric: bool = False):
        self._decisions = OrderedDict((f"d{i}", tuple(ops)) for i in range(n))
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        self.symmetric = symmetric

    @property
    def decisions(self):
        return OrderedDict(self._decisions)

    def arch_to_string(self, arch) -> str:
        arch = self.validate_arch(arch)
        return "|".join(f"{k}={v}" for k, v in arch.items())

    def arch_from_string(self, s: str):
        if not isinstance(s, str):
            raise ValueError(f"fake arch string must be a str, got {type(s).__name__}")
        try:
            arch = dict(p.split("=", 1) for p in s.split("|"))
        except ValueError:
            raise ValueError(f"malformed fake arch string {s!r}") from None
        return self.validate_arch(arch)

    def canonical_key(self, arch) -> str:
        if self.symmetric:
            return ",".join(sorted(self.validate_arch(arch).values()))
        return self.arch_to_string(arch)

    def build_supernet(self) -> FakeSupernet:
        return FakeSupernet(self)

    def build_subnet(self, arch, supernet=None):  # pragma: no cover - not needed here
        raise NotImplementedError

    def count_macs(self, arch, input_size=None):  # pragma: no cover
        raise NotImplementedError

    def all_archs(self):
        import itertools

        keys = list(self._decisions)
        for combo in itertools.product(*self._decisions.values()):
            yield dict(zip(keys, combo))


def mask_with(space: FakeSpace, key: str, allowed) -> dict:
    """Full mask except ``key``, which allows only the candidates named in ``allowed``."""
    m = space.full_mask()
    m[key] = torch.tensor([c in allowed for c in space.decisions[key]])
    return m
