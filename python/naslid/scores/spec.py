"""``search.score``'s grammar: one signal or a ``+``-joined combination (light: no torch).

``parse_signals("loss+naswot+synflow")`` -> ("loss", "naswot", "synflow"); InputError naming the
option for an empty combination, an unknown signal or a repeated one. A single supernet signal
(``loss`` / ``acc``) is the pure-supernet protocol (``is_pure_supernet``); the maths of a
combination is ``naslid.scores.combination``.
"""
from __future__ import annotations

from typing import Sequence

from ..choices import FREE_SCORES, SCORES, SIGNALS
from ..errors import InputError


def parse_signals(spec, where: str = "config.search.score") -> tuple[str, ...]:
    """The signals of ``spec`` (a name, ``"a+b+..."`` or a list of names), in order."""
    if isinstance(spec, str):
        names = [s.strip() for s in spec.split("+")]
    elif isinstance(spec, (list, tuple)):
        names = list(spec)
    else:
        raise InputError(f"{where}: expected a signal name or a '+'-joined combination of {list(SIGNALS)}, "
                         f"got {spec!r}")
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise InputError(f"{where}: empty combination {spec!r}; name at least one signal of {list(SIGNALS)}")
    bad = [n for n in names if n not in SIGNALS]
    if bad:
        raise InputError(f"{where}: unknown signal(s) {bad} in {spec!r}; choose from {list(SIGNALS)}")
    if len(set(names)) != len(names):
        raise InputError(f"{where}: a signal appears twice in {spec!r}")
    return tuple(names)


def is_pure_supernet(signals: Sequence[str]) -> bool:
    """One supernet signal alone: the fitness is that signal (no reference sample)."""
    return len(signals) == 1 and signals[0] in SCORES


def free_signals(signals: Sequence[str]) -> tuple[str, ...]:
    """The training-free signals among ``signals``, in order."""
    return tuple(s for s in signals if s in FREE_SCORES)


__all__ = ["parse_signals", "is_pure_supernet", "free_signals"]
