"""Partition the ops of one decision into ``n_groups`` non-empty groups.

A partition is a list of groups, each a sorted list of op positions (0..n-1), the groups ordered by
their smallest member (the canonical form of a restricted growth string). Scores are over pairs
i < j of the similarity matrix S (n, n):

    within(P)  = sum of S_ij over pairs in the same group
    between(P) = sum of S_ij over pairs in different groups
    within + between = sum of S_ij over all pairs (so max within == min cut)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Sequence

import numpy as np

MAX_ENUMERATED_PARTITIONS = 2_000_000


@dataclass(frozen=True)
class PartitionResult:
    """groups: canonical partition; within / between: scores above; n_between_pairs: pair count."""

    groups: list[list[int]]
    within: float
    between: float
    n_between_pairs: int
    method: str
    repaired: bool = False  # spectral/gmm returned an empty cluster and it was filled (see _repair)

    @property
    def between_distance(self) -> float:
        """sum over between-group pairs of (1 - S_ij): GM-NAS's edge score."""
        return float(self.n_between_pairs - self.between)


@lru_cache(maxsize=None)
def stirling2(n: int, k: int) -> int:
    """Number of partitions of n labelled items into k non-empty groups."""
    if n == k:
        return 1
    if k == 0 or k > n:
        return 0
    return k * stirling2(n - 1, k) + stirling2(n - 1, k - 1)


def set_partitions(n: int, n_groups: int) -> Iterator[tuple[int, ...]]:
    """All restricted growth strings of length n with exactly ``n_groups`` distinct labels.

    labels[0] = 0 and labels[i] <= 1 + max(labels[:i]); each set partition appears exactly once,
    in lexicographic order of its string."""
    if n < 1 or n_groups < 1 or n_groups > n:
        return
    labels = [0] * n

    def rec(i: int, used: int) -> Iterator[tuple[int, ...]]:
        if n - i < n_groups - used:  # not enough items left to open the missing groups
            return
        if i == n:
            if used == n_groups:
                yield tuple(labels)
            return
        for lab in range(min(used + 1, n_groups)):
            labels[i] = lab
            yield from rec(i + 1, max(used, lab + 1))

    labels[0] = 0
    yield from rec(1, 1)


def labels_to_groups(labels: Sequence[int]) -> list[list[int]]:
    """Canonical groups (ordered by smallest member) from any labelling."""
    first: dict[int, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(int(lab), i)
    order = sorted(first, key=first.__getitem__)
    return [[i for i, lab in enumerate(labels) if int(lab) == g] for g in order]


def _check_sim(similarity: np.ndarray, fn: str) -> np.ndarray:
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 1:
        raise ValueError(f"{fn}: similarity must be a square (n, n) matrix, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{fn}: similarity {s.shape} contains NaN or Inf")
    return s


def _check_groups(n: int, n_groups: int, fn: str) -> None:
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 2:
        raise ValueError(f"{fn}: n_groups={n_groups!r} must be an integer >= 2")
    if n_groups > n:
        raise ValueError(f"{fn}: cannot split {n} ops into n_groups={n_groups} non-empty groups")


def partition_scores(similarity: np.ndarray, groups: Sequence[Sequence[int]]) -> tuple[float, float, int]:
    """(within, between, n_between_pairs) of ``groups`` on ``similarity`` (pairs i < j)."""
    s = _check_sim(similarity, "partition_scores")
    n = s.shape[0]
    labels = np.full(n, -1)
    for g, members in enumerate(groups):
        labels[list(members)] = g
    if (labels < 0).any():
        raise ValueError(f"partition_scores: groups {groups} do not cover all {n} ops")
    iu = np.triu_indices(n, 1)
    same = labels[iu[0]] == labels[iu[1]]
    vals = s[iu]
    return float(vals[same].sum()), float(vals[~same].sum()), int((~same).sum())


def _is_balanced(labels: np.ndarray, n_groups: int) -> np.ndarray:
    counts = np.stack([(labels == g).sum(axis=1) for g in range(n_groups)], axis=1)
    return counts.max(axis=1) - counts.min(axis=1) <= 1


def mincut_partition(similarity: np.ndarray, n_groups: int = 2, *, balanced: bool = False) -> PartitionResult:
    """Exact: the partition into exactly ``n_groups`` non-empty groups with the largest within-group
    similarity (equivalently the smallest cut), over all S(n, n_groups) set partitions (or only the
    balanced ones: group sizes differing by at most one). Ties: the first in restricted-growth order."""
    s = _check_sim(similarity, "mincut_partition")
    n = s.shape[0]
    _check_groups(n, n_groups, "mincut_partition")
    count = stirling2(n, n_groups)
    if count > MAX_ENUMERATED_PARTITIONS:
        raise ValueError(f"mincut_partition: {n} ops into {n_groups} groups has {count} partitions "
                         f"(> {MAX_ENUMERATED_PARTITIONS}); use partition='spectral' or 'gmm'")
    labels = np.array(list(set_partitions(n, n_groups)), dtype=np.int64)  # (P, n)
    if balanced:
        labels = labels[_is_balanced(labels, n_groups)]
    iu0, iu1 = np.triu_indices(n, 1)
    same = labels[:, iu0] == labels[:, iu1]  # (P, pairs)
    vals = s[iu0, iu1]
    within = (same * vals[None, :]).sum(axis=1)
    best = int(np.argmax(within))
    groups = labels_to_groups(labels[best])
    w, b, nb = partition_scores(s, groups)
    return PartitionResult(groups, w, b, nb, "mincut")


def _repair(labels: np.ndarray, s: np.ndarray, n_groups: int) -> tuple[np.ndarray, bool]:
    """Clusterers may leave a cluster empty: move, from the largest group, the member least similar
    to the rest of its group into a new group, until ``n_groups`` groups are non-empty."""
    labels = np.asarray(labels).copy()
    repaired = False
    while len(np.unique(labels)) < n_groups:
        repaired = True
        uniq, counts = np.unique(labels, return_counts=True)
        big = uniq[np.argmax(counts)]
        members = np.flatnonzero(labels == big)
        affinity = [s[i, members].sum() - s[i, i] for i in members]
        free = next(g for g in range(n_groups + len(uniq)) if g not in set(uniq.tolist()))
        labels[members[int(np.argmin(affinity))]] = free
    return labels, repaired


def spectral_partition(similarity: np.ndarray, n_groups: int = 2, *, seed: int = 0) -> PartitionResult:
    """scikit-learn SpectralClustering on the precomputed affinity S - min(0, min S) (non-negative;
    the released code adds 1 to cosine similarities), ``assign_labels='discretize'`` as the code."""
    from sklearn.cluster import SpectralClustering

    s = _check_sim(similarity, "spectral_partition")
    n = s.shape[0]
    _check_groups(n, n_groups, "spectral_partition")
    aff = s - min(0.0, float(s.min()))
    aff = 0.5 * (aff + aff.T)
    if n == n_groups:
        labels = np.arange(n)
    else:
        model = SpectralClustering(n_clusters=n_groups, affinity="precomputed", assign_labels="discretize",
                                   random_state=seed)
        labels = model.fit_predict(aff)
    labels, repaired = _repair(labels, s, n_groups)
    groups = labels_to_groups(labels)
    w, b, nb = partition_scores(s, groups)
    return PartitionResult(groups, w, b, nb, "spectral", repaired)


def gmm_partition(similarity: np.ndarray, features: np.ndarray, n_groups: int = 2, *, seed: int = 0) -> PartitionResult:
    """scikit-learn GaussianMixture (diagonal covariances) on ``features`` (n, F): the op vectors when
    F <= 256 (the released code fits the LID vectors), otherwise the rows of S (gradients are too long
    for a mixture model). Scored on ``similarity``."""
    from sklearn.mixture import GaussianMixture

    s = _check_sim(similarity, "gmm_partition")
    n = s.shape[0]
    _check_groups(n, n_groups, "gmm_partition")
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != n:
        raise ValueError(f"gmm_partition: features must be (n_ops={n}, F), got shape {f.shape}")
    if f.shape[1] > 256:
        f = s
    if n == n_groups:
        labels = np.arange(n)
    else:
        gm = GaussianMixture(n_components=n_groups, covariance_type="diag", random_state=seed, reg_covar=1e-6)
        labels = gm.fit(f).predict(f)
    labels, repaired = _repair(labels, s, n_groups)
    groups = labels_to_groups(labels)
    w, b, nb = partition_scores(s, groups)
    return PartitionResult(groups, w, b, nb, "gmm", repaired)


def random_partition(n: int, n_groups: int, generator, *, balanced: bool = False) -> list[list[int]]:
    """A uniformly random set partition of n ops into ``n_groups`` non-empty groups (optionally
    balanced), drawn with the torch ``generator``."""
    import torch

    _check_groups(n, n_groups, "random_partition")
    count = stirling2(n, n_groups)
    if count > MAX_ENUMERATED_PARTITIONS:
        raise ValueError(f"random_partition: {count} partitions of {n} ops are too many to enumerate")
    labels = np.array(list(set_partitions(n, n_groups)), dtype=np.int64)
    if balanced:
        labels = labels[_is_balanced(labels, n_groups)]
    j = int(torch.randint(len(labels), (1,), generator=generator))
    return labels_to_groups(labels[j])


__all__ = ["PartitionResult", "stirling2", "set_partitions", "labels_to_groups", "partition_scores",
           "mincut_partition", "spectral_partition", "gmm_partition", "random_partition"]
