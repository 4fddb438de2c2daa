"""Datasets, the held-out train/validation split, augmentation and seeded batch loaders.

Datasets (``DATASET_NAMES``)
----------------------------
``digits``       scikit-learn's bundled 8x8 digits (1,797 images, 10 classes, no file needed): the
                 embedded default. Pixel values 0..16 are scaled to 0..255, the image is upscaled
                 bilinearly to ``image_size`` (default 32) and repeated to ``channels`` (default 3),
                 so the same network config runs on digits and on CIFAR. It has no official test
                 split: a seeded class-balanced 20 % is held out as ``test``.
``cifar10``      the standard python-pickle batches ``cifar-10-batches-py/`` (``data_dir`` is that
``cifar100``     folder or its parent; CIFAR-100: ``cifar-100-python/``, fine labels). When absent
                 and ``download=True`` the official tarball is fetched and checked against its MD5;
                 offline that fails with a FileNotFoundError that says what to do.
``npz``          one ``.npz`` file (``data_dir`` is the file) with ``x_train, y_train, x_test,
                 y_test``; images uint8 NHWC (N, H, W, C) with C in {1, 3}, or (N, H, W) grayscale;
                 labels integer (N,). The format ``naslid data cifar10`` writes.

``image_size`` for npz / cifar10 / cifar100 downsizes the stored images once at load time (they
stay uint8 in memory): average pooling when the stored height and width are integer multiples of
it (32 -> 16, 8: exact block means), else bilinear with antialiasing; rounded half-to-even back to
uint8. Upsampling is refused (it adds no information), as is a size below 4. ``summary()`` records
``stored_image_size`` [H, W], ``image_size`` and the ``resize`` method used.
``imagefolder``  ImageNet-style ``data_dir/train/<class>/*.jpg|png|...`` and optionally
                 ``data_dir/val/<class>/...`` (or ``test/``) as the test split; images are read
                 lazily with PIL, converted to RGB (or L for ``channels=1``) and resized to
                 ``image_size`` (default 32). No torchvision needed.

Splits
------
``load_splits`` returns ``DataSplits(train, valid, test)``: ``valid`` is held out of the official
training set (NB201's cifar10-valid protocol: ``valid_fraction=0.5`` -> 25k/25k on CIFAR-10),
seeded and stratified per class (proportional, largest remainder). ``max_train``/``max_valid`` take
seeded stratified subsets for CPU-scale runs. The test split is reachable only through
``DataSplits.test``; ``DataSplits.search_data()`` returns a ``SearchData(train, valid)`` without
it, and the training/evaluation/search code only ever receives loaders or batches built from that.

Images are kept as uint8 (N, C, H, W); loaders yield normalised float32 (B, C, H, W) and int64 (B,).
Normalisation: NB201's CIFAR constants for cifar10/cifar100, ImageNet constants for imagefolder,
per-channel mean/std of the (held-out) training split for npz and digits.
Augmentation (training loaders only, torch ops): random crop with ``pad`` zero padding (4 for
CIFAR-sized images) + horizontal flip; ``digits`` defaults to none (flipping digits changes them).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .choices import DATASETS as DATASET_NAMES

log = logging.getLogger(__name__)

# NB201's normalisation constants (xautodl get_datasets), in [0, 1] units.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4824, 0.4467), (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

CIFAR_SOURCES = {
    # name: (folder inside data_dir, url, tarball md5)
    "cifar10": ("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85"),
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


# ------------------------------------------------------------------------------------------------
# image sets
# ------------------------------------------------------------------------------------------------
class ImageSet:
    """A labelled set of images. ``labels``: int64 (N,); ``get(indices)`` -> uint8 (B, C, H, W)."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())

    def get(self, indices: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageSet":  # pragma: no cover
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.get(torch.zeros(1, dtype=torch.long)).shape[1:])  # type: ignore[return-value]


class TensorImageSet(ImageSet):
    """In-memory images: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"TensorImageSet: images must be uint8 (N, C, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        if labels.dim() != 1 or labels.numel() != images.shape[0]:
            raise ValueError(f"TensorImageSet: {images.shape[0]} images but labels of shape "
                             f"{tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images[indices]

    def subset(self, indices) -> "TensorImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorImageSet(self.images[idx], self.labels[idx])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


class FolderImageSet(ImageSet):
    """Images read lazily from files with PIL, resized to ``image_size`` (square), ``channels`` 1|3."""

    def __init__(self, files: Sequence[str], labels: torch.Tensor, image_size: int, channels: int):
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.image_size = int(image_size)
        self.channels = int(channels)

    def _load(self, path: str) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as im:
                im = im.convert("L" if self.channels == 1 else "RGB")
                im = im.resize((self.image_size, self.image_size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise ValueError(f"imagefolder: cannot read image {path!r}: {e}") from e
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.long).flatten().tolist()
        return torch.stack([self._load(self.files[i]) for i in idx])

    def subset(self, indices) -> "FolderImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long).tolist()
        return FolderImageSet([self.files[i] for i in idx], self.labels[idx], self.image_size,
                              self.channels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


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


# ------------------------------------------------------------------------------------------------
# stratified, seeded index selection
# ------------------------------------------------------------------------------------------------
def stratified_take(labels: torch.Tensor, n: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(len(labels))`` into ``n`` taken indices and the rest, per class in proportion.

    Per class c with n_c members the quota is n * n_c / N rounded by largest remainder (ties:
    lower class id first), so the quotas sum to n exactly; members of each class are drawn
    uniformly with ``generator``. Returns (taken, rest), each sorted int64 indices.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    N = labels.numel()
    if not 0 <= n <= N:
        raise ValueError(f"stratified_take: n={n} outside [0, {N}]")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / max(N, 1)
    quota = torch.floor(exact).long()
    short = n - int(quota.sum())
    if short > 0:
        frac = exact - quota.double()
        order = sorted(range(len(classes)), key=lambda i: (-float(frac[i]), i))
        for i in order[:short]:
            quota[i] += 1
    taken = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        members = torch.nonzero(labels == c).flatten()
        perm = torch.randperm(members.numel(), generator=generator)
        taken.append(members[perm[:q]])
    taken_t = torch.sort(torch.cat(taken)).values if taken else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(N, dtype=torch.bool)
    keep[taken_t] = False
    return taken_t, torch.nonzero(keep).flatten()


def _holdout(imageset: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    g = torch.Generator().manual_seed(int(seed))
    n = int(round(len(imageset) * fraction))
    held, rest = stratified_take(imageset.labels, n, g)
    return imageset.subset(rest), imageset.subset(held)


def _limit(imageset: ImageSet, max_n: int | None, seed: int) -> ImageSet:
    if max_n is None or max_n >= len(imageset):
        return imageset
    g = torch.Generator().manual_seed(int(seed))
    taken, _ = stratified_take(imageset.labels, int(max_n), g)
    return imageset.subset(taken)


# ------------------------------------------------------------------------------------------------
# loaders per dataset
# ------------------------------------------------------------------------------------------------
def _check_labels(where: str, labels: np.ndarray, n_images: int, split: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{where}: y_{split} must be 1-D, got shape {labels.shape}")
    if labels.shape[0] != n_images:
        raise ValueError(f"{where}: {n_images} images in x_{split} but {labels.shape[0]} labels "
                         f"in y_{split}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"{where}: y_{split} must hold integer class ids, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{where}: y_{split} has negative class id {labels.min()}")
    return labels.astype(np.int64)


def _to_nchw_uint8(where: str, x: np.ndarray, split: str) -> torch.Tensor:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"{where}: x_{split} must be uint8 images (0..255), got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: x_{split} must be (N, H, W, C) with C in (1, 3) or (N, H, W), "
                         f"got shape {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


def load_npz(path: str | os.PathLike) -> tuple[TensorImageSet, TensorImageSet]:
    """Read an ``.npz`` with ``x_train, y_train, x_test, y_test`` (images NHWC uint8).

    Returns (train, test) image sets. FileNotFoundError when absent; ValueError naming the file and
    the problem for a corrupt/truncated archive, missing keys, bad dtypes/shapes or count mismatches.
    """
    path = Path(path)
    where = f"npz dataset {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: file not found (give --data-dir the .npz file itself)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise ValueError(f"{where}: missing arrays {missing} (found {sorted(z.files)}); "
                                 f"expected x_train, y_train, x_test, y_test")
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except ValueError as e:
        if str(e).startswith(where):
            raise
        raise ValueError(f"{where}: cannot read the archive ({e}); is it a complete .npz?") from e
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ValueError(f"{where}: corrupt or truncated archive ({type(e).__name__}: {e})") from e
    out = []
    for split in ("train", "test"):
        x = _to_nchw_uint8(where, arrays[f"x_{split}"], split)
        y = _check_labels(where, arrays[f"y_{split}"], x.shape[0], split)
        out.append(TensorImageSet(x, torch.from_numpy(y)))
    if out[0].image_shape != out[1].image_shape and len(out[1]):
        raise ValueError(f"{where}: train images {out[0].image_shape} and test images "
                         f"{out[1].image_shape} differ in shape")
    return out[0], out[1]


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_and_extract(url: str, root: Path, md5: str, *, timeout: float = 30.0) -> None:
    """Download ``url`` into ``root`` (temp file, MD5 check, then extract the tarball there).

    Raises FileNotFoundError (offline / HTTP error: with instructions) or ValueError (checksum).
    """
    root.mkdir(parents=True, exist_ok=True)
    fname = url.rsplit("/", 1)[-1]
    fd, tmp = tempfile.mkstemp(prefix=fname + ".", suffix=".part", dir=root)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise FileNotFoundError(
                f"could not download {url} ({e}). If this machine is offline, download it "
                f"elsewhere, extract it into {root} and run again, or use --dataset npz / digits"
            ) from e
        got = _md5(Path(tmp))
        if got != md5:
            raise ValueError(f"download of {url}: MD5 {got} != expected {md5} (corrupt download; "
                             f"delete and retry)")
        with tarfile.open(tmp, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # pragma: no cover - old Pythons
                tar.extractall(root)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _unpickle(path: Path, where: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{where}: missing file {str(path)!r}")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, OSError, AttributeError) as e:
        raise ValueError(f"{where}: corrupt batch file {str(path)!r} ({type(e).__name__}: {e})") from e


def _cifar_batch(path: Path, where: str, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    d = _unpickle(path, where)
    if b"data" not in d or label_key not in d:
        raise ValueError(f"{where}: {str(path)!r} lacks 'data' or {label_key.decode()!r}")
    x = np.asarray(d[b"data"])
    y = np.asarray(d[label_key])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: {str(path)!r} data has shape {x.shape} dtype {x.dtype}, "
                         f"expected (N, 3072) uint8")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{where}: {str(path)!r} has {x.shape[0]} images but {y.size} labels")
    return (torch.from_numpy(x.copy()).view(-1, 3, 32, 32),
            torch.from_numpy(y.astype(np.int64)))


def load_cifar(name: str, data_dir: str | os.PathLike | None, *, download: bool = True
               ) -> tuple[TensorImageSet, TensorImageSet]:
    """CIFAR-10/100 from the python-pickle batches. ``data_dir`` is the batches folder or its parent.

    Returns (train, test). Downloads (with MD5 check) when the folder is absent and ``download``.
    """
    folder, url, md5 = CIFAR_SOURCES[name]
    if data_dir is None:
        raise ValueError(f"dataset {name}: data_dir is required (the folder holding {folder}/ "
                         f"or that folder itself)")
    root = Path(data_dir)
    base = root if root.name == folder else root / folder
    where = f"dataset {name} in {str(base)!r}"
    if not base.is_dir():
        if not download:
            raise FileNotFoundError(f"{where}: folder not found; download {url} and extract it "
                                    f"into {str(root)!r} (or allow download)")
        log.info("downloading %s into %s", url, root)
        download_and_extract(url, base.parent, md5)
        if not base.is_dir():
            raise FileNotFoundError(f"{where}: the downloaded archive did not contain {folder}/")
    if name == "cifar10":
        parts = [_cifar_batch(base / f"data_batch_{i}", where, b"labels") for i in range(1, 6)]
        test = _cifar_batch(base / "test_batch", where, b"labels")
    else:
        parts = [_cifar_batch(base / "train", where, b"fine_labels")]
        test = _cifar_batch(base / "test", where, b"fine_labels")
    train = TensorImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    return train, TensorImageSet(*test)


def load_digits_sets(image_size: int = 32, channels: int = 3, *, test_fraction: float = 0.2,
                     seed: int = 0) -> tuple[TensorImageSet, TensorImageSet]:
    """scikit-learn's 8x8 digits as uint8 (N, channels, image_size, image_size) images.

    Values 0..16 -> 0..255, bilinear upscaling (align_corners=False), channel repetition.
    A stratified seeded ``test_fraction`` is held out as the test split. Returns (train, test).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)  # (N,1,8,8)
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).repeat(1, channels, 1, 1)
    full = TensorImageSet(x.contiguous(), torch.from_numpy(d.target.astype(np.int64)))
    train, test = _holdout(full, test_fraction, seed + 7919)
    return train, test  # type: ignore[return-value]


def _scan_folder(root: Path, where: str) -> tuple[list[str], list[int], list[str]]:
    if not root.is_dir():
        raise FileNotFoundError(f"{where}: folder {str(root)!r} not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{where}: {str(root)!r} has no class sub-folders")
    files, labels = [], []
    for ci, c in enumerate(classes):
        for dirpath, _, names in sorted(os.walk(root / c)):
            for n in sorted(names):
                if n.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(os.path.join(dirpath, n))
                    labels.append(ci)
    if not files:
        raise ValueError(f"{where}: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {str(root)!r}")
    return files, labels, classes


def load_imagefolder(data_dir: str | os.PathLike | None, *, image_size: int = 32, channels: int = 3,
                     test_fraction: float = 0.1, seed: int = 0
                     ) -> tuple[FolderImageSet, FolderImageSet, list[str]]:
    """``data_dir/train/<class>/...`` (+ ``val/`` or ``test/`` as the test split, else a seeded
    stratified ``test_fraction`` of train). Returns (train, test, class_names)."""
    try:
        import PIL  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise ImportError("dataset imagefolder needs Pillow (pip install pillow)") from e
    if data_dir is None:
        raise ValueError("dataset imagefolder: data_dir is required (a folder with train/<class>/)")
    root = Path(data_dir)
    where = f"imagefolder dataset {str(root)!r}"
    train_root = root / "train" if (root / "train").is_dir() else root
    files, labels, classes = _scan_folder(train_root, where)
    train = FolderImageSet(files, torch.tensor(labels), image_size, channels)
    for name in ("val", "test"):
        if (root / name).is_dir() and train_root != root:
            tf, tl, tc = _scan_folder(root / name, where)
            unknown = sorted(set(tc) - set(classes))
            if unknown:
                raise ValueError(f"{where}: {name}/ has classes not in train/: {unknown[:5]}")
            remap = [classes.index(c) for c in tc]
            return train, FolderImageSet(tf, torch.tensor([remap[i] for i in tl]), image_size,
                                         channels), classes
    tr, te = _holdout(train, test_fraction, seed + 7919)
    return tr, te, classes  # type: ignore[return-value]


def resize_uint8(images: torch.Tensor, size: int, *, chunk: int = 4096) -> tuple[torch.Tensor, str]:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size) and the method used: ``"none"`` (already that
    size), ``"avg_pool"`` (H and W integer multiples of ``size``: exact block means) or
    ``"bilinear"`` (antialiased; align_corners=False). Rounded half-to-even, computed in float32 in
    chunks of ``chunk`` images (bounded memory). Only downsizing: ValueError when ``size`` exceeds
    H or W."""
    n, c, h, w = images.shape
    method = _resize_method(h, w, size)
    if method == "none":
        return images, method
    pool = method == "avg_pool"
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for i in range(0, n, chunk):
        x = images[i:i + chunk].float()
        if pool:
            x = F.avg_pool2d(x, kernel_size=(h // size, w // size))
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out, method


def _resize_method(h: int, w: int, size: int) -> str:
    if size > h or size > w:
        raise ValueError(f"resize_uint8: size {size} exceeds the images' {h}x{w}")
    if (h, w) == (size, size):
        return "none"
    return "avg_pool" if h % size == 0 and w % size == 0 else "bilinear"


def _resized(imageset: TensorImageSet, size: int) -> TensorImageSet:
    return TensorImageSet(resize_uint8(imageset.images, size)[0], imageset.labels)


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
