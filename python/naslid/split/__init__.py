"""The split step of NAS-LID (and the GM-NAS, random and none baselines) on one supernet.

``split_step(space, supernet, mask, batches, cfg, generator=...)`` -> ``SplitRecord``; options in
``SplitConfig``. See ``docs/split.md``.

``SplitConfig`` is imported eagerly (it is light: ``naslid.config`` holds it); the rest, which
needs torch, on first use.
"""
from .config import SplitConfig

_LAZY = {
    "choose_decision": "edge_rule", "rule_value": "edge_rule",
    "PartitionResult": "partition", "gmm_partition": "partition", "mincut_partition": "partition",
    "partition_scores": "partition", "random_partition": "partition", "set_partitions": "partition",
    "spectral_partition": "partition", "stirling2": "partition",
    "DecisionRecord": "record", "SplitRecord": "record",
    "similarity_matrix": "similarity",
    "candidate_decisions": "step", "child_masks": "step", "split_step": "step",
    "grad_vector": "vectors", "lid_vector": "vectors", "probe_state": "vectors",
}

__all__ = ["SplitConfig", "SplitRecord", "DecisionRecord", "split_step", "candidate_decisions",
           "child_masks", "similarity_matrix", "mincut_partition", "spectral_partition", "gmm_partition",
           "random_partition", "partition_scores", "set_partitions", "stirling2", "PartitionResult",
           "choose_decision", "rule_value", "lid_vector", "grad_vector", "probe_state"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
