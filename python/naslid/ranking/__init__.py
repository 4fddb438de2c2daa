"""Ranking quality of sub-supernets: Kendall τ, Spearman ρ and friends against a benchmark.

Modules: ``statistics`` (the rank statistics), ``cell_sample`` (which cells are ranked) and
``correlation_report`` (``ranking_report``); the names below are importable from ``naslid.ranking``.

A *predictor* scores architectures, higher = better. ``ranking_report`` takes the user's
``predict`` (one or several named scores per arch, e.g. ``{"acc": 71.2, "neg_loss": -0.83}``)
and adds free *yardsticks* computed on the same cells: ``params`` (``space.count_params``) and
``flops`` (``space.count_macs``, multiply-adds), the literature's "#params" / "FLOPs" baselines. A
supernet that cannot beat them on τ does not rank better than counting parameters.

Subsets (both computed for every ``*_acc`` column):

``top``     the benchmark's best ``floor(fraction * len)`` rows (NB201: 1 % of 15,625 = 156),
            ranked by *each* column separately (``top_by="each"``, default: τ for column c is over
            c's own top 1 %) or by the first ``*_acc`` column for all columns (``top_by="first"``,
            NAS-LID's practice with its single column). Isomorphic duplicates are kept, as in
            NB201's top-1 % list. Ties at the cut: file order.
``sample``  ``sample_size`` (default 500) cells, one per isomorphism class (``space.canonical_key``;
            a class is represented by its first row in file order), chosen by ``sample``:
            ``"stratified"`` (default): the classes are sorted by the first ``*_acc`` column (NaN
            classes dropped) and cut into ``sample_size`` equal-count quantile bins, one class drawn
            per bin (seeded), so the sample spans the whole ground-truth range; ``"uniform"``:
            classes in the order a seeded random permutation of the rows first meets them.
            Asking for more cells than there are classes is a ValueError.

Metrics per subset, column and predictor (``ranking_metrics``): ``n``, ``kendall_tau`` (tau-b:
ties handled), ``kendall_tau_ci95`` (percentile bootstrap over cells, 1000 seeded resamples),
``kendall_p``, ``spearman_rho``, ``spearman_p``, ``precision_at_10`` (share of the predictor's top
10 % = ceil(0.1 n) cells that are in the truth's top 10 % of the same cells; ties at a cut are
broken at random, in expectation), ``tau_top_half`` (τ over the cells whose truth is >= the subset's
median) and ``ties`` (cells whose score equals another cell's score: a resolution check).

Rows whose benchmark value (or predicted score) is NaN are dropped per column and predictor.
Undefined statistics (fewer than 2 cells, a constant input) are ``None`` (JSON null). Values are
Python floats (JSON-ready).
"""
from .cell_sample import (  # noqa: F401
                          check_sample_request,
                          sample_classes,
                          sample_stratified_archs,
                          sample_unique_archs,
                          top_archs,
)
from .correlation_report import YARDSTICKS, Predict, Scores, best_arch_benchmark, ranking_report  # noqa: F401
from .statistics import (  # noqa: F401
                          BOOTSTRAP_RESAMPLES,
                          bootstrap_indices,
                          bootstrap_kendall_ci,
                          bootstrap_kendall_taus,
                          count_ties,
                          paired_delta_tau,
                          precision_at,
                          rank_correlations,
                          ranking_metrics,
)
