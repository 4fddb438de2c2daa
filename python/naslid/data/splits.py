"""``load_splits``: a dataset, its seeded class-stratified train / valid hold-out, optional
subsets, the resize to ``image_size`` and the normalisation constants, as ``DataSplits``; the
search sees only ``SearchData`` (train and valid)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..choices import DATASETS as DATASET_NAMES
from .images import ImageSet, _holdout, _limit
from .readers import load_cifar, load_digits_sets, load_imagefolder, load_npz
from .resize import _resize_method, _resized

# NB201's normalisation constants (xautodl get_datasets), in [0, 1] units.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4824, 0.4467), (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class SearchData:
    """What search code may see: the training part and the held-out validation part."""

    train: ImageSet
    valid: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    pad: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape


@dataclass
class DataSplits:
    """train / valid (held out of the official training set) / test (never for search decisions)."""

    name: str
    train: ImageSet
    valid: ImageSet
    test: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = True
    pad: int = 4
    info: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return self.train.image_shape

    @property
    def in_channels(self) -> int:
        return self.image_shape[0]

    def search_data(self) -> SearchData:
        """The train/valid view handed to warm-up, splitting and search (no test split)."""
        return SearchData(self.train, self.valid, self.num_classes, self.mean, self.std,
                          self.augment, self.pad)

    def summary(self) -> dict:
        """JSON-ready description (sizes, shapes, normalisation)."""
        return {"dataset": self.name, "num_train": len(self.train), "num_valid": len(self.valid),
                "num_test": len(self.test), "num_classes": self.num_classes,
                "image_shape": list(self.image_shape), "mean": list(self.mean),
                "std": list(self.std), "augment": self.augment, **self.info}


def channel_stats(imageset: ImageSet, max_images: int = 10000, seed: int = 0
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units over (a seeded sample of at most ``max_images`` of)
    ``imageset``; computed in float64."""
    n = len(imageset)
    if n == 0:
        raise ValueError("channel_stats: empty image set")
    idx = torch.arange(n)
    if n > max_images:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images]
    x = imageset.get(idx).double() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


_STORED_SIZE = ("npz", "cifar10", "cifar100")  # datasets whose images come at a stored size


def _check_split_args(name, valid_fraction: float, channels: int, max_train, max_valid, image_size) -> str:
    """``load_splits``' argument checks (ValueError naming the argument); the dataset's name in
    lower case."""
    if not isinstance(name, str) or name.lower() not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    name = name.lower()
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"load_splits: valid_fraction must be in (0, 1), got {valid_fraction}")
    if channels not in (1, 3):
        raise ValueError(f"load_splits: channels must be 1 or 3, got {channels}")
    for arg, v in (("max_train", max_train), ("max_valid", max_valid)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ValueError(f"load_splits: {arg} must be a positive int or None, got {v!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"load_splits: image_size must be a positive int, got {image_size!r}")
    if image_size is not None and image_size < 4 and name in _STORED_SIZE:
        raise ValueError(f"load_splits: image_size {image_size} is below 4; choose 4 or more")
    return name


@dataclass
class _Loaded:
    """A dataset as stored: the official training and test sets, the normalisation constants
    (None: computed from the training split) and whether training loaders augment by default."""

    train: ImageSet
    test: ImageSet
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    augment: bool


def _load_dataset(name: str, data_dir, size: int, channels: int, seed: int, download: bool,
                  info: dict) -> _Loaded:
    """Dataset ``name`` (checked) at ``size`` for the datasets rendered at load time (digits,
    imagefolder: then ``channels`` channels; imagefolder adds its ``class_names`` to ``info``)."""
    if name == "digits":
        train, test = load_digits_sets(size, channels, seed=seed)
        return _Loaded(train, test, None, None, False)
    if name in ("cifar10", "cifar100"):
        train, test = load_cifar(name, data_dir, download=download)
        mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
        return _Loaded(train, test, mean, std, True)
    if name == "npz":
        if data_dir is None:
            raise ValueError("dataset npz: data_dir must be the .npz file")
        train, test = load_npz(data_dir)
        return _Loaded(train, test, None, None, True)
    train, test, classes = load_imagefolder(data_dir, image_size=size, channels=channels, seed=seed)
    info["class_names"] = classes
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.25,))
    return _Loaded(train, test, mean, std, True)


def _num_classes(train: ImageSet, test: ImageSet) -> int:
    """1 + the largest label of the training or the test set."""
    n = int(train.labels.max()) + 1
    if len(test) and int(test.labels.max()) >= n:
        n = int(test.labels.max()) + 1
    return n


def _train_valid(name: str, full_train: ImageSet, valid_fraction: float, seed: int,
                 max_train: int | None, max_valid: int | None) -> tuple[ImageSet, ImageSet]:
    """The seeded stratified train / valid split of ``full_train``, then the optional subsets."""
    train, valid = _holdout(full_train, valid_fraction, seed)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"load_splits: valid_fraction {valid_fraction} of {len(full_train)} "
                         f"{name} training images leaves {len(train)} train / {len(valid)} valid")
    return _limit(train, max_train, seed + 1), _limit(valid, max_valid, seed + 2)


def _fit_stored_size(name: str, image_size: int | None, sets: tuple, info: dict) -> tuple:
    """(train, valid, test) of a stored-size dataset resized down to ``image_size`` (None: kept);
    the stored size, the size and the method go to ``info``. Run after the split and the
    subsets, so only the images kept are resized."""
    train = sets[0]
    _, h0, w0 = train.image_shape
    if image_size is not None and (image_size > h0 or image_size > w0):
        what = "npz images'" if name == "npz" else f"{name} images'"
        raise ValueError(f"load_splits: image_size {image_size} exceeds the {what} {h0}x{w0}; "
                         f"choose <= {min(h0, w0)} (upsampling adds no information)")
    method = "none"
    if image_size is not None and (h0, w0) != (image_size, image_size):
        method = _resize_method(h0, w0, image_size)
        sets = tuple(_resized(x, image_size) for x in sets)
    info.update(stored_image_size=[h0, w0], image_size=sets[0].image_shape[1], resize=method)
    return sets


def _normalisation(loaded: _Loaded, train: ImageSet, seed: int) -> tuple[tuple, tuple]:
    """The dataset's mean and std, or the training split's own when it has none or when they do
    not match its channels (e.g. a grayscale npz with CIFAR constants)."""
    mean, std = loaded.mean, loaded.std
    if mean is None or len(mean) != train.image_shape[0]:
        mean, std = channel_stats(train, seed=seed)
    return tuple(mean), tuple(std)


def load_splits(name: str = "digits", data_dir: str | os.PathLike | None = None, *,
                valid_fraction: float = 0.5, seed: int = 0, max_train: int | None = None,
                max_valid: int | None = None, image_size: int | None = None, channels: int = 3,
                augment: bool | None = None, download: bool = True) -> DataSplits:
    """Load dataset ``name`` and hold out a seeded, class-stratified validation split.

    Args:
        name: one of ``DATASET_NAMES``.
        data_dir: npz: the file; cifar10/100: the batches folder or its parent; imagefolder: root.
        valid_fraction: share of the official training set held out for validation (0.5: 25k/25k).
        seed: seeds the train/valid split and the subsets (and digits' test hold-out).
        max_train, max_valid: optional stratified subset sizes (after the split).
        image_size: output size (square). digits/imagefolder: default 32. npz/cifar: default the
            stored size; smaller downsizes once at load time (see the module docstring); larger,
            or below 4, is a ValueError.
        channels: digits/imagefolder channels, 1 or 3.
        augment: crop+flip on training loaders (default: True except for digits).
        download: cifar only; fetch the official tarball when absent.
    Returns DataSplits(train, valid, test, ...); images uint8 (N, C, H, W).
    """
    name = _check_split_args(name, valid_fraction, channels, max_train, max_valid, image_size)
    info: dict = {}
    loaded = _load_dataset(name, data_dir, image_size or 32, channels, seed, download, info)
    if len(loaded.train) < 2:
        raise ValueError(f"dataset {name}: only {len(loaded.train)} training images")
    num_classes = _num_classes(loaded.train, loaded.test)
    train, valid = _train_valid(name, loaded.train, valid_fraction, seed, max_train, max_valid)
    test = loaded.test
    if name in _STORED_SIZE:
        train, valid, test = _fit_stored_size(name, image_size, (train, valid, test), info)
    mean, std = _normalisation(loaded, train, seed)
    return DataSplits(name, train, valid, test, num_classes, mean, std,
                      augment=loaded.augment if augment is None else bool(augment),
                      pad=max(1, train.image_shape[1] // 8), info=info)
