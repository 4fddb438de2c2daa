"""Readers of the dataset formats: ``.npz`` (``load_npz``), the CIFAR python batches
(``load_cifar``, downloading the official tarball when absent), scikit-learn's digits
(``load_digits_sets``) and ImageNet-style folders (``load_imagefolder``). Each returns the official
(train, test) image sets; formats in ``naslid.data``'s docstring."""
from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .download import download_and_extract
from .images import IMAGE_EXTENSIONS, FolderImageSet, TensorImageSet, _holdout

log = logging.getLogger(__name__)


CIFAR_SOURCES = {
    # name: (folder inside data_dir, url, tarball md5)
    "cifar10": ("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85"),
}


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
