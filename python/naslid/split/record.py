"""``SplitRecord``: everything one split step measured and decided, JSON round-trippable."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

RECORD_VERSION = 1


@dataclass
class DecisionRecord:
    """One candidate decision of a split step.

    ops          names of its enabled candidates, in the space's order (the rows below)
    vectors      op vectors averaged over the repeats (n_ops lists of floats); for criterion grad
                 only when ``record_grad_vectors`` (else None: see vector_dim / vector_norms)
    vector_dim   length of each op vector (L LID layers, or P shared parameters)
    vector_norms Euclidean norm of each op vector
    similarity   (n_ops, n_ops) similarity matrix (averaged over repeats when average=similarity)
    partition    groups of op names; partition_index the same as positions in ``ops``
    within, between, between_distance  scores of the partition (see partition.py)
    rule_value   the value the edge rule compared across decisions
    paths        per repeat, the random path (arch: key -> op) the other decisions took
    """

    ops: list[str]
    vectors: list[list[float]] | None
    vector_dim: int
    vector_norms: list[float]
    similarity: list[list[float]]
    partition: list[list[str]]
    partition_index: list[list[int]]
    within: float
    between: float
    between_distance: float
    rule_value: float
    partition_method: str
    partition_repaired: bool = False
    paths: list[dict[str, str]] = field(default_factory=list)


@dataclass
class SplitRecord:
    """Outcome of ``split_step``.

    split        False when nothing was split (criterion none, or no splittable decision)
    reason       why not, when split is False
    criterion, edge_rule, similarity   what was applied (resolved, explicit)
    config       the SplitConfig as a dict
    parent_mask  JSON mask (key -> list of 0/1)
    decisions    key -> DecisionRecord for every decision examined (empty for random / none)
    chosen       the decision split (None when split is False)
    groups       op names per child (None when split is False)
    child_masks  JSON masks, one per group, in the order of ``groups``
    seconds      wall time of the step
    lid_seconds  of which in the LID ops (criterion lid; the rest: forwards, similarity, partition)
    """

    split: bool
    criterion: str
    edge_rule: str
    similarity: str
    config: dict[str, Any]
    parent_mask: dict[str, list[int]]
    decisions: dict[str, DecisionRecord] = field(default_factory=dict)
    chosen: str | None = None
    groups: list[list[str]] | None = None
    child_masks: list[dict[str, list[int]]] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    lid_seconds: float = 0.0
    version: int = RECORD_VERSION

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` works on it)."""
        return asdict(self)

    def dumps(self, **kw) -> str:
        return json.dumps(self.to_json(), **kw)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | str) -> "SplitRecord":
        """Inverse of ``to_json``; ``obj`` may be a dict or a JSON string."""
        if isinstance(obj, str):
            obj = json.loads(obj)
        if not isinstance(obj, Mapping):
            raise TypeError(f"SplitRecord.from_json: expected a mapping or JSON string, got {type(obj).__name__}")
        d = dict(obj)
        if d.get("version") != RECORD_VERSION:
            raise ValueError(f"SplitRecord.from_json: version {d.get('version')!r}, expected {RECORD_VERSION}")
        try:
            d["decisions"] = {k: DecisionRecord(**v) for k, v in d.get("decisions", {}).items()}
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"SplitRecord.from_json: malformed record ({e})") from None

    def child_mask_tensors(self, space) -> list[dict]:
        """The child masks as ``dict[str, BoolTensor]`` validated by ``space``."""
        return [space.mask_from_json(m) for m in self.child_masks]
