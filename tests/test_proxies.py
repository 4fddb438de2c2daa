"""Zero-cost proxies (naslid.scores.proxies): synflow and NASWOT against hand-checked and float64 oracles,
on NB201 subnets, and the bad-input errors. A few seconds on one thread."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from naslid.scores import proxies as P
from naslid.spaces import get_space
from naslid.spaces.cell_blocks import NB201_EDGE_KEYS



@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """One intra-op thread for this module's tiny networks (tests/conftest.py's ``one_thread``),
    restored afterwards so other modules keep the ops' threaded paths."""
    yield


def uniform_cell(op: str) -> str:
    """NB201 arch string with ``op`` on all six edges."""
    return f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"


@pytest.fixture(scope="module")
def nb201():
    return get_space("nb201", C=4, N=1, input_size=8)


@pytest.fixture(scope="module")
def images():
    """(12, 3, 8, 8) float32 images."""
    return torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(3))


# ------------------------------------------------------------------------------------------------
# synflow: oracles
# ------------------------------------------------------------------------------------------------
def test_synflow_linear_chain_by_hand():
    """Bias-free linear chain with integer weights, computed by hand.

    |W1| 1 = h = (3, 2, 3, 4); |W2| h = (1*3 + 1*3 + 2*4, 1*2 + 1*3 + 1*4) = (14, 9); R = 23. A
    positive linear chain is homogeneous of degree 1 in each layer, so each layer sums to R: 46."""
    w1 = [[1., -2., 0.], [0., 1., 1.], [-1., 0., 2.], [3., 0., -1.]]
    w2 = [[1., 0., -1., 2.], [0., -1., 1., 1.]]
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1))
        net[1].weight.copy_(torch.tensor(w2))
    r = P.synflow(net, (1, 3))
    assert r.R == 23.0
    assert r.per_layer == {"0": 23.0, "1": 23.0}
    assert r.score == 46.0
    assert r.log_score == pytest.approx(math.log(46.0), rel=1e-15)
    # the same by explicit float64 gradients: dR/dW2 = 1 h^T, dR/dW1 = (|W2|^T 1) x^T
    a1, a2, x = np.abs(np.array(w1)), np.abs(np.array(w2)), np.ones(3)
    h = a1 @ x
    g2 = np.outer(np.ones(2), h)
    g1 = np.outer(a2.T @ np.ones(2), x)
    assert (a1 * g1).sum() == 23.0 and (a2 * g2).sum() == 23.0
    # the caller's network is untouched (signs and dtype)
    assert net[0].weight.dtype == torch.float32 and float(net[0].weight.detach()[0, 1]) == -2.0


def _np_conv2d(x, w, b=None, pad=0):
    """Naive loops: x (C_in, H, W), w (C_out, C_in, k, k) -> (C_out, H', W'), stride 1."""
    c_out, c_in, k, _ = w.shape
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = x.shape[1] - k + 1, x.shape[2] - k + 1
    out = np.zeros((c_out, ho, wo))
    for o in range(c_out):
        for i in range(ho):
            for j in range(wo):
                s = 0.0
                for c in range(c_in):
                    for u in range(k):
                        for v in range(k):
                            s += w[o, c, u, v] * x[c, i + u, j + v]
                out[o, i, j] = s + (0.0 if b is None else b[o])
    return out


class TinyConvNet(nn.Module):
    """(B, 1, 6, 6) -> conv3x3 pad 1 (2 ch) -> BN -> ReLU -> avgpool 2 -> conv2x2 + bias (3 ch)
    -> linear (12 -> 2)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.act = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(2, 3, 2, bias=True)
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        h = self.pool(self.act(self.bn(self.conv1(x))))
        return self.fc(self.conv2(h).flatten(1))


def test_synflow_tiny_conv_net_against_numpy_loops():
    """Independent float64 numpy forward of the |θ| network (BN eval with mean 0 / var 1 = a scale
    |γ| / sqrt(1 + eps) plus |β|); everything is positive, so R is affine in every single weight
    and ∂R/∂θ_k = R(θ + e_k) − R(θ) exactly (up to rounding). Biases and BN enter R but not the
    sum."""
    torch.manual_seed(5)
    net = TinyConvNet()
    with torch.no_grad():
        net.bn.weight.copy_(torch.tensor([-0.5, 2.0]))
        net.bn.bias.copy_(torch.tensor([0.3, -0.1]))
    p = {k: np.abs(v.detach().double().numpy()) for k, v in net.state_dict().items()
         if not k.startswith("bn.running") and k != "bn.num_batches_tracked"}
    eps = net.bn.eps

    def forward(q):
        x = np.ones((1, 6, 6))
        h = _np_conv2d(x, q["conv1.weight"], pad=1)
        h = h / math.sqrt(1.0 + eps) * q["bn.weight"][:, None, None] + q["bn.bias"][:, None, None]
        h = np.maximum(h, 0.0)
        h = h.reshape(2, 3, 2, 3, 2).mean(axis=(2, 4))  # avg pool 2
        h = _np_conv2d(h, q["conv2.weight"], q["conv2.bias"])
        return float((q["fc.weight"] @ h.reshape(-1) + q["fc.bias"]).sum())

    r0 = forward(p)
    want = {}
    for layer in ("conv1", "conv2", "fc"):
        w = p[f"{layer}.weight"]
        total = 0.0
        for idx in np.ndindex(w.shape):
            q = dict(p)
            q[f"{layer}.weight"] = w.copy()
            q[f"{layer}.weight"][idx] += 1.0
            total += abs(w[idx] * (forward(q) - r0))
        want[layer] = total
    got = P.synflow(net, (1, 1, 6, 6))
    assert got.R == pytest.approx(r0, rel=1e-12)
    assert set(got.per_layer) == {"conv1", "conv2", "fc"}
    for layer, v in want.items():
        assert got.per_layer[layer] == pytest.approx(v, rel=1e-9), layer
    assert got.score == pytest.approx(sum(want.values()), rel=1e-9)
    assert net.training  # the caller's mode is untouched


def test_synflow_zero_output_and_bn_without_running_stats():
    """R == 0 (a bias-free net whose output is x * 0) gives score 0 and log -inf, no NaN; a BN
    without running statistics acts as a fresh one (mean 0, var 1)."""
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.zero_()
    r = P.synflow(net, (1, 3))
    assert (r.score, r.R, r.log_score) == (0.0, 0.0, float("-inf"))
    assert all(v == 0.0 for v in r.per_layer.values())

    with_stats = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 1))
    no_stats = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False),
                             nn.Flatten(), nn.Linear(8, 1))
    no_stats.load_state_dict({k: v for k, v in with_stats.state_dict().items()
                              if "running" not in k and "num_batches" not in k})
    a, b = P.synflow(with_stats, (1, 1, 4, 4)), P.synflow(no_stats, (1, 1, 4, 4))
    assert a.score == pytest.approx(b.score, rel=1e-14) and a.R == pytest.approx(b.R, rel=1e-14)
    work = P.synflow_network(no_stats)
    assert all(t.dtype == torch.float64 and bool((t >= 0).all()) for t in work.parameters())
    assert not work.training


# ------------------------------------------------------------------------------------------------
# NASWOT: oracles
# ------------------------------------------------------------------------------------------------
class TinyReluNet(nn.Module):
    """fc1 -> bn (batch statistics in train mode) -> act -> fc2 -> act (the same ReLU module, called
    twice) -> fc3 -> act6 -> fc4. ``unused`` is a ReLU the forward never calls."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.fc4 = (nn.Linear(3, 5), nn.Linear(5, 4),
                                                  nn.Linear(4, 6), nn.Linear(6, 2))
        self.bn = nn.BatchNorm1d(5)
        with torch.no_grad():
            self.bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0, 1.0, 1.5]))
            self.bn.bias.copy_(torch.tensor([0.2, -0.3, 0.0, 0.4, -0.1]))
        self.act, self.act6, self.unused = nn.ReLU(), nn.ReLU6(), nn.ReLU()

    def forward(self, x):
        h = self.act(self.fc2(self.act(self.bn(self.fc1(x)))))
        return self.fc4(self.act6(self.fc3(h)))


def _exact_logabsdet(K: np.ndarray) -> float:
    """log|det K| of an integer matrix by exact Gaussian elimination over the rationals."""
    a = [[Fraction(int(v)) for v in row] for row in K]
    n, det = len(a), Fraction(1)
    for i in range(n):
        piv = next((r for r in range(i, n) if a[r][i] != 0), None)
        if piv is None:
            return float("-inf")
        if piv != i:
            a[i], a[piv] = a[piv], a[i]
            det = -det
        det *= a[i][i]
        for r in range(i + 1, n):
            f = a[r][i] / a[i][i]
            a[r] = [x - f * y for x, y in zip(a[r], a[i])]
    return math.log(abs(det))


def _tiny_codes(net: TinyReluNet, x: np.ndarray) -> np.ndarray:
    """(N, 5 + 4 + 6) 0/1 codes (ReLU / ReLU6 input > 0), computed directly in numpy float64
    (BN: batch mean and biased variance, as in train mode)."""
    w = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    h1 = x @ w["fc1.weight"].T + w["fc1.bias"]
    h1 = (h1 - h1.mean(0)) / np.sqrt(h1.var(0) + net.bn.eps) * w["bn.weight"] + w["bn.bias"]
    h2 = np.maximum(h1, 0) @ w["fc2.weight"].T + w["fc2.bias"]
    h3 = np.maximum(h2, 0) @ w["fc3.weight"].T + w["fc3.bias"]
    return np.concatenate([h1 > 0, h2 > 0, h3 > 0], axis=1)


def test_naswot_kernel_and_logdet_against_pairwise_loop():
    """Codes from the train-mode forward (BN on batch statistics), the shared ReLU counted at
    both calls, the unused one not at all."""
    torch.manual_seed(11)
    net = TinyReluNet().double()
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    codes = _tiny_codes(net, x.numpy())
    n, units = codes.shape
    K_want = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            K_want[i, j] = units - sum(int(codes[i, k] != codes[j, k]) for k in range(units))
    K = P.naswot_kernel(net, x)
    assert K.dtype == torch.float64 and K.shape == (n, n)
    np.testing.assert_array_equal(K.numpy(), K_want.astype(np.float64))
    want = _exact_logabsdet(K_want)
    assert math.isfinite(want)
    assert P.naswot(net, x) == pytest.approx(want, rel=1e-12)
    # order of the samples does not matter
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    assert P.naswot(net, x[perm]) == pytest.approx(want, rel=1e-12)


def test_naswot_conv_codes_flattened_per_sample():
    """A conv ReLU's (N, C, H, W) input is one code of C*H*W bits per sample; an input of exactly 0
    (sample 0: zero image, zero conv bias) is "off"."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)).double()
    x = torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x[0] = 0.0
    with torch.no_grad():
        net[0].bias.zero_()
    w, b = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    codes = np.stack([_np_conv2d(xi, w, b).reshape(-1) > 0 for xi in x.numpy()])  # (5, 8)
    K_want = np.array([[8 - int((ci != cj).sum()) for cj in codes] for ci in codes])
    np.testing.assert_array_equal(P.naswot_kernel(net, x).numpy(), K_want.astype(np.float64))
    assert P.naswot(net, x) == pytest.approx(_exact_logabsdet(K_want), rel=1e-12)


def test_naswot_identical_codes_is_minus_inf():
    torch.manual_seed(11)
    net = TinyReluNet().double()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x[3] = x[1]
    s = P.naswot(net, x)
    assert s == float("-inf") and not math.isnan(s)
    assert P.naswot_logdet(torch.ones(3, 3)) == float("-inf")
    # a singular kernel without duplicate rows (row 3 = row 1 + row 2): slogdet's sign 0
    singular = torch.tensor([[2., 1., 3.], [1., 2., 3.], [3., 3., 6.]])
    assert P.naswot_logdet(singular) == float("-inf")
    assert P.naswot_logdet(torch.tensor([[4., 2., 2.], [2., 4., 6.], [2., 6., 8.]])) == \
        pytest.approx(math.log(16.0), rel=1e-12)  # det = -16


def test_naswot_singular_integer_kernels_are_minus_inf_on_every_lapack():
    """Singular kernels whose float LU leaves a pivot of rounding noise (on some CPUs a finite,
    even high, log|det|): the decision is exact. B @ B.T with B (40, 39) integers has rank <= 39;
    real 0/1 codes of D = 50 < N = 128 units give rank <= 51."""
    g = torch.Generator().manual_seed(0)
    B = torch.randint(-3, 4, (40, 39), generator=g).double()
    assert P.naswot_logdet(B @ B.T) == float("-inf")
    C = (torch.rand(128, 50, generator=g) > 0.5).double()
    K = C @ C.T + (1 - C) @ (1 - C).T
    assert len({tuple(r) for r in K.tolist()}) == 128  # no duplicate rows: not the fast path
    assert P.naswot_logdet(K) == float("-inf")
    # full rank: B (40, 41) -> B @ B.T non-singular; value against exact rational elimination
    B = torch.randint(-3, 4, (40, 41), generator=g).double()
    want = _exact_logabsdet((B @ B.T).numpy().astype(np.int64))
    assert math.isfinite(want) and P.naswot_logdet(B @ B.T) == pytest.approx(want, rel=1e-9)
    # ill-conditioned but non-singular: det = 1 exactly (unimodular), cond ~ 1e24
    U = torch.tensor([[1., 10 ** 6], [0., 1.]], dtype=torch.float64)
    assert P.naswot_logdet(U @ U.T) == 0.0


def test_naswot_logdet_refuses_non_integer_kernels():
    with pytest.raises(ValueError, match="integer"):
        P.naswot_logdet(torch.tensor([[1.5, 0.], [0., 1.]]))
    with pytest.raises(ValueError, match=r"square \(N, N\)"):
        P.naswot_logdet(torch.ones(2, 3))


def test_naswot_refuses_non_rectifiers_and_nets_without_relu():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="Hardswish"):
        P.naswot(nn.Sequential(nn.Linear(3, 3), nn.Hardswish(), nn.ReLU()), x)
    with pytest.raises(ValueError, match="no ReLU"):
        P.naswot(nn.Sequential(nn.Linear(3, 2)), x)


# ------------------------------------------------------------------------------------------------
# NB201 cells
# ------------------------------------------------------------------------------------------------
def test_nb201_synflow_orders_cells(nb201):
    scores = {op: P.proxy_score("synflow", nb201, uniform_cell(op))
              for op in ("none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")}
    assert scores["none"] == 0.0
    assert P.synflow(P.fresh_subnet(nb201, uniform_cell("none")), (1, 3, 8, 8)).log_score == \
        float("-inf")
    assert all(v > 0 and math.isfinite(v) for k, v in scores.items() if k != "none")
    assert scores["nor_conv_3x3"] > scores["nor_conv_1x1"] > scores["skip_connect"]
    assert scores["nor_conv_3x3"] > scores["avg_pool_3x3"]
    # one conv edge whose output never reaches node 3: no weight of the cell counts, score 0
    dead = {k: "none" for k in NB201_EDGE_KEYS} | {"edge_1_0": "nor_conv_3x3"}
    assert P.proxy_score("synflow", nb201, dead) == 0.0


def test_nb201_synflow_stem_and_classifier_identity(nb201):
    """No re-implementation: everything after the stem is positive and linear in the stem's output,
    with the classifier bias as the only constant, so Σ θ ∂R/∂θ over the stem conv (and over the
    classifier weight) is R − Σ|classifier bias| (Euler, degree 1)."""
    for s in (uniform_cell("nor_conv_3x3"), "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|"
              "+|none~0|nor_conv_3x3~1|skip_connect~2|"):
        net = P.fresh_subnet(nb201, s, seed=1)
        r = P.synflow(net, (1, 3, 8, 8))
        rest = r.R - float(net.classifier.bias.detach().double().abs().sum())
        assert r.per_layer["stem.0"] == pytest.approx(rest, rel=1e-10)
        assert r.per_layer["classifier"] == pytest.approx(rest, rel=1e-10)
        assert r.score == pytest.approx(sum(r.per_layer.values()), rel=1e-14)
        assert r.score == P.proxy_score("synflow", nb201, s, seed=1)


def test_nb201_deterministic_given_seed(nb201, images):
    s = uniform_cell("nor_conv_3x3")
    state = torch.get_rng_state()
    a = P.proxy_score("synflow", nb201, s, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert P.proxy_score("synflow", nb201, s, seed=7) == a
    assert P.proxy_score("synflow", nb201, s, seed=8) != a
    b = P.proxy_score("naswot", nb201, s, batch=images, seed=7)
    assert math.isfinite(b) and P.proxy_score("naswot", nb201, s, batch=images, seed=7) == b
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(1))
    permuted = P.proxy_score("naswot", nb201, s, batch=images[perm], seed=7)
    assert permuted == pytest.approx(b, rel=1e-9)


def test_nb201_naswot_all_none_is_minus_inf(nb201, images):
    """The all-none cell zeroes every ReLU input after the stem: identical codes, singular K."""
    assert P.proxy_score("naswot", nb201, uniform_cell("none"), batch=images) == float("-inf")


def test_nb201_naswot_equals_kernel_of_the_subnet(nb201, images):
    """proxy_score is naswot on fresh_subnet; K's diagonal is the number of ReLU units the
    network runs: 3 reduction ReLUs + lastact + one per conv edge, each C*H*W wide."""
    s = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    net = P.fresh_subnet(nb201, s, seed=2)
    K = P.naswot_kernel(net, images)
    c = nb201.C
    per_cell = 3  # conv edges of the arch
    units = per_cell * (c * 64 + 2 * c * 16 + 4 * c * 4)  # cells of stages 1-3 at 8, 4, 2 px
    units += c * 64 + 2 * c * 16  # reduction 1: conv_a's and conv_b's ReLU inputs
    units += 2 * c * 16 + 4 * c * 4  # reduction 2
    units += 4 * c * 4  # lastact
    assert torch.all(K.diagonal() == units)
    assert P.proxy_score("naswot", nb201, s, batch=images, seed=2) == P.naswot_logdet(K)


def test_score_archs_twenty_nb201_cells(nb201, images):
    g = torch.Generator().manual_seed(0)
    archs = [nb201.sample(None, g) for _ in range(20)]
    syn = P.score_archs("synflow", nb201, archs, seed=0)
    nw = P.score_archs("naswot", nb201, [nb201.arch_to_string(a) for a in archs], batch=images)
    keys = list(dict.fromkeys(nb201.arch_to_string(a) for a in archs))
    assert list(syn) == keys and list(nw) == keys
    assert all(v >= 0 and not math.isnan(v) for v in syn.values())
    assert all(not math.isnan(v) for v in nw.values())
    assert syn[keys[3]] == P.proxy_score("synflow", nb201, archs[3])


def test_mobile_spaces():
    """synflow on proxyless and ofa; naswot on proxyless (ReLU6) and refused on ofa."""
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(4, 3, 32, 32, generator=g)
    prox = get_space("proxyless", input_size=32, num_classes=10)
    arch = prox.sample(None, g)
    assert P.proxy_score("synflow", prox, arch) > 0
    assert math.isfinite(P.proxy_score("naswot", prox, arch, batch=batch))
    ofa = get_space("ofa", input_size=32, num_classes=10)
    assert P.proxy_score("synflow", ofa, ofa.sample(None, g)) > 0
    with pytest.raises(ValueError, match="'naswot'.*'ofa'"):
        P.proxy_score("naswot", ofa, ofa.sample(None, g), batch=batch)
    with pytest.raises(ValueError, match="'naswot'.*'ofa'"):
        P.score_archs("naswot", ofa, [], batch=batch)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
def test_bad_input(nb201, images):
    s = uniform_cell("skip_connect")
    with pytest.raises(ValueError, match="unknown proxy 'snip'.*synflow"):
        P.proxy_score("snip", nb201, s)
    with pytest.raises(TypeError, match="name must be a str"):
        P.score_archs(3, nb201, [s])
    with pytest.raises(TypeError, match="space must be"):
        P.proxy_score("synflow", "nb201", s)
    with pytest.raises(ValueError, match="naswot needs batch"):
        P.proxy_score("naswot", nb201, s)
    with pytest.raises(ValueError, match=r"naswot needs batch"):
        P.score_archs("naswot", nb201, [s])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(12, 1, 8, 8\)"):
        P.proxy_score("naswot", nb201, s, batch=images[:, :1])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(3, 8, 8\)"):
        P.proxy_score("naswot", nb201, s, batch=images[0])
    with pytest.raises(ValueError, match=r"N >= 2.*\(1, 3, 8, 8\)"):
        P.proxy_score("naswot", nb201, s, batch=images[:1])
    with pytest.raises(TypeError, match="floating.*torch.uint8"):
        P.proxy_score("naswot", nb201, s, batch=images.to(torch.uint8))
    with pytest.raises(TypeError, match="batch must be a torch.Tensor"):
        P.proxy_score("naswot", nb201, s, batch=images.numpy())
    bad = images.clone()
    bad[2, 0, 1, 1] = float("nan")
    bad[5, 1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"\(12, 3, 8, 8\) has 2 non-finite"):
        P.proxy_score("naswot", nb201, s, batch=bad)
    with pytest.raises(TypeError, match="seed must be an int"):
        P.proxy_score("synflow", nb201, s, seed=1.5)
    with pytest.raises(ValueError, match="seed must be in"):
        P.proxy_score("synflow", nb201, s, seed=-1)
    with pytest.raises(TypeError, match="single str"):
        P.score_archs("synflow", nb201, s)
    with pytest.raises(ValueError, match="nb201|NB201"):
        P.score_archs("synflow", nb201, [s, "|conv~0|"])
    with pytest.raises(ValueError, match="input_shape"):
        P.synflow(nn.Linear(3, 2), (1, 0))
    with pytest.raises(TypeError, match="net must be an nn.Module"):
        P.naswot(lambda x: x, images)


def test_exact_det_against_rational_elimination():
    """naslid.scores.exact_det on small random integer matrices (a third made singular): the exact
    determinant equals rational Gaussian elimination's, the modular proof never claims a singular
    matrix non-singular, and log|det| matches the oracle (-inf exactly when singular)."""
    from naslid.scores import exact_det as E

    rng = np.random.default_rng(5)
    for trial in range(60):
        n = int(rng.integers(1, 8))
        A = rng.integers(-4, 5, size=(n, n))
        if trial % 3 == 0 and n > 1:
            A[-1] = A[0] * 2 - A[n // 2]  # a dependent row
        want = _exact_logabsdet(A)
        t = torch.tensor(A, dtype=torch.float64)
        det = E.integer_det(t)
        assert (det == 0) == (want == float("-inf"))
        if det == 0:
            assert not E._nonzero_mod_p(A.astype(np.int64))
            assert E.integer_logabsdet(t) == float("-inf")
        else:
            assert math.log(abs(det)) == pytest.approx(want, rel=1e-12, abs=1e-12)
            assert E.integer_logabsdet(t) == pytest.approx(want, rel=1e-9, abs=1e-9)
