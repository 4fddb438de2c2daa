"""Run folders, atomic checkpoints and the run manifest (resume after a kill at any point).

Layout of a run folder ``OUT``::

    OUT/run.json            manifest: format, config hash (the run's identity), status
    OUT/config.yaml         the resolved configuration
    OUT/ckpt/<name>.pt      checkpoints (torch.save of a dict), each tagged with the config hash
    OUT/result.json         written once, atomically, when the run completes

Every file is written atomically: a temporary file in the same folder, flushed and fsync'ed, then
``os.replace``'d onto the final name (and the folder fsync'ed), so a kill -9 leaves either the old
or the new version, never a torn one. A checkpoint that cannot be read, or that belongs to another
run (other config hash), raises ``CheckpointError`` naming the file: an ``InputError``, since the
folder the user named is unusable (``naslid.errors``).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import InputError

MANIFEST = "run.json"
FORMAT = "naslid-run/1"
RUNS_ROOT = "runs"
RUN_PREFIX = "search-"


def default_run_dir() -> str:
    """``runs/search-<UTC time>``: the run folder of a search given no ``--out``."""
    return os.path.join(RUNS_ROOT, RUN_PREFIX + time.strftime("%Y%m%d-%H%M%S", time.gmtime()))


class CheckpointError(InputError):
    """A corrupt, foreign or missing checkpoint / run folder."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace + fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o: Any):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_json"):
        return o.to_json()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class RunFolder:
    """A run's output folder: manifest, config, checkpoints.

    ``RunFolder.open(out, config_hash, resume)`` checks the folder before any work starts:
    a folder holding another run (or anything else) is refused unless ``resume`` and the run is
    the same configuration; ``resume`` of a folder without a manifest is refused.
    """

    def __init__(self, root: Path, config_hash: str, threads: int | None = None):
        self.root = Path(root)
        self.config_hash = config_hash
        self.threads = threads  # intra-op CPU threads of the run (in the manifest: part of its identity)
        self.ckpt_dir = self.root / "ckpt"

    # ----- opening -----------------------------------------------------------------------------
    @staticmethod
    def read_manifest(root: str | os.PathLike) -> dict | None:
        p = Path(root) / MANIFEST
        if not p.exists():
            return None
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"run manifest {str(p)!r} is corrupt ({type(e).__name__}); "
                                  f"choose another --out") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT or "config_hash" not in m:
            raise CheckpointError(f"{str(p)!r} is not a naslid run manifest (format {FORMAT})")
        return m

    @classmethod
    def check(cls, root: str | os.PathLike, config_hash: str, resume: bool,
              threads: int | None = None) -> dict | None:
        """Validate ``root`` for a run with ``config_hash`` using ``threads`` intra-op CPU threads
        without writing anything. Returns the existing manifest (resume) or None (fresh run).
        A resume with another thread count than the manifest's is refused: MKL / oneDNN sums
        depend on it, so the resumed run would not compute what the uninterrupted one does."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise CheckpointError(f"output folder {str(root)!r} exists and is not a folder")
        manifest = cls.read_manifest(root) if root.exists() else None
        if manifest is None:
            if resume:
                raise CheckpointError(f"--resume: {str(root)!r} holds no naslid run to resume "
                                      f"(no {MANIFEST})")
            if root.exists() and any(root.iterdir()):
                raise CheckpointError(f"output folder {str(root)!r} is not empty and holds no naslid run; "
                                      f"choose another --out")
            return None
        if manifest["config_hash"] != config_hash:
            raise CheckpointError(
                f"output folder {str(root)!r} holds another run (config hash {manifest['config_hash']}, "
                f"this run {config_hash}); choose another --out"
                + ("" if resume else " or pass --resume with that run's configuration"))
        if threads is not None and manifest.get("threads") not in (None, threads):
            raise CheckpointError(
                f"--resume: {str(root)!r} was run with {manifest['threads']} intra-op CPU threads, "
                f"this process would use {threads}; results depend on the thread count (MKL / oneDNN "
                f"sums), so resume with --set threads={manifest['threads']}")
        if not resume:
            raise CheckpointError(f"output folder {str(root)!r} already holds this run "
                                  f"(status {manifest.get('status')}); pass --resume to continue it "
                                  f"or choose another --out")
        return manifest

    @classmethod
    def open(cls, root: str | os.PathLike, config_hash: str, resume: bool,
             threads: int | None = None) -> "RunFolder":
        manifest = cls.check(root, config_hash, resume, threads)
        rf = cls(Path(root), config_hash, threads)
        rf.root.mkdir(parents=True, exist_ok=True)
        rf.ckpt_dir.mkdir(exist_ok=True)
        if manifest is None:
            rf.write_manifest(status="running")
        return rf

    def write_manifest(self, status: str, **extra: Any) -> None:
        m = {"format": FORMAT, "config_hash": self.config_hash, "status": status,
             "naslid_version": __version__, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if self.threads is not None:
            m["threads"] = self.threads
        m.update(extra)
        atomic_write_json(self.root / MANIFEST, m)

    # ----- checkpoints -------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.ckpt_dir / f"{name}.pt"

    def save(self, name: str, state: dict) -> None:
        """Atomically save ``state`` (a dict of tensors / state dicts / plain data) as ``name``."""
        atomic_torch_save(self.path(name), {"format": FORMAT, "config_hash": self.config_hash,
                                            "name": name, "state": state})

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def load(self, name: str) -> dict | None:
        """The state saved as ``name`` or None when absent. CheckpointError when corrupt/foreign."""
        p = self.path(name)
        if not p.exists():
            return None
        return load_checkpoint(p, self.config_hash, name)

    def remove(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass


def load_checkpoint(path: str | os.PathLike, config_hash: str | None = None, name: str | None = None) -> dict:
    """Load a checkpoint file; CheckpointError naming the file when it is corrupt or foreign."""
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupt or unreadable ({type(e).__name__}); "
                              f"delete it or start a fresh run with another --out") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "state" not in obj:
        raise CheckpointError(f"checkpoint {str(p)!r} is not a naslid checkpoint (format {FORMAT})")
    if config_hash is not None and obj.get("config_hash") != config_hash:
        raise CheckpointError(f"checkpoint {str(p)!r} belongs to another run (config hash "
                              f"{obj.get('config_hash')}, this run {config_hash})")
    if name is not None and obj.get("name") != name:
        raise CheckpointError(f"checkpoint {str(p)!r} holds {obj.get('name')!r}, expected {name!r}")
    return obj["state"]
