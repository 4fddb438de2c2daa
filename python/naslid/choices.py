"""The named choices of the search's options, declared once (no imports: cheap for config and CLI).

Each tuple is the set of values of one option; the module that implements the option imports its
tuple from here, and the config classes (``naslid.config``, ``naslid.split.config``) validate
against the same tuple.
"""
from __future__ import annotations

#: ``preset``: the bundled settings in ``naslid/configs/<name>.yaml``.
PRESETS = ("quick", "cpu", "paper")

#: ``space.name``: the search spaces of ``naslid.spaces``.
SPACES = ("nb201", "proxyless", "ofa")

#: ``data.dataset``: the datasets of ``naslid.data``.
DATASETS = ("digits", "cifar10", "cifar100", "npz", "imagefolder")

#: ``split.criterion``: NAS-LID, GM-NAS gradient matching, a seeded random split, no split.
CRITERIA = ("lid", "grad", "random", "none")

#: ``split.similarity``: how two op vectors are compared.
SIMILARITIES = ("cosine", "euclidean", "correlation")

#: ``split.partition``: how the similarity matrix is cut into groups.
PARTITIONS = ("mincut", "spectral", "gmm")

#: ``split.edge_rule``: which decision is split.
EDGE_RULES = ("paper", "code", "gm")

#: ``split.lid_estimator`` / ``split.lid_backend``: the LID estimator and its implementation.
LID_ESTIMATORS = ("naslid", "levina")
LID_BACKENDS = ("auto", "ext", "faiss", "torch")

#: ``split.bn_mode``: BatchNorm during the split step's probing forwards (batch statistics or the
#: running ones). Not ``search.bn`` (``EVAL_BN_MODES``).
SPLIT_BN_MODES = ("train", "eval")

#: ``split.average``: over the R repeats, average the op vectors or the similarity matrices.
AVERAGES = ("vector", "similarity")

#: ``train.leaf_init``: leaves start from their parent's weights or re-initialised.
LEAF_INITS = ("inherit", "reinit")

#: ``train.sampling``: one uniform path per batch, or FairNAS's strict fairness.
SAMPLINGS = ("uniform", "fair")

#: ``search.method``: the final search over the leaves.
SEARCH_METHODS = ("evolution", "random")

#: ``search.score``: fitness of a cell = accuracy % ("acc") or minus the mean cross-entropy ("loss").
SCORES = ("acc", "loss")

#: ``search.bn``: BatchNorm statistics when a cell is evaluated with inherited weights.
#: Not ``split.bn_mode`` (``SPLIT_BN_MODES``).
EVAL_BN_MODES = ("recalibrate", "batch")

#: ``benchmark.sample``: how the ranking's cells are drawn (one per isomorphism class either way).
SAMPLE_METHODS = ("stratified", "uniform")

#: training-free scores of a fresh stand-alone network (``naslid.scores.by_name``), higher = better.
FREE_SCORES = ("params", "flops", "synflow", "naswot", "aznas", "zico", "jacov", "lid")

#: the spaces a training-free score can rate (a score not listed rates every space): NASWOT needs
#: hookable rectifiers (not OFA's h-swish); AZ-NAS and LID read NB201's stage feature maps.
FREE_SCORE_SPACES = {"naswot": ("nb201", "proxyless"), "aznas": ("nb201",), "lid": ("nb201",)}

#: nearest neighbours of the training-free LID score (``search.free_batch`` must exceed it by 2)
FREE_LID_K = 20
#: the defaults of the free scores' network and batch (``search.free_cells``, ``search.free_batch``);
#: a run at these keeps the identity it had before the fields existed
FREE_NET_DEFAULTS = {"free_cells": None, "free_batch": 128}

#: ``search.score`` signals: the supernet's ("loss": minus the held-out loss, "acc") and every
#: training-free score; a combination joins them with "+" (e.g. "loss+naswot+synflow").
SIGNALS = SCORES + FREE_SCORES
