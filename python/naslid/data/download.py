"""Downloads with plain urllib: a temporary file, an MD5 check, then the file renamed into place
(``download``) or the tarball extracted (``download_and_extract``)."""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


def file_md5(path: str | os.PathLike) -> str:
    """The MD5 hex digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, folder: Path, md5: str, offline_hint: str, timeout: float) -> str:
    """``url`` into a temporary ``*.part`` file in ``folder``, MD5-checked; its path. The caller
    removes it. Offline / HTTP error: FileNotFoundError ending with ``offline_hint``; a wrong
    checksum: ValueError."""
    fd, tmp = tempfile.mkstemp(prefix=url.rsplit("/", 1)[-1] + ".", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        os.remove(tmp)
        raise FileNotFoundError(f"could not download {url} ({e}). {offline_hint}") from e
    got = file_md5(tmp)
    if got != md5:
        os.remove(tmp)
        raise ValueError(f"download of {url}: MD5 {got} != expected {md5} (corrupt download; "
                         f"delete and retry)")
    return tmp


def download(url: str, dest: str | os.PathLike, md5: str, *, offline_hint: str = "",
             timeout: float = 30.0) -> Path:
    """Fetch ``url`` to the file ``dest`` (MD5-checked, renamed into place); see ``_fetch``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fetch(url, dest.parent, md5, offline_hint, timeout)
    os.replace(tmp, dest)
    return dest


def download_and_extract(url: str, root: Path, md5: str, *, timeout: float = 30.0) -> None:
    """Download ``url`` into ``root`` (temp file, MD5 check, then extract the tarball there).

    Raises FileNotFoundError (offline / HTTP error: with instructions) or ValueError (checksum).
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = _fetch(url, root, md5, f"If this machine is offline, download it elsewhere, extract it "
                 f"into {root} and run again, or use --dataset npz / digits", timeout)
    try:
        with tarfile.open(tmp, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # pragma: no cover - old Pythons
                tar.extractall(root)
    finally:
        os.remove(tmp)
