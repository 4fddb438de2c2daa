"""Human-readable summary of a search space and, optionally, of one architecture in it.

``describe_space(name, arch=None, **options) -> str`` backs the ``naslid spaces`` CLI sub-command.
"""
from __future__ import annotations

from typing import Mapping

from . import get_space


def _format_count(n: int) -> str:
    return f"{n:,}" if n < 10**12 else f"{n:.3e}"


def describe_space(name: str, arch: str | Mapping[str, str] | None = None, **options) -> str:
    """Describe space ``name`` built with ``options``: its decisions and candidates, the number of
    architectures, and, for ``arch`` (a string in the space's encoding or a mapping), its canonical
    string, parameters and multiply-adds (at the space's input size; NB201: also its index).

    Raises ValueError for an unknown space, bad options or a malformed arch."""
    space = get_space(name, **options)
    lines = [f"space: {space.name}"]
    opts = getattr(space, "options", None)
    if opts:
        lines.append("options: " + ", ".join(f"{k}={v}" for k, v in opts.items()))
    decisions = space.decisions
    lines.append(f"decisions: {len(decisions)}")
    width = max(len(k) for k in decisions)
    for key, cands in decisions.items():
        lines.append(f"  {key:<{width}}  ({len(cands)}) {', '.join(cands)}")
    lines.append(f"architectures: {_format_count(space.num_archs())}")
    if arch is not None:
        parsed = space.arch_from_string(arch) if isinstance(arch, str) else space.validate_arch(arch)
        lines.append(f"arch: {space.arch_to_string(parsed)}")
        if hasattr(space, "index_of"):
            lines.append(f"  index: {space.index_of(parsed)}")
        key = space.canonical_key(parsed)
        if key != space.arch_to_string(parsed):
            lines.append(f"  canonical key: {key}")
        size = getattr(space, "input_size", None)
        lines.append(f"  params: {space.count_params(parsed):,} ({space.count_params(parsed) / 1e6:.6f} M)")
        macs = space.count_macs(parsed)
        at = f" at {size}x{size}" if size else ""
        lines.append(f"  multiply-adds{at}: {macs:,} ({macs / 1e6:.2f} M)")
    return "\n".join(lines)
