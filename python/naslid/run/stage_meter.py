"""``StageMeter``: wall time (summed), peak memory (max) and extra memory (max) per named stage.

Peak memory is, on CUDA, ``torch.cuda.max_memory_allocated`` (reset at the stage start) and, on
CPU, the process's peak resident set size during the stage (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``; where that is unavailable, the peak since the process started). Extra
memory is the peak above what was in use when the stage began (``memory_allocated`` on CUDA, the
RSS ``VmRSS`` on CPU): the stage's own memory, e.g. the split step's, to compare criteria by.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from .rss import reset_peak_rss, rss_bytes


class StageMeter:
    """Accumulates wall time (sum), peak memory (max) and extra memory (max) per stage name;
    ``timings`` / ``peaks`` / ``extra`` start from a resumed run's values."""

    def __init__(self, device: torch.device, timings: dict | None = None, peaks: dict | None = None,
                 extra: dict | None = None):
        self.device = device
        self.timings: dict[str, float] = dict(timings or {})
        self.peaks: dict[str, int] = dict(peaks or {})
        self.extra: dict[str, int] = dict(extra or {})

    def add(self, name: str, seconds: float, peak: int, extra: int | None = None) -> None:
        """Count ``seconds`` more, a peak of ``peak`` bytes and (when known) ``extra`` bytes above
        the stage's starting memory for stage ``name``."""
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        self.peaks[name] = max(self.peaks.get(name, 0), peak)
        if extra is not None:
            self.extra[name] = max(self.extra.get(name, 0), extra)

    @contextmanager
    def stage(self, name: str):
        """Measure the ``with`` block as (part of) stage ``name``."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = int(torch.cuda.memory_allocated(self.device))
        else:
            reset_peak_rss()
            start = rss_bytes("VmRSS") or 0
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
                peak = int(torch.cuda.max_memory_allocated(self.device))
            else:
                peak = rss_bytes("VmHWM") or 0
            self.add(name, time.perf_counter() - t0, peak, max(0, peak - start))
