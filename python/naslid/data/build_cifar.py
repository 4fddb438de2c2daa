"""``naslid data cifar10``: ``cifar10.npz`` from the official CIFAR-10 python archive.

The archive is ``cifar-10-python.tar.gz`` (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz,
MD5 ``c58f30108f718f92721af3b95e74349a``): ``cifar-10-batches-py/data_batch_1`` .. ``_5``,
``test_batch`` (pickles with ``b"data"`` (N, 3072) uint8, channel-major, and ``b"labels"``) and
``batches.meta`` (``b"label_names"``). It is read in place, without extracting it.

The npz holds ``x_train`` (50000, 32, 32, 3) and ``x_test`` (10000, 32, 32, 3) uint8 NHWC in the
batches' order, ``y_train`` / ``y_test`` uint8 and ``class_names`` (str): the format that
``--dataset npz`` reads (``naslid.data.load_npz``). Downloads go through ``naslid.data.download``.
"""
from __future__ import annotations

import logging
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from .download import download

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_NPZ = "cifar10.npz"
_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _member(tar: tarfile.TarFile, name: str, where: str):
    try:
        f = tar.extractfile(f"{_FOLDER}/{name}")
    except KeyError:
        f = None
    if f is None:
        raise ValueError(f"{where}: no {_FOLDER}/{name} in the archive (is it cifar-10-python.tar.gz?)")
    try:
        return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{where}: {_FOLDER}/{name} is not a CIFAR batch ({type(e).__name__}: {e})") from e


def _batch(d, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError(f"{where}: {name} lacks b'data' or b'labels'")
    x, y = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: {name} data has shape {x.shape} dtype {x.dtype}, expected (N, 3072) uint8")
    if y.shape != (x.shape[0],) or (y.size and not 0 <= y.min() <= y.max() <= 9):
        raise ValueError(f"{where}: {name} has {x.shape[0]} images but labels of shape {y.shape} "
                         f"(range {y.min() if y.size else None}..{y.max() if y.size else None}, expected 0..9)")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.uint8)


def read_cifar10_archive(archive: str | os.PathLike) -> dict[str, np.ndarray]:
    """The npz arrays of ``archive`` (see the module docstring); ValueError naming the member for
    a foreign or damaged archive."""
    where = f"CIFAR-10 archive {str(archive)!r}"
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{where}: cannot open it as a tar.gz ({type(e).__name__}: {e})") from e
    with tar:
        train = [_batch(_member(tar, b, where), b, where) for b in TRAIN_BATCHES]
        x_test, y_test = _batch(_member(tar, "test_batch", where), "test_batch", where)
        meta = _member(tar, "batches.meta", where)
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not names or len(names) != 10:
        raise ValueError(f"{where}: batches.meta has no 10 b'label_names'")
    return {
        "x_train": np.ascontiguousarray(np.concatenate([b[0] for b in train])),
        "y_train": np.concatenate([b[1] for b in train]),
        "x_test": np.ascontiguousarray(x_test),
        "y_test": y_test,
        "class_names": np.array([n.decode() if isinstance(n, bytes) else str(n) for n in names]),
    }


def build_cifar10_npz(out: str | os.PathLike, *, source: str | os.PathLike | None = None,
                      download_dir: str | os.PathLike | None = None) -> Path:
    """Write ``out`` from ``source`` (the archive), downloading it into ``download_dir`` (default:
    the folder of ``out``) first when ``source`` is None and it is not there yet."""
    out = Path(out)
    if source is None:
        archive = Path(download_dir or out.parent or ".") / CIFAR10_ARCHIVE
        if not archive.is_file():
            log.warning("downloading %s to %s", CIFAR10_URL, archive)
            download(CIFAR10_URL, archive, CIFAR10_MD5, offline_hint=(
                f"On a machine that is offline, fetch {CIFAR10_ARCHIVE} (MD5 {CIFAR10_MD5}) elsewhere "
                f"and give it with --from FILE, e.g. `naslid data cifar10 --from {CIFAR10_ARCHIVE}`"))
    else:
        archive = Path(source)
        if not archive.is_file():
            raise FileNotFoundError(f"--from {str(source)!r}: file not found (the official archive is "
                                    f"{CIFAR10_ARCHIVE}, {CIFAR10_URL})")
    arrays = read_cifar10_archive(archive)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return out
