"""This process's resident memory (Linux ``/proc/self``): current and peak RSS, and a peak reset.

Low level and free of naslid imports: the pipeline records per-stage peak RSS with it and the
memory benchmark (``naslid.studies.peak_memory``) measures the split step's RSS with it.
"""
from __future__ import annotations


def rss_bytes(field: str = "VmRSS") -> int | None:
    """This process's ``/proc/self/status`` memory field in bytes (``VmRSS`` now, ``VmHWM`` peak);
    None where the file does not exist (not Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
