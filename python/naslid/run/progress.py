"""``Progress``: where a run reports what it is doing, one object passed to every stage.

Three channels, decided once per run (``Progress.for_run``):

- status lines (the run's settings, a warm start, each level's outcome) go to ``echo`` (the CLI
  passes ``print`` on rank 0; None: silent), whatever ``quiet`` says;
- on a terminal (stderr is a TTY), not quiet, rank 0: tqdm progress bars (``bars``), which the
  training, split and search functions draw themselves when passed ``progress=bars``;
- elsewhere (a file, a pipe), not quiet, rank 0: one compact line per epoch through ``echo``.
"""
from __future__ import annotations

import sys
from typing import Callable, Iterable

from tqdm.auto import tqdm


class Progress:
    """Status lines, per-epoch lines and progress bars of one run (see the module docstring)."""

    def __init__(self, echo: Callable[[str], None] | None = None, *, bars: bool = False,
                 epoch_lines: bool = False):
        self.echo = echo
        self.bars = bars
        self.epoch_lines = epoch_lines

    @classmethod
    def for_run(cls, echo: Callable[[str], None] | None, *, quiet: bool, is_main: bool) -> "Progress":
        """Bars when stderr is a terminal, else one line per epoch; neither when ``quiet`` or not
        on rank 0."""
        shown = not quiet and is_main
        bars = shown and sys.stderr.isatty()
        return cls(echo, bars=bars, epoch_lines=shown and not bars)

    def status(self, message: str) -> None:
        """A one-line status message."""
        if self.echo is not None:
            self.echo(message)

    def bar(self, iterable: Iterable | None = None, **kw):
        """A tqdm bar over ``iterable`` (None: a manual bar, or None without bars) when bars are
        on; else ``iterable`` itself."""
        return tqdm(iterable, **kw) if self.bars else iterable

    # ----- events of a run ------------------------------------------------------------------------
    def run_started(self, cfg, data, out, device, world_size: int) -> None:
        """The run's settings: space, data, criterion, schedule, device, run folder."""
        self.status(
            f"naslid search: {cfg.space.name} (C={cfg.space.C}, N={cfg.space.N}) on {cfg.data.dataset} "
            f"({len(data.train)} train / {len(data.valid)} valid images, "
            f"{data.image_shape[1]}x{data.image_shape[2]}), criterion {cfg.split.criterion}, "
            f"warm-up {cfg.train.warmup_epochs}, {device}"
            + (f", {world_size} processes" if world_size > 1 else "")
            + f"; run folder {out}" + (" (resumed)" if cfg.resume else ""))

    def warm_started(self, epochs: int, source) -> None:
        """The root's warm-up was adopted from the run folder ``source``."""
        self.status(f"warm start: the root's {epochs}-epoch warm-up from {source}")

    def epoch_done(self, stage: str, node_id: str, epoch: int, stats: dict) -> None:
        """One training epoch of a node (``stats``: ``naslid.blocks.supernet_training.train_epoch``'s dict)."""
        if self.epoch_lines:
            self.status(f"{stage} {node_id} epoch {epoch}: loss {stats['loss']:.3f}, "
                        f"train acc {stats['acc']:.1f} %, lr {stats['lr']:.4f}, "
                        f"{stats['images_per_s']:.0f} images/s")

    def level_done(self, level: int, levels: int, epochs: int, active: int, splits: int) -> None:
        """Level ``level`` (0-based) of ``levels`` trained to ``epochs`` epochs and split."""
        self.status(f"level {level + 1}/{levels}: {epochs} epochs, "
                    f"{active} sub-supernet(s), {splits} split(s) so far")
