"""Normalisation, augmentation (random crop + flip, torch ops) and the seeded batch loaders that
training, splitting and evaluation read (``make_loader``, ``fixed_batches``)."""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from .images import ImageSet
from .splits import DataSplits, SearchData


# ------------------------------------------------------------------------------------------------
# augmentation, normalisation, loaders
# ------------------------------------------------------------------------------------------------
def normalize(x_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 (B, C, H, W): (x / 255 - mean) / std per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x_uint8.float().div_(255.0) - m) / s


def augment_batch(x: torch.Tensor, pad: int, generator: torch.Generator, flip: bool = True
                  ) -> torch.Tensor:
    """Random crop after ``pad`` zero padding + random horizontal flip, per image.

    x: (B, C, H, W) (any dtype); returns the same shape/dtype. Randomness from ``generator``.
    Zero padding is applied before normalisation (black borders, as torchvision's RandomCrop).
    """
    B, C, H, W = x.shape
    if B == 0:
        return x
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (B,), generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (B,), generator=generator)
        rows = (oy.view(B, 1) + torch.arange(H).view(1, H))  # (B, H)
        cols = (ox.view(B, 1) + torch.arange(W).view(1, W))  # (B, W)
        b = torch.arange(B).view(B, 1, 1, 1)
        c = torch.arange(C).view(1, C, 1, 1)
        x = xp[b, c, rows.view(B, 1, H, 1), cols.view(B, 1, 1, W)]
    if flip:
        f = torch.rand(B, generator=generator) < 0.5
        x = torch.where(f.view(B, 1, 1, 1), x.flip(3), x)
    return x


class BatchLoader:
    """Seeded mini-batches of one ImageSet: float32 (B, C, H, W) normalised, int64 (B,) labels.

    The order (and augmentation) of epoch ``e`` depends only on (``seed``, ``e``): call
    ``set_epoch(e)`` before iterating (as with DistributedSampler), which makes resuming an epoch
    exact without saving any generator state. ``shuffle=False`` iterates in index order.
    ``num_shards``/``shard_index`` give rank ``shard_index`` its contiguous slice of every global
    batch (global batch size ``batch_size``; each rank gets ``batch_size // num_shards``).
    """

    def __init__(self, imageset: ImageSet, batch_size: int, *, mean: Sequence[float],
                 std: Sequence[float], shuffle: bool = True, augment: bool = False, pad: int = 4,
                 drop_last: bool = False, seed: int = 0, num_shards: int = 1, shard_index: int = 0):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BatchLoader: batch_size must be a positive int, got {batch_size!r}")
        if len(imageset) == 0:
            raise ValueError("BatchLoader: empty image set")
        if num_shards < 1 or not 0 <= shard_index < num_shards or batch_size % num_shards:
            raise ValueError(f"BatchLoader: batch_size {batch_size} must divide into num_shards "
                             f"{num_shards}, shard_index {shard_index} in [0, {num_shards})")
        self.imageset, self.batch_size = imageset, batch_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.shuffle, self.augment, self.pad, self.drop_last = shuffle, augment, pad, drop_last
        self.seed, self.epoch = int(seed), 0
        self.num_shards, self.shard_index = num_shards, shard_index

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.imageset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.imageset)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            # every rank draws the augmentation of the whole global batch, then keeps its slice:
            # the union over ranks equals the single-process batch exactly
            x = self.imageset.get(idx)
            if self.augment:
                x = augment_batch(x, self.pad, g)
            y = self.imageset.labels[idx]
            if self.num_shards > 1:
                per = math.ceil(idx.numel() / self.num_shards)
                sl = slice(self.shard_index * per, (self.shard_index + 1) * per)
                x, y = x[sl], y[sl]
            yield normalize(x, self.mean, self.std), y


def make_loader(data: SearchData | DataSplits, split: str, batch_size: int, *, seed: int = 0,
                shuffle: bool | None = None, augment: bool | None = None, drop_last: bool = False,
                num_shards: int = 1, shard_index: int = 0) -> BatchLoader:
    """Loader over ``data.<split>`` (train|valid; test only from DataSplits) with the dataset's
    normalisation; augmentation and shuffling default to on for ``train`` only."""
    if split not in ("train", "valid", "test"):
        raise ValueError(f"make_loader: split must be train|valid|test, got {split!r}")
    if split == "test" and not isinstance(data, DataSplits):
        raise ValueError("make_loader: the test split is not available to search code")
    is_train = split == "train"
    return BatchLoader(getattr(data, split), batch_size, mean=data.mean, std=data.std,
                       shuffle=is_train if shuffle is None else shuffle,
                       augment=(data.augment and is_train) if augment is None else augment,
                       pad=data.pad, drop_last=drop_last, seed=seed, num_shards=num_shards,
                       shard_index=shard_index)


def fixed_batches(data: SearchData | DataSplits, split: str, batch_size: int, *,
                  num_batches: int | None = None, seed: int = 0, device: torch.device | str = "cpu"
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pre-fetched, non-augmented batches for evaluation/BN calibration (reused for every arch).

    ``num_batches=None``: the whole split in index order; else that many batches of a seeded
    shuffle. Each item is (float32 (B, C, H, W) on ``device``, int64 (B,) on ``device``).
    """
    loader = make_loader(data, split, batch_size, seed=seed, shuffle=num_batches is not None,
                         augment=False)
    out = []
    for i, (x, y) in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        out.append((x.to(device), y.to(device)))
    return out
