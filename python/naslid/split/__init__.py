"""The split step of NAS-LID (and the GM-NAS, random and none baselines) on one supernet.

``split_step(space, supernet, mask, batches, cfg, generator=...)`` -> ``SplitRecord``; options in
``SplitConfig``. See ``docs/split.md``.
"""
from .config import SplitConfig
from .edge_rule import choose_decision, rule_value
from .partition import (PartitionResult, gmm_partition, mincut_partition, partition_scores,
                        random_partition, set_partitions, spectral_partition, stirling2)
from .record import DecisionRecord, SplitRecord
from .similarity import similarity_matrix
from .step import candidate_decisions, child_masks, split_step
from .vectors import grad_vector, lid_vector, probe_state

__all__ = ["SplitConfig", "SplitRecord", "DecisionRecord", "split_step", "candidate_decisions",
           "child_masks", "similarity_matrix", "mincut_partition", "spectral_partition", "gmm_partition",
           "random_partition", "partition_scores", "set_partitions", "stirling2", "PartitionResult",
           "choose_decision", "rule_value", "lid_vector", "grad_vector", "probe_state"]
