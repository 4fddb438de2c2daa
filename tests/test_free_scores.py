"""Training-free scores beyond synflow / NASWOT: AZ-NAS's terms and aggregation, ZiCo, jacov and the
LID profile, each against hand-checked values or float64 naive loops; the registry
(naslid.scores.by_name) on NB201 cells, unratable cells and bad input. A few seconds on one thread."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from naslid.scores.by_name import check_free_scores, score_cells
from naslid.scores.aznas import (aznas_terms, ascending_ranks, feature_entropy, jacobian_sigma,
                                  rank_aggregate)
from naslid.scores.zico_jacov import jacov, jacov_from_jacobian, zico, zico_from_grads
from naslid.scores.lid_profile import lid_profile, profile_score
from naslid.spaces import get_space

torch.set_num_threads(1)
ZERO_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _entropy(p):
    return -sum(q * math.log(q + 1e-8) for q in p)


# ----- AZ-NAS ----------------------------------------------------------------------------------
def test_feature_entropy_by_hand():
    """Channels [1,-1,1,-1] and [2,2,-2,-2] over 4 samples: covariance diag(1, 4), p = (0.2, 0.8)."""
    f = torch.tensor([[1.0, 2.0], [-1.0, 2.0], [1.0, -2.0], [-1.0, -2.0]]).reshape(4, 2, 1, 1)
    assert feature_entropy(f) == pytest.approx(_entropy([0.2, 0.8]), rel=1e-12)
    # the same samples laid out as 1 image of 2x2 pixels: B*H*W = 4 samples again
    g = f.reshape(4, 2).T.reshape(1, 2, 2, 2)
    assert feature_entropy(g) == pytest.approx(_entropy([0.2, 0.8]), rel=1e-12)
    assert feature_entropy(torch.full((3, 2, 2, 2), 5.0)) == float("-inf")


def _naive_sigma(g_in: np.ndarray, g_out: np.ndarray, stride: int) -> float:
    """float64 loop: M[i, j] = mean over output positions of g_in'[p, i] g_out[p, j], with
    g_in' the space-to-depth of g_in (channel c*s*s + dy*s + dx)."""
    b, co, ho, wo = g_out.shape
    ci = g_in.shape[1]
    m = np.zeros((ci * stride * stride, co))
    for n in range(b):
        for y in range(ho):
            for x in range(wo):
                for c in range(ci):
                    for dy in range(stride):
                        for dx in range(stride):
                            v = g_in[n, c, y * stride + dy, x * stride + dx]
                            m[c * stride * stride + dy * stride + dx] += v * g_out[n, :, y, x]
    m /= b * ho * wo
    return float(np.linalg.svd(m, compute_uv=False).max())


@pytest.mark.parametrize("stride", [1, 2])
def test_jacobian_sigma_against_a_float64_loop(stride):
    gen = torch.Generator().manual_seed(1)
    f_in = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    conv = nn.Conv2d(3, 5, 1, stride=stride, bias=False).double()
    f_out = conv(f_in)
    g_out = torch.randint(0, 2, f_out.shape, generator=gen).double() * 2 - 1
    (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True)
    want = _naive_sigma(g_in.numpy(), g_out.numpy(), stride)
    assert jacobian_sigma(f_in, f_out, g_out) == pytest.approx(want, rel=1e-10)


def test_jacobian_sigma_identity_and_no_path_are_unratable():
    f_in = torch.randn(2, 3, 2, 2, requires_grad=True)
    g = torch.ones(2, 3, 2, 2)
    assert jacobian_sigma(f_in, f_in * 1.0, g) is None                 # gradient passes unchanged
    assert jacobian_sigma(f_in, f_in * 0.0, g) is None                 # no gradient reaches f_in


class _Tiny(nn.Module):
    """stem + two 1x1-conv 'cells' + head: the layout ``feature_layers`` reads."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.cells = nn.ModuleList([nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)),
                                    nn.Sequential(nn.ReLU(), nn.Conv2d(4, 6, 1, stride=2))])
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        h = self.stem(x)
        for c in self.cells:
            h = c(h)
        return self.head(h.mean((2, 3)))


def test_aznas_terms_are_their_definitions():
    torch.manual_seed(0)
    net = _Tiny().double()
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = aznas_terms(net, x, seed=3)
    h0 = net.stem(x)
    h1 = net.cells[0](h0)
    h2 = net.cells[1](h1)
    ent = [feature_entropy(h) for h in (h0, h1, h2)]
    assert t["expressivity"] == pytest.approx(sum(ent), rel=1e-10)
    assert t["progressivity"] == pytest.approx(min(ent[1] - ent[0], ent[2] - ent[1]), rel=1e-10, abs=1e-12)
    assert t["trainability"] <= 0.0 and math.isfinite(t["trainability"])  # −σ − 1/σ + 2 <= 0


def test_rank_aggregate_by_hand():
    got = rank_aggregate({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]})
    want = [math.log(1 / 3) + math.log(1.0), 2 * math.log(2 / 3), math.log(1.0) + math.log(1 / 3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(ascending_ranks([1.0, float("nan"), float("-inf"), 1.0]), [3.5, 1.5, 1.5, 3.5])
    with pytest.raises(ValueError, match="same number"):
        rank_aggregate({"a": [1.0], "b": [1.0, 2.0]})


# ----- ZiCo ------------------------------------------------------------------------------------
def test_zico_from_grads_by_hand():
    """Layer 1: parts [1, 2, 0] and [3, 2, 0]: σ = (1, 0, 0), μ = (2, 2, 0) -> t = 2/1; layer 2:
    parts [-1, 4] and [1, 2]: σ = (1, 1), μ = (1, 3) -> t = 4; layer 3 all zero: skipped."""
    g = [{"a": torch.tensor([1.0, 2, 0]), "b": torch.tensor([-1.0, 4]), "c": torch.zeros(2)},
         {"a": torch.tensor([3.0, 2, 0]), "b": torch.tensor([1.0, 2]), "c": torch.zeros(2)}]
    assert zico_from_grads(g) == pytest.approx(math.log(2) + math.log(4), rel=1e-12)


def test_zico_of_a_linear_classifier_against_float64_formula():
    """Logistic regression: ∂CE/∂W of part s = (softmax(X W^T + b) − onehot)^T X / m."""
    gen = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.randn(8, 3, 2, 2, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (8,), generator=gen)
    W, b = net[1].weight.detach().numpy(), net[1].bias.detach().numpy()
    X, Y = x.reshape(8, -1).numpy(), y.numpy()
    grads = []
    for s in range(2):
        gs = np.zeros_like(W)
        for i in range(4 * s, 4 * s + 4):
            z = X[i] @ W.T + b
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            p[Y[i]] -= 1.0
            gs += np.outer(p, X[i]) / 4
        grads.append(gs.ravel())
    g = np.stack(grads)
    want = math.log(np.sum(np.abs(g).mean(0) / g.std(0)))
    assert zico(net, x, y) == pytest.approx(want, rel=1e-9)


# ----- jacov -----------------------------------------------------------------------------------
def test_jacov_by_hand():
    k = 1e-5
    ident = torch.tensor([[1.0, 0, -1, 0], [0, 1, 0, -1]])                  # uncorrelated rows: R = I
    assert jacov_from_jacobian(ident) == pytest.approx(-2 * (math.log(1 + k) + 1 / (1 + k)), rel=1e-9)
    assert jacov_from_jacobian(torch.tensor([[1.0, 2, 3], [4.0, 4, 4]])) == float("-inf")  # constant row


def test_jacov_of_a_linear_net_by_hand():
    """Every image has the same Jacobian (the column sums of W): R = all ones, eigenvalues (N, 0, ...)."""
    n, k = 4, 1e-5
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.randn(n, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    want = -(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k)
    assert jacov(net, x) == pytest.approx(want, rel=1e-6)


# ----- LID -------------------------------------------------------------------------------------
def test_profile_scores_by_hand():
    p = torch.tensor([1.0, 3.0, 2.0])
    assert [profile_score(p, w) for w in ("last", "mean", "peak_minus_last", "last_minus_first")] == [2.0, 2.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="which"):
        profile_score(p, "median")


def test_lid_profile_is_the_lid_of_each_layer():
    import naslid_ext
    from naslid.spaces.taps import FeatureTap

    space = get_space("nb201", C=4, N=1, input_size=8)
    torch.manual_seed(0)
    net = space.build_subnet(space.arch_from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|"
                                                    "+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"))
    x = torch.randn(30, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    import copy

    ref = copy.deepcopy(net).train()
    with torch.no_grad(), FeatureTap(ref) as tap:
        ref(x)
    want = [float(naslid_ext.lid(f, k=5)) for f in tap.features()]
    np.testing.assert_allclose(lid_profile(net, x, 5).numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError, match="k \\+ 2"):
        lid_profile(net, x[:6], 5)


# ----- the registry ----------------------------------------------------------------------------
def test_zero_cell_is_unratable_never_nan():
    space = get_space("nb201", C=4, N=1, input_size=8)
    x = torch.randn(24, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(24) % 10
    names = ["params", "flops", "synflow", "naswot", "aznas", "zico", "jacov", "lid"]
    got = score_cells(names, space, [ZERO_CELL, ZERO_CELL], x=x, y=y, seed=0, lid_k=5)
    assert all(len(v) == 1 for v in got.values())                          # duplicates scored once
    v = {n: got[n][ZERO_CELL] for n in names}
    assert v["naswot"] == float("-inf") and v["jacov"] == float("-inf") and v["synflow"] == 0.0
    assert v["lid"] == 0.0
    assert v["aznas"]["trainability"] == float("-inf")
    flat = [*(v[n] for n in names if n != "aznas"), *v["aznas"].values()]
    assert not any(math.isnan(f) for f in flat)


def test_bad_input_names_the_score_and_space():
    with pytest.raises(ValueError, match="'naswot' cannot rate space 'ofa'"):
        check_free_scores(["synflow", "naswot"], "ofa")
    with pytest.raises(ValueError, match="'lid' cannot rate space 'proxyless'"):
        check_free_scores(["lid"], "proxyless")
    with pytest.raises(ValueError, match="unknown training-free score 'snip'"):
        check_free_scores(["snip"], "nb201")
    space = get_space("nb201", C=4, N=1, input_size=8)
    with pytest.raises(ValueError, match="zico needs y"):
        score_cells(["zico"], space, [ZERO_CELL], x=torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match="need x"):
        score_cells(["naswot"], space, [ZERO_CELL])
    with pytest.raises(ValueError, match="names is empty"):
        score_cells([], space, [ZERO_CELL])
