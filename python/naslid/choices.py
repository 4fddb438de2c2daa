"""The named choices of the search's options, declared once (no imports: cheap for config and CLI).

Each tuple is the set of values of one option; the module that implements the option imports its
tuple from here, and ``naslid.config`` validates against the same tuple.
"""
from __future__ import annotations

#: ``search.score``: fitness of a cell = accuracy % ("acc") or minus the mean cross-entropy ("loss").
SCORES = ("acc", "loss")

#: ``search.bn``: BatchNorm statistics when a cell is evaluated with inherited weights.
EVAL_BN_MODES = ("recalibrate", "batch")

#: ``train.sampling``: one uniform path per batch, or FairNAS's strict fairness.
SAMPLINGS = ("uniform", "fair")

#: ``benchmark.sample``: how the ranking's cells are drawn (one per isomorphism class either way).
SAMPLE_METHODS = ("stratified", "uniform")
