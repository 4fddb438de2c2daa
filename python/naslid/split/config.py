"""``SplitConfig``: every option of the split step, validated once, YAML/JSON round-trippable.

Light on purpose (no torch): ``naslid.config`` holds it as the ``split`` section of a run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..choices import (AVERAGES, CRITERIA, EDGE_RULES, LID_BACKENDS, LID_ESTIMATORS, PARTITIONS,
                       SIMILARITIES, SPLIT_BN_MODES)
from ..validation import auto_or_integer, boolean, choice, integer


@dataclass
class SplitConfig:
    """Options of one split step (docs/split.md; the method: docs/method.md). Validated when
    constructed and by ``validate()`` (after changing a field); ``ValueError`` naming the option.

    criterion     ``lid`` (NAS-LID, default) | ``grad`` (GM-NAS gradient matching) |
                  ``random`` (seeded random decision and partition) | ``none`` (no split).
    repeats       R >= 1: batches / random paths averaged per op vector.
    similarity    ``cosine`` | ``euclidean`` (similarity 1 / (1 + ||u - v||), the released code's
                  ``mse`` option) | ``correlation`` (Pearson). ``grad`` always uses cosine (GM-NAS).
    partition     ``mincut`` (exact, all partitions into ``n_groups`` non-empty groups) |
                  ``spectral`` | ``gmm`` (scikit-learn).
    n_groups      number of child sub-supernets (>= 2).
    balanced      restrict ``mincut`` to partitions whose group sizes differ by at most one
                  (what the released NAS-LID and GM-NAS NB201 code enumerate: 2|3); default False.
    edge_rule     ``paper`` (highest within-group similarity) | ``code`` (released NAS-LID code:
                  largest between-group similarity) | ``gm`` (GM-NAS: largest between-group
                  distance 1 - s). ``None`` (default) means ``paper`` for lid and ``gm`` for grad.
    k             neighbours of the LID estimator (< batch size).
    lid_estimator ``naslid`` | ``levina``;  lid_backend ``auto`` | ``ext`` | ``faiss`` | ``torch``.
    bn_mode       BatchNorm during the probing forwards: ``train`` (batch statistics, the GM-NAS
                  setting; running statistics are restored afterwards) | ``eval``.
    probe_chunks  criterion lid: ``auto`` (default) | an int >= 0. NB201's cells and reduction
                  blocks probe with their low-memory forward (``naslid.spaces.cell_low_memory``:
                  batch chunks, node tensors written in place; the cell input and two node tensors
                  at the peak instead of about six; up to two convolutions per cell run twice) in
                  this many batch chunks; 0 = the plain forward; ``auto`` = 8 chunks for inputs of
                  at least 64 MiB (224 px images), the plain forward below. Equal to the plain
                  forward up to rounding. ProxylessNAS and OFA ignore it.
    average       over the R repeats, average the op ``vector`` s (default) or the ``similarity``
                  matrices (what both released codes do: the code's per-repeat similarity mean).
    record_grad_vectors  keep the full flattened gradients in the record (large); by default the
                  record keeps their length and norm only.
    """

    criterion: str = "lid"
    repeats: int = 1
    similarity: str = "cosine"
    partition: str = "mincut"
    n_groups: int = 2
    balanced: bool = False
    edge_rule: str | None = None
    k: int = 20
    lid_estimator: str = "naslid"
    lid_backend: str = "auto"
    bn_mode: str = "train"
    probe_chunks: int | str = "auto"
    average: str = "vector"
    record_grad_vectors: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "SplitConfig") -> "SplitConfig":
        """Check every option (without changing any); ValueError ``<where>.<option>: ...``."""
        choice(f"{where}.criterion", self.criterion, CRITERIA)
        choice(f"{where}.similarity", self.similarity, SIMILARITIES)
        choice(f"{where}.partition", self.partition, PARTITIONS)
        if self.edge_rule is not None:
            choice(f"{where}.edge_rule", self.edge_rule, EDGE_RULES)
        choice(f"{where}.lid_estimator", self.lid_estimator, LID_ESTIMATORS)
        choice(f"{where}.lid_backend", self.lid_backend, LID_BACKENDS)
        choice(f"{where}.bn_mode", self.bn_mode, SPLIT_BN_MODES)
        choice(f"{where}.average", self.average, AVERAGES)
        integer(f"{where}.repeats", self.repeats, 1)
        integer(f"{where}.n_groups", self.n_groups, 2)
        integer(f"{where}.k", self.k, 1)
        auto_or_integer(f"{where}.probe_chunks", self.probe_chunks, 0)
        boolean(f"{where}.balanced", self.balanced)
        boolean(f"{where}.record_grad_vectors", self.record_grad_vectors)
        return self

    @property
    def resolved_edge_rule(self) -> str:
        """The edge rule actually applied: explicit, else ``gm`` for grad and ``paper`` otherwise."""
        if self.edge_rule is not None:
            return self.edge_rule
        return "gm" if self.criterion == "grad" else "paper"

    @property
    def resolved_similarity(self) -> str:
        """GM-NAS compares gradients by cosine; the option applies to LID vectors."""
        return "cosine" if self.criterion == "grad" else self.similarity

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SplitConfig":
        if not isinstance(d, Mapping):
            raise TypeError(f"SplitConfig.from_dict: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"SplitConfig.from_dict: unknown options {unknown}; known {sorted(known)}")
        return cls(**dict(d))
