"""Feature taps: forward hooks on a network's LID layers that are always removed.

Two modes::

    with FeatureTap(supernet) as tap:                 # capture: detached features
        supernet(x)
    feats = tap.features()                            # list of L tensors (N, ...)

    with FeatureTap(supernet, reduce="lid", k=20) as tap:   # reduce on the fly through naslid_ext
        supernet(x)
    v = tap.lid_vector()                              # Tensor (L,)

In reduce mode each hook turns its layer's output into its LID at once
(``naslid_ext.lid(out.detach(), k=k, estimator=..., reduction=..., backend=...)``) and drops the
features, so at most one layer's features are alive beyond what the forward itself holds. ``reduce``
may also be any callable ``fn(features (N, ...)) -> Tensor``.

Every layer must fire exactly once per forward: a layer firing a second time raises at once (call
``tap.reset()`` between forwards to reuse the tap), and reading results while a layer has not fired
raises. Hooks are removed on ``__exit__``, also when the forward raised.
"""
from __future__ import annotations

import time

from typing import Callable, Sequence

import torch
from torch import nn

Reducer = Callable[[torch.Tensor], torch.Tensor]


def _resolve_layers(target) -> list[nn.Module]:
    if hasattr(target, "lid_layers") and callable(target.lid_layers):
        layers = list(target.lid_layers())
    elif isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        layers = list(target)
    else:
        raise TypeError("FeatureTap: target must have lid_layers() or be a sequence of modules, got "
                        f"{type(target).__name__}")
    if not layers:
        raise ValueError("FeatureTap: no layers to tap (lid_layers() is empty)")
    for i, m in enumerate(layers):
        if not isinstance(m, nn.Module):
            raise TypeError(f"FeatureTap: layer {i} is a {type(m).__name__}, not an nn.Module")
    if len({id(m) for m in layers}) != len(layers):
        raise ValueError("FeatureTap: the same module appears twice among the tapped layers")
    return layers


def lid_reducer(k: int = 20, *, estimator: str = "naslid", reduction: str = "mean",
                backend: str = "auto") -> Reducer:
    """A reducer computing a layer's LID with ``naslid_ext.lid`` (features (N, ...) -> LID)."""
    try:
        import naslid_ext
    except ImportError as exc:  # pragma: no cover - the package ships naslid_ext
        raise RuntimeError(f"FeatureTap: reduce='lid' needs naslid_ext ({exc})") from exc
    lid = getattr(naslid_ext, "lid", None)
    if lid is None:
        raise RuntimeError("FeatureTap: reduce='lid' needs naslid_ext.lid, which this build of "
                           "naslid_ext does not provide")

    def reduce(feats: torch.Tensor) -> torch.Tensor:
        return lid(feats, k=k, estimator=estimator, reduction=reduction, backend=backend)

    return reduce


class FeatureTap:
    """Context manager hooking ``target.lid_layers()`` (or a sequence of modules).

    Args:
        target: a network with ``lid_layers()`` (every ``Supernet``; NB201 standalone networks too)
            or a sequence of modules, in LID-vector order.
        reduce: None (capture detached features), ``"lid"`` (LID per layer via ``naslid_ext.lid``)
            or a callable ``fn(features (N, ...)) -> Tensor`` applied to each detached output.
        k, estimator, reduction, backend: passed to ``naslid_ext.lid`` when ``reduce="lid"``.
    """

    def __init__(self, target, *, reduce: None | str | Reducer = None, k: int = 20,
                 estimator: str = "naslid", reduction: str = "mean", backend: str = "auto"):
        self.layers = _resolve_layers(target)
        if reduce is None or callable(reduce):
            self._reduce = reduce
        elif reduce == "lid":
            self._reduce = lid_reducer(k, estimator=estimator, reduction=reduction, backend=backend)
        else:
            raise ValueError(f"FeatureTap: reduce must be None, 'lid' or a callable, got {reduce!r}")
        self._handles: list = []
        #: wall seconds spent in the reducer (LID) since construction
        self.reduce_seconds = 0.0
        self.reset()

    # ----- hooks -------------------------------------------------------------------------------
    def _hook(self, i: int):
        def hook(module: nn.Module, inputs, output) -> None:
            if self._fired[i]:
                raise RuntimeError(
                    f"FeatureTap: layer {i} ({type(module).__name__}) fired a second time; one "
                    "forward per tap (call tap.reset() between forwards)")
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"FeatureTap: layer {i} ({type(module).__name__}) returned a "
                                f"{type(output).__name__}, not a Tensor")
            feats = output.detach()
            if self._reduce is None:
                self._records[i] = feats
            else:
                t0 = time.perf_counter()
                self._records[i] = self._reduce(feats)
                self.reduce_seconds += time.perf_counter() - t0
            self._fired[i] += 1
        return hook

    def __enter__(self) -> "FeatureTap":
        if self._handles:
            raise RuntimeError("FeatureTap: already active (nested use of the same tap)")
        try:
            for i, m in enumerate(self.layers):
                self._handles.append(m.register_forward_hook(self._hook(i)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.remove()
        return False

    def remove(self) -> None:
        """Remove every hook this tap registered (idempotent)."""
        handles, self._handles = self._handles, []
        for h in handles:
            h.remove()

    @property
    def active(self) -> bool:
        return bool(self._handles)

    # ----- results -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget recorded outputs so the next forward can be recorded."""
        self._records: list[torch.Tensor | None] = [None] * len(self.layers)
        self._fired = [0] * len(self.layers)

    @property
    def fired(self) -> list[int]:
        """How often each layer fired since the last reset."""
        return list(self._fired)

    def _check_complete(self, fn: str) -> None:
        missing = [i for i, n in enumerate(self._fired) if n == 0]
        if missing:
            names = [type(self.layers[i]).__name__ for i in missing[:5]]
            raise RuntimeError(f"FeatureTap.{fn}: layers {missing} ({names}...) did not fire; each "
                               f"of the {len(self.layers)} tapped layers must run once per forward")

    def features(self) -> list[torch.Tensor]:
        """Captured detached outputs, one (N, ...) tensor per layer (capture mode only)."""
        if self._reduce is not None:
            raise RuntimeError("FeatureTap.features: this tap reduces on the fly; features are not kept")
        self._check_complete("features")
        return list(self._records)

    def reduced(self) -> list[torch.Tensor]:
        """Per-layer reducer outputs (reduce mode only)."""
        if self._reduce is None:
            raise RuntimeError("FeatureTap.reduced: this tap captures features; pass reduce=... ")
        self._check_complete("reduced")
        return list(self._records)

    def lid_vector(self) -> torch.Tensor:
        """Reducer outputs stacked: (L,) for scalar reductions ((L, N) for reduction='none')."""
        return torch.stack(self.reduced())
