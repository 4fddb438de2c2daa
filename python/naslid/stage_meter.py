"""``StageMeter``: wall time (summed) and peak memory (max) per named stage of a run.

Peak memory is, on CUDA, ``torch.cuda.max_memory_allocated`` (reset at the stage start) and, on
CPU, the process's peak resident set size during the stage (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``; where that is unavailable, the peak since the process started).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from .rss import reset_peak_rss, rss_bytes


class StageMeter:
    """Accumulates wall time (sum) and peak memory (max) per stage name; ``timings`` / ``peaks``
    start from a resumed run's values."""

    def __init__(self, device: torch.device, timings: dict | None = None, peaks: dict | None = None):
        self.device = device
        self.timings: dict[str, float] = dict(timings or {})
        self.peaks: dict[str, int] = dict(peaks or {})

    def add(self, name: str, seconds: float, peak: int) -> None:
        """Count ``seconds`` more and a peak of ``peak`` bytes for stage ``name``."""
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        self.peaks[name] = max(self.peaks.get(name, 0), peak)

    @contextmanager
    def stage(self, name: str):
        """Measure the ``with`` block as (part of) stage ``name``."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            reset_peak_rss()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
                peak = int(torch.cuda.max_memory_allocated(self.device))
            else:
                peak = rss_bytes("VmHWM") or 0
            self.add(name, time.perf_counter() - t0, peak)
