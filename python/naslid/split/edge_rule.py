"""Which decision to split, given each candidate decision's best partition (docs/method.md, section 7).

rule      value maximised over decisions
paper     within-group similarity of the best partition (NAS-LID paper)
code      between-group similarity of the best partition (released NAS-LID code, mincut path: a
          port of GM-NAS's rule with distance replaced by similarity)
gm        between-group distance, sum over between pairs of (1 - S_ij) (GM-NAS; with cosine
          similarity this is GM-NAS's cosine distance)

Ties go to the first decision in the space's order.
"""
from __future__ import annotations

from typing import Mapping

from .partition import PartitionResult

RULES = ("paper", "code", "gm")


def rule_value(result: PartitionResult, rule: str) -> float:
    """The score ``rule`` maximises for one decision's partition result."""
    if rule == "paper":
        return float(result.within)
    if rule == "code":
        return float(result.between)
    if rule == "gm":
        return float(result.between_distance)
    raise ValueError(f"rule_value: rule={rule!r} is not one of {list(RULES)}")


def choose_decision(results: Mapping[str, PartitionResult], rule: str) -> tuple[str, dict[str, float]]:
    """(chosen decision key, {key: rule value}) over ``results`` (ordered like the space)."""
    if rule not in RULES:
        raise ValueError(f"choose_decision: rule={rule!r} is not one of {list(RULES)}")
    if not results:
        raise ValueError("choose_decision: no candidate decisions (results is empty)")
    values = {k: rule_value(r, rule) for k, r in results.items()}
    best_key, best_val = None, None
    for k, v in values.items():
        if best_val is None or v > best_val:
            best_key, best_val = k, v
    return best_key, values
