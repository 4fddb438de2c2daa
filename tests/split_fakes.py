"""A tiny real search space + supernet implementing the Supernet interface, for the split tests."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from naslid.spaces.base import SearchSpace, Supernet

FAKE_DECISIONS = OrderedDict([
    ("d0", ("conv3", "conv1", "pool", "skip")),
    ("d1", ("conv3", "pool", "skip")),
    ("d2", ("conv3", "conv1", "pool", "skip", "neg")),
])


def _cand(name: str, c: int) -> nn.Module:
    if name == "conv3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    if name == "conv1":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
    if name == "pool":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if name == "skip":
        return nn.Identity()
    if name == "neg":
        return _Neg()
    raise ValueError(name)


class _Neg(nn.Module):
    def forward(self, x):
        return -x


class ChoiceBlock(nn.Module):
    def __init__(self, names, c):
        super().__init__()
        self.names = tuple(names)
        self.cands = nn.ModuleList(_cand(n, c) for n in names)
        self.active = None

    def forward(self, x):
        return self.cands[self.active](x)


class FakeSupernet(Supernet):
    def __init__(self, c: int = 4, num_classes: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.blocks = nn.ModuleDict({k: ChoiceBlock(v, c) for k, v in FAKE_DECISIONS.items()})
        self.head = nn.Linear(c, num_classes)

    def set_arch(self, arch):
        for k, b in self.blocks.items():
            b.active = b.names.index(arch[k])

    def lid_layers(self):
        return list(self.blocks.values())

    def decision_parameters(self, key):
        return list(self.blocks[key].parameters())

    def forward(self, x):
        h = self.stem(x)
        for b in self.blocks.values():
            h = b(h)
        return self.head(h.mean(dim=(2, 3)))


class FakeSpace(SearchSpace):
    name = "fake"

    @property
    def decisions(self):
        return FAKE_DECISIONS

    def arch_to_string(self, arch):
        return "|".join(f"{k}={v}" for k, v in self.validate_arch(arch).items())

    def arch_from_string(self, s):
        return self.validate_arch(dict(p.split("=") for p in s.split("|")))

    def build_supernet(self):
        return FakeSupernet()

    def build_subnet(self, arch, supernet=None):
        raise NotImplementedError

    def count_macs(self, arch, input_size=None):
        raise NotImplementedError


def make_batches(n: int, b: int = 32, size: int = 8, seed: int = 0, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 3, size, size, generator=g), torch.randint(classes, (b,), generator=g))
            for _ in range(n)]


def naive_lid(x: torch.Tensor, k: int) -> float:
    """float64 oracle of NAS-LID's estimator: mean over points of -k / sum_j log(r_j / r_k), the k
    nearest *other* points by Euclidean distance (self excluded by index)."""
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        d = ((x - x[i]) ** 2).sum(dim=1).sqrt()
        d = torch.cat([d[:i], d[i + 1:]])
        r = torch.sort(d).values[:k]
        total += float(-k / torch.log(r / r[-1]).sum())
    return total / n
