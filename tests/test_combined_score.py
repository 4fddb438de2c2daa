"""The combined search score (naslid.scores.spec, naslid.scores.combination, naslid.blocks.combined_eval):
signal parsing, quantiles against a reference sample by hand, AZ-NAS's aggregation against the
reference, unratable cells, the evaluator on a stub supernet, and the config / prepare errors that
come before any work. A few seconds."""
from __future__ import annotations

import math

import pytest
import torch

from naslid.blocks.combined_eval import CombinedEvaluator
from naslid.scores.combination import Combination, count_classes, draw_reference, quantile
from naslid.config import SearchConfig
from naslid.scores.spec import is_pure_supernet, parse_signals
from naslid.spaces import get_space

import numpy as np


def test_parse_signals():
    assert parse_signals("loss+naswot+synflow") == ("loss", "naswot", "synflow")
    assert parse_signals(["acc", "lid"]) == ("acc", "lid")
    assert is_pure_supernet(parse_signals("loss")) and not is_pure_supernet(("loss", "naswot"))
    assert not is_pure_supernet(("naswot",))
    with pytest.raises(ValueError, match=r"config.search.score: empty combination"):
        parse_signals("")
    with pytest.raises(ValueError, match=r"config.search.score: empty combination"):
        parse_signals([])
    with pytest.raises(ValueError, match=r"unknown signal\(s\) \['snip'\]"):
        parse_signals("loss+snip")
    with pytest.raises(ValueError, match="twice"):
        parse_signals("loss+naswot+loss")


def test_quantile_by_hand():
    ref = np.array([1.0, 2.0, 3.0])
    assert quantile(ref, 2.0) == pytest.approx(2 / 4)          # (1 below + ½ equal + ½) / 4
    assert quantile(ref, 10.0) == pytest.approx(3.5 / 4)
    assert quantile(ref, 0.0) == pytest.approx(0.5 / 4)
    for bad in (float("-inf"), float("nan"), None):           # unratable: the lowest quantile
        assert quantile(ref, bad) == pytest.approx(0.5 / 4)


def test_combination_fitness_by_hand():
    comb = Combination(("loss", "naswot"), {"loss": [-2.0, -1.0, -3.0], "naswot": [5.0, float("-inf"), 7.0]})
    # loss -1.5: 2 reference values below -> 2.5/4; naswot 6: -inf and 5 below -> 2.5/4
    assert comb.quantiles({"loss": -1.5, "naswot": 6.0}) == pytest.approx({"loss": 2.5 / 4, "naswot": 2.5 / 4})
    assert comb.fitness({"loss": -1.5, "naswot": 6.0}) == pytest.approx(2.5 / 4)
    # an unratable cell (NASWOT -inf) gets the lowest naswot quantile; a NaN loss too: never NaN
    f = comb.fitness({"loss": float("nan"), "naswot": float("-inf")})
    assert f == pytest.approx(0.5 / 4) and not math.isnan(f)
    with pytest.raises(ValueError, match="no reference values"):
        Combination(("loss", "lid"), {"loss": [1.0]})


def test_aznas_against_the_reference_by_hand():
    terms = [{"expressivity": e, "progressivity": p, "trainability": t, "complexity": c}
             for e, p, t, c in [(1, 1, 1, 1), (2, 3, 1, 2), (3, 2, 2, 3)]]
    comb = Combination(("aznas",), {"aznas": terms})
    cell = {"expressivity": 2.5, "progressivity": 0.0, "trainability": 1.0, "complexity": 9.0}
    want = math.log(2.5 / 4) + math.log(0.5 / 4) + math.log(1.5 / 4) + math.log(3.5 / 4)
    assert comb.value("aznas", cell) == pytest.approx(want)
    ref_vals = sorted(comb.aznas_value(t) for t in terms)
    below = sum(v < want for v in ref_vals)
    assert comb.quantiles({"aznas": cell})["aznas"] == pytest.approx((below + 0.5) / 4)


def test_reference_sample_is_deisomorphic_and_seeded():
    space = get_space("nb201", C=4, N=1, input_size=8)
    a = draw_reference(space, 50, torch.Generator().manual_seed(3))
    b = draw_reference(space, 50, torch.Generator().manual_seed(3))
    assert [space.arch_to_string(x) for x in a] == [space.arch_to_string(x) for x in b]
    assert len({space.canonical_key(x) for x in a}) == 50
    assert count_classes(space) == 6466
    with pytest.raises(ValueError, match="too large"):
        draw_reference(space, 6467, torch.Generator().manual_seed(0), max_draws=20000)


class _StubBase:
    """A SubnetEvaluator stand-in: the loss of a cell is given by a table."""

    def __init__(self, space, losses):
        self.space, self.losses, self.masks = space, losses, [space.full_mask()]

    def metrics(self, arch):
        return {"acc": 50.0, "loss": self.losses[self.space.arch_to_string(arch)]}

    def leaf_index(self, arch):
        return 0


def test_combined_evaluator_by_hand():
    """Signals loss and params over a 3-cell reference; fitness = mean of the two quantiles."""
    space = get_space("nb201", C=4, N=1, input_size=8)
    cells = ["|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
             "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|",
             "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
             "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"]
    losses = dict(zip(cells, [2.0, 1.0, 1.5, 0.5]))
    ref = [space.arch_from_string(c) for c in cells[:3]]
    ev = CombinedEvaluator(_StubBase(space, losses), ("loss", "params"), ref, x=None, y=None, seed=0)
    top = space.arch_from_string(cells[3])
    # the big cell: lowest loss and most parameters of all: 3.5/4 for both
    assert ev(top) == pytest.approx(3.5 / 4)
    s = ev.signals(top)
    assert s["values"] == {"loss": -0.5, "params": float(space.count_params(top))}
    assert s["quantiles"] == pytest.approx({"loss": 3.5 / 4, "params": 3.5 / 4})
    # a reference cell: loss 1.0 is the best of the reference (2 below, itself equal), params middle
    mid = ref[1]
    assert ev(mid) == pytest.approx(((2 + 0.5 + 0.5) / 4 + (1 + 0.5 + 0.5) / 4) / 2)


def test_config_refuses_bad_combinations_before_any_work():
    cfg = SearchConfig.preset_config("cpu")
    cfg.validate()
    assert len(parse_signals(cfg.search.score)) > 1                     # cpu: the combined search
    assert SearchConfig.preset_config("paper").search.score == "loss"   # paper: the paper's method
    assert SearchConfig.preset_config("quick").search.score == "loss"
    for bad, msg in [("", "empty combination"), ("loss+foo", "unknown signal"),
                     ("loss+naswot+naswot", "a signal appears twice")]:
        c = SearchConfig.preset_config("quick")
        c.search.score = bad
        with pytest.raises(ValueError, match=f"config.search.score: {msg}"):
            c.validate()
    c = SearchConfig.preset_config("quick")
    c.space.name, c.search.score = "ofa", "loss+synflow+naswot"
    with pytest.raises(ValueError, match="config.search.score: score 'naswot' cannot rate space 'ofa'"):
        c.validate()
    c.search.score = "loss+synflow"
    c.validate()                                                        # synflow rates every space
    c.search.reference_size = 1
    with pytest.raises(ValueError, match="config.search.reference_size"):
        c.validate()


def test_reference_size_is_part_of_a_combined_run_only():
    a, b = SearchConfig.preset_config("quick"), SearchConfig.preset_config("quick")
    b.search.reference_size = 99
    assert a.config_hash() == b.config_hash()           # pure supernet: reference_size unused
    a.search.score = b.search.score = "loss+synflow"
    assert a.config_hash() != b.config_hash()


def test_prepare_refuses_a_reference_larger_than_the_space(tmp_path):
    from naslid.run.prepare import prepare

    cfg = SearchConfig.preset_config("quick")
    cfg.out = str(tmp_path / "run")
    cfg.search.score, cfg.search.reference_size = "loss+synflow", 7000
    with pytest.raises(ValueError, match="config.search.reference_size: 7000 .* only 6466 distinct cells"):
        prepare(cfg)
    assert not (tmp_path / "run").exists()
