"""Wall time of ``ranking_metrics`` (Kendall / Spearman with bootstrap intervals) on 500 cells,
the size of a ranking sample (pytest-benchmark; replaces a wall-clock assertion in the tests).

    pytest benchmarks/test_bench_ranking.py --benchmark-enable -p no:cacheprovider -q

The bootstrap's methods are compared in the same run: ``matrix`` (vectorised) against ``scipy``
(one ``kendalltau`` per resample), so the result reads as a ratio on the machine it ran on.
"""
from __future__ import annotations

import numpy as np
import pytest

from naslid.ranking import bootstrap_kendall_taus, ranking_metrics


@pytest.fixture(scope="module")
def cells():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    return x, x + rng.normal(size=500)


def test_ranking_metrics_500_cells(benchmark, cells):
    x, y = cells
    out = benchmark(ranking_metrics, x, y)
    assert -1.0 <= out["kendall_tau"] <= 1.0


@pytest.mark.parametrize("method", ["matrix", "scipy"])
def test_bootstrap_kendall_500_cells(benchmark, cells, method):
    x, y = cells
    taus = benchmark(bootstrap_kendall_taus, x, y, 200, seed=0, method=method)
    assert len(taus) == 200
