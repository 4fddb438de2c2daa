"""``SplitConfig``: every option of the split step, validated once, YAML/JSON round-trippable."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping

CRITERIA = ("lid", "grad", "random", "none")
SIMILARITIES = ("cosine", "euclidean", "correlation")
PARTITIONS = ("mincut", "spectral", "gmm")
EDGE_RULES = ("paper", "code", "gm")
LID_ESTIMATORS = ("naslid", "levina")
LID_BACKENDS = ("auto", "ext", "faiss", "torch")
BN_MODES = ("train", "eval")
AVERAGES = ("vector", "similarity")


@dataclass(frozen=True)
class SplitConfig:
    """Options of one split step (docs/split.md; the method: docs/method.md).

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
    average: str = "vector"
    record_grad_vectors: bool = False

    def __post_init__(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            v = getattr(self, name)
            if not isinstance(v, str) or v not in allowed:
                raise ValueError(f"SplitConfig: {name}={v!r} is not one of {list(allowed)}")

        def posint(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"SplitConfig: {name}={v!r} must be an integer >= {lo}")

        choice("criterion", CRITERIA)
        choice("similarity", SIMILARITIES)
        choice("partition", PARTITIONS)
        if self.edge_rule is not None:
            choice("edge_rule", EDGE_RULES)
        choice("lid_estimator", LID_ESTIMATORS)
        choice("lid_backend", LID_BACKENDS)
        choice("bn_mode", BN_MODES)
        choice("average", AVERAGES)
        posint("repeats", 1)
        posint("n_groups", 2)
        posint("k", 1)
        for name in ("balanced", "record_grad_vectors"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SplitConfig: {name}={getattr(self, name)!r} must be a bool")

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
