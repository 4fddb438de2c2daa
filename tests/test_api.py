"""naslid_ext public API against the independent float64 oracle (tests/oracle.py), scikit-dimension
and known intrinsic dimensions; contract details (self exclusion by index, ties, dtypes, shapes,
degenerate inputs); float32 accuracy on realistic features.

Backends: every case runs on "torch" (always available) and "ext" (skipped while the compiled CPU
kernel is absent); "faiss" agreement is in test_backends.py.
"""
from __future__ import annotations

import math

import numpy as np
import warnings

import pytest
import torch

import naslid_ext
from conftest import ext_has

BACKENDS = [
    "torch",
    pytest.param("ext", marks=pytest.mark.skipif(not ext_has("knn"), reason="no CPU kernel for naslid::knn in this build")),
]
LID_BACKENDS = [
    "torch",
    pytest.param("ext", marks=pytest.mark.skipif(not ext_has("knn_lid"), reason="no CPU kernel for naslid::knn_lid in this build")),
]
PROFILE_BACKENDS = [
    "torch",
    pytest.param(
        "ext", marks=pytest.mark.skipif(not ext_has("lid_profile"), reason="no CPU kernel for naslid::lid_profile in this build")
    ),
]


def _oracle_knn(oracle, x, y, k, exclude_self):
    """Oracle on float64 copies, batched (B, N, D) -> (B, N, k) sqdist, idx."""
    xs = x.double() if x.dim() == 3 else x.double().unsqueeze(0)
    ys = y.double() if y.dim() == 3 else y.double().unsqueeze(0)
    outs = [oracle.knn_oracle(xs[b], ys[b], k, exclude_self) for b in range(xs.shape[0])]
    d = torch.stack([torch.as_tensor(o[0], dtype=torch.float64) for o in outs])
    i = torch.stack([torch.as_tensor(o[1], dtype=torch.int64) for o in outs])
    return (d, i) if x.dim() == 3 else (d[0], i[0])


def _oracle_lid(oracle, x2, k, estimator):
    """Per-point float64 oracle LID of one set x2 (N, D)."""
    d, _ = oracle.knn_oracle(x2.double(), x2.double(), k, True)
    return torch.as_tensor(oracle.lid_oracle(torch.as_tensor(d, dtype=torch.float64), estimator), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- knn
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "shape_x,shape_y,k,exclude_self",
    [
        ((37, 5), None, 1, True),
        ((37, 5), None, 7, True),
        ((37, 5), None, 35, True),  # k = N - 2: the largest valid k
        ((2, 23, 9), None, 4, True),
        ((20, 6), (31, 6), 5, False),
        ((3, 11, 4), (3, 17, 4), 16, False),  # k = M - 1: the largest valid k
        ((19, 3), None, 3, False),  # self included as a neighbour at distance 0
    ],
)
def test_knn_matches_oracle(oracle, backend, dtype, shape_x, shape_y, k, exclude_self):
    g = torch.Generator().manual_seed(hash((shape_x, k)) % 1000)
    x = torch.randn(shape_x, generator=g, dtype=torch.float64).to(dtype)
    y = None if shape_y is None else torch.randn(shape_y, generator=g, dtype=torch.float64).to(dtype)
    d, i = naslid_ext.knn(x, k, y, exclude_self=exclude_self, backend=backend)
    od, oi = _oracle_knn(oracle, x, x if y is None else y, k, exclude_self)
    assert d.shape == od.shape and i.shape == oi.shape
    assert d.dtype == dtype and i.dtype == torch.int64
    assert torch.equal(i, oi)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d.double(), od, **tol)
    assert bool((d[..., 1:] >= d[..., :-1]).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_knn_default_exclude_self_only_when_y_is_omitted(backend, dtype):
    """Self exclusion is explicit: y omitted -> excluded; y given (the same object, a cast, a copy,
    a transposed-back view) -> included unless exclude_self=True; never decided by identity, so
    every dtype and layout behaves alike."""
    x = torch.randn(15, 4, generator=torch.Generator().manual_seed(1)).to(dtype)
    _, i_none = naslid_ext.knn(x, 3, backend=backend)
    assert not bool((i_none == torch.arange(15)[:, None]).any())
    for y in (x, x.float(), x.clone(), x.T.contiguous().T):
        _, i_y = naslid_ext.knn(x, 3, y.to(dtype), backend=backend)
        assert torch.equal(i_y[:, 0], torch.arange(15))  # self included, at distance 0
        _, i_ex = naslid_ext.knn(x, 3, y.to(dtype), exclude_self=True, backend=backend)
        assert torch.equal(i_ex, i_none)


def test_knn_overflowing_squared_distances_raise_with_right_neighbours(oracle):
    """Finite float32 input whose squared distances overflow: ValueError naming x and the dtype
    (the raw kernels would return inf and scrambled indices); the same points at float64 give
    the oracle's neighbours, and LID rescales (scale-invariant) instead of raising."""
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: squared distances of x \(12, 3\).*overflow torch\.float32"):
        naslid_ext.knn((x * 1e20).float(), 2)
    d, i = naslid_ext.knn(x * 1e20, 2)
    want_d, want_i = oracle.knn_oracle(x * 1e20, x * 1e20, 2, True)
    assert torch.equal(i, torch.as_tensor(want_i)) and torch.allclose(d, torch.as_tensor(want_d, dtype=d.dtype), rtol=1e-12)
    # underflow is not an error: neighbours right, distances rounded into the dtype
    _, i_small = naslid_ext.knn((x * 1e-25).float(), 2)
    assert torch.equal(i_small, i)
    assert float(naslid_ext.lid((x * 1e20).float(), 3)) == pytest.approx(float(naslid_ext.lid(x.float(), 3)), rel=1e-5)


def test_ops_warn_when_the_input_requires_grad():
    x = torch.randn(10, 3, requires_grad=True)
    for call in (lambda: naslid_ext.knn(x, 2), lambda: naslid_ext.lid(x, 3),
                 lambda: naslid_ext.lid_profile([x], 3)):
        with pytest.warns(UserWarning, match=r"naslid_ext\.\w+: (x|features\[0\]) requires grad.*no gradient"):
            out = call()
        assert not (out[0] if isinstance(out, tuple) else out).requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            naslid_ext.knn(x, 2)
        naslid_ext.knn(x.detach(), 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_excludes_self_by_index_and_keeps_duplicates(oracle, backend):
    g = torch.Generator().manual_seed(2)
    base = torch.randn(10, 3, generator=g, dtype=torch.float64)
    x = torch.cat([base, base[:4], base[:2]])  # rows 10..13 duplicate 0..3, rows 14, 15 duplicate 0, 1
    d, i = naslid_ext.knn(x, 3, backend=backend)
    n = x.shape[0]
    assert not bool((i == torch.arange(n)[:, None]).any())
    # point 0 has two duplicates (10 and 14): both at distance 0, lower index first
    assert i[0, :2].tolist() == [10, 14] and d[0, :2].tolist() == [0.0, 0.0]
    # point 10 (a copy of 0): its twins 0 and 14 come first, in index order
    assert i[10, :2].tolist() == [0, 14]
    od, oi = _oracle_knn(oracle, x, x, 3, True)
    assert torch.equal(i, oi)
    torch.testing.assert_close(d, od, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_ties_go_to_lower_index(backend):
    # Points on an integer grid: many exactly equal distances.
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (40, 2), generator=g).double()
    d, i = naslid_ext.knn(x, 6, backend=backend)
    dd = torch.cdist(x, x) ** 2
    dd.fill_diagonal_(float("inf"))
    for r in range(x.shape[0]):
        # expected: stable sort by distance over indices in ascending order
        order = sorted(range(x.shape[0]), key=lambda j: (float(dd[r, j]), j))[:6]
        assert i[r].tolist() == order, r
        assert d[r].tolist() == [float(dd[r, j]) for j in order]


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_non_contiguous_input(backend):
    g = torch.Generator().manual_seed(4)
    base = torch.randn(6, 30, generator=g)  # transposed view: (30, 6), non-contiguous
    x = base.t()
    ybase = torch.randn(2, 5, 25, generator=g)
    y = ybase.transpose(1, 2)[0]  # (25, 5)
    assert not x.is_contiguous() and not y.is_contiguous()
    d, i = naslid_ext.knn(x[:, :5], 4, y, backend=backend)
    d2, i2 = naslid_ext.knn(x[:, :5].contiguous(), 4, y.contiguous(), backend=backend)
    assert torch.equal(i, i2) and torch.equal(d, d2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_knn_half_types_upcast_to_float32(dtype):
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(5)).to(dtype)
    d, i = naslid_ext.knn(x, 5)
    d32, i32 = naslid_ext.knn(x.float(), 5)
    assert d.dtype == torch.float32
    assert torch.equal(i, i32) and torch.equal(d, d32)


# -------------------------------------------------------------------------------------------- lid_mle
@pytest.mark.parametrize("estimator", ["naslid", "levina"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lid_mle_matches_oracle(oracle, estimator, dtype):
    g = torch.Generator().manual_seed(6)
    s = torch.rand(4, 9, 20, generator=g, dtype=torch.float64).sort(dim=-1).values + 0.01
    got = naslid_ext.lid_mle(s.to(dtype), estimator=estimator)
    want = torch.as_tensor(oracle.lid_oracle(s, estimator), dtype=torch.float64)
    assert got.shape == (4, 9) and got.dtype == dtype
    tol = dict(rtol=1e-5, atol=0) if dtype == torch.float32 else dict(rtol=1e-12, atol=0)
    torch.testing.assert_close(got.double(), want, **tol)


def test_lid_mle_formula_by_hand():
    r = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)  # Euclidean distances
    s = r**2
    naslid = -3 / (math.log(1 / 4) + math.log(2 / 4) + 0.0)
    levina = 2 / (math.log(4 / 1) + math.log(4 / 2))
    assert naslid_ext.lid_mle(s).item() == pytest.approx(naslid, rel=1e-14)
    assert naslid_ext.lid_mle(s, estimator="levina").item() == pytest.approx(levina, rel=1e-14)


@pytest.mark.parametrize("k", [2, 5, 20])
def test_naslid_is_k_over_k_minus_1_times_levina(k):
    s = torch.rand(50, k, generator=torch.Generator().manual_seed(k), dtype=torch.float64).sort(-1).values + 1e-3
    torch.testing.assert_close(
        naslid_ext.lid_mle(s, estimator="naslid"),
        k / (k - 1) * naslid_ext.lid_mle(s, estimator="levina"),
        rtol=1e-12,
        atol=0,
    )


# ------------------------------------------------------------------------------------ scikit-dimension
@pytest.mark.parametrize("k", [5, 20])
def test_agrees_with_scikit_dimension_mle(k):
    """skdim.id.MLE (Haro approximation, no noise) given our k-NN: pointwise it is the Levina-Bickel
    estimate (k-1)/sum log(r_k/r_j) = (k-1)/k * ours with estimator="naslid"; its `dimension_`
    combines points with the harmonic mean (comb="mle"), NAS-LID with the arithmetic mean."""
    skdim = pytest.importorskip("skdim")
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    d, i = naslid_ext.knn(x, k)
    est = skdim.id.MLE().fit(
        x.numpy(), precomputed_knn_arrays=(np.sqrt(d.numpy()), i.numpy()), n_neighbors=k
    )
    ours_levina = naslid_ext.lid_mle(d, estimator="levina")
    ours_naslid = naslid_ext.lid_mle(d, estimator="naslid")
    np.testing.assert_allclose(est.dimension_pw_, ours_levina.numpy(), rtol=1e-10)
    np.testing.assert_allclose(est.dimension_pw_ * k / (k - 1), ours_naslid.numpy(), rtol=1e-10)
    # default aggregation: skdim harmonic ("mle") == our reduction="harmonic" with levina
    harmonic = naslid_ext.lid(x, k, estimator="levina", reduction="harmonic")
    assert float(harmonic) == pytest.approx(est.dimension_, rel=1e-10)
    mean = naslid_ext.lid(x, k, estimator="levina", reduction="mean")
    assert float(mean) == pytest.approx(np.mean(est.dimension_pw_), rel=1e-10)
    assert float(mean) > float(harmonic)  # AM > HM for non-constant pointwise estimates


# -------------------------------------------------------------------------------- known dimensions
@pytest.mark.parametrize("d", [2, 5, 8])
def test_lid_of_uniform_ball_is_its_dimension(factories, d):
    """Uniform samples of a d-ball rotated into 10*d dims: MLE LID within 10 % of d."""
    x = factories.ball_sample(2000, d, 10 * d, seed=d)
    sqdist, _ = naslid_ext.knn(x, 20)
    levina = naslid_ext.lid_mle(sqdist, estimator="levina")
    naslid = naslid_ext.lid_mle(sqdist, estimator="naslid")
    assert float(levina.mean()) == pytest.approx(d, rel=0.10)
    assert float(1 / (1 / naslid).mean()) == pytest.approx(d, rel=0.10)
    assert float(naslid_ext.lid(x, 20, estimator="levina")) == pytest.approx(float(levina.mean()), rel=1e-12)


# --------------------------------------------------------------------------------------- lid, shapes
@pytest.mark.parametrize("backend", LID_BACKENDS)
@pytest.mark.parametrize("estimator", ["naslid", "levina"])
def test_lid_matches_oracle(oracle, backend, estimator):
    x = torch.randn(60, 7, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    per_point = naslid_ext.lid(x, 10, estimator=estimator, reduction="none", backend=backend)
    want = _oracle_lid(oracle, x, 10, estimator)
    torch.testing.assert_close(per_point, want, rtol=1e-10, atol=0)
    assert float(naslid_ext.lid(x, 10, estimator=estimator, backend=backend)) == pytest.approx(float(want.mean()), rel=1e-10)


def test_lid_reductions():
    x = torch.randn(41, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    pp = naslid_ext.lid(x, 8, reduction="none")
    assert pp.shape == (41,)
    assert float(naslid_ext.lid(x, 8, reduction="mean")) == pytest.approx(float(pp.mean()), rel=1e-14)
    assert float(naslid_ext.lid(x, 8, reduction="harmonic")) == pytest.approx(41 / float((1 / pp).sum()), rel=1e-13)
    assert float(naslid_ext.lid(x, 8, reduction="median")) == pytest.approx(float(np.median(pp.numpy())), rel=1e-14)
    even = naslid_ext.lid(x[:40], 8, reduction="median")  # even N: mean of the two middle values
    assert float(even) == pytest.approx(float(np.median(naslid_ext.lid(x[:40], 8, reduction="none").numpy())), rel=1e-14)


@pytest.mark.parametrize("backend", LID_BACKENDS)
def test_lid_batched_and_image_sets(backend):
    g = torch.Generator().manual_seed(10)
    imgs = torch.randn(3, 25, 2, 4, 4, generator=g)  # B=3 sets of N=25 images (2, 4, 4)
    batched = naslid_ext.lid(imgs, 6, batched=True, backend=backend)
    assert batched.shape == (3,)
    for b in range(3):
        one = naslid_ext.lid(imgs[b], 6, backend=backend)  # (N, C, H, W) is ONE set of N points
        assert one.shape == ()
        torch.testing.assert_close(one, naslid_ext.lid(imgs[b].reshape(25, -1), 6, backend=backend))
        torch.testing.assert_close(batched[b], one)
    assert naslid_ext.lid(imgs, 6, batched=True, reduction="none", backend=backend).shape == (3, 25)
    # 1-D input: N scalar points
    assert naslid_ext.lid(torch.randn(30, generator=g), 3, backend=backend).shape == ()


@pytest.mark.parametrize("backend", PROFILE_BACKENDS)
def test_lid_profile_equals_per_layer_lid(oracle, factories, backend):
    feats = factories.bn_relu_features(n=48, dtype=torch.float64)
    prof = naslid_ext.lid_profile(feats, 10, backend=backend)
    assert prof.shape == (len(feats),) and prof.dtype == torch.float64
    for l, f in enumerate(feats):
        want = _oracle_lid(oracle, f.reshape(48, -1), 10, "naslid").mean()
        assert float(prof[l]) == pytest.approx(float(want), rel=1e-10)
    none = naslid_ext.lid_profile(feats, 10, reduction="none", backend=backend)
    assert none.shape == (len(feats), 48)
    torch.testing.assert_close(none.mean(dim=1), prof)


def test_lid_profile_mixed_dtypes_promote():
    g = torch.Generator().manual_seed(11)
    feats = [torch.randn(20, 3, generator=g).half(), torch.randn(20, 2, 2, generator=g, dtype=torch.float64)]
    prof = naslid_ext.lid_profile(feats, 4)
    assert prof.dtype == torch.float64
    assert float(prof[0]) == pytest.approx(float(naslid_ext.lid(feats[0].double(), 4)), rel=1e-12)


def test_outputs_carry_no_autograd_history():
    x = torch.randn(20, 3, requires_grad=True)
    with pytest.warns(UserWarning, match="requires grad"):
        d, _ = naslid_ext.knn(x, 3)
    assert not d.requires_grad
    with pytest.warns(UserWarning, match="requires grad"):
        assert not naslid_ext.lid(x, 3).requires_grad


# ----------------------------------------------------------------------------------- degenerate cases
@pytest.mark.parametrize("backend", LID_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_equal_points(backend, dtype):
    x = torch.full((12, 5), 0.37, dtype=dtype)
    d, i = naslid_ext.knn(x, 4, backend=backend)
    assert bool((d == 0).all())
    # ties to the lower index, own index skipped
    assert i[0].tolist() == [1, 2, 3, 4] and i[2].tolist() == [0, 1, 3, 4] and i[11].tolist() == [0, 1, 2, 3]
    per_point = naslid_ext.lid(x, 4, reduction="none", backend=backend)
    assert bool((per_point == 0).all())  # a zero distance among the neighbours -> LID 0
    for red in ("mean", "harmonic", "median"):
        assert float(naslid_ext.lid(x, 4, reduction=red, backend=backend)) == 0.0


@pytest.mark.parametrize("backend", LID_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equidistant_neighbours_give_the_cap(backend, dtype):
    x = torch.eye(8, dtype=dtype) * 3.0  # regular simplex: all pairwise distances equal
    per_point = naslid_ext.lid(x, 5, reduction="none", backend=backend)
    cap = 1.0 / torch.finfo(dtype).eps
    assert bool(torch.isfinite(per_point).all())
    torch.testing.assert_close(per_point, torch.full_like(per_point, cap))
    assert float(naslid_ext.lid_mle(torch.full((3,), 2.0, dtype=dtype))) == cap


@pytest.mark.parametrize("backend", LID_BACKENDS)
def test_duplicates_in_a_set_are_finite(backend):
    g = torch.Generator().manual_seed(12)
    base = torch.randn(30, 4, generator=g)
    x = torch.cat([base, base[:5]])
    per_point = naslid_ext.lid(x, 6, reduction="none", backend=backend)
    assert bool(torch.isfinite(per_point).all())
    dup = torch.tensor([0, 1, 2, 3, 4, 30, 31, 32, 33, 34])
    assert bool((per_point[dup] == 0).all())
    others = torch.ones(35, dtype=torch.bool)
    others[dup] = False
    assert bool((per_point[others] > 0).all())


# ------------------------------------------------------------------------ float32 accuracy, realistic
def _layer_lids_f64(oracle, feats, k):
    return torch.stack([_oracle_lid(oracle, f.double().reshape(f.shape[0], -1), k, "naslid").mean() for f in feats])


@pytest.fixture
def matmul_precision(request):
    """Run a test under torch.set_float32_matmul_precision(request.param) (+ CUDA TF32 flags)."""
    old = torch.get_float32_matmul_precision()
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision(request.param)
    torch.backends.cuda.matmul.allow_tf32 = request.param != "highest"
    yield request.param
    torch.set_float32_matmul_precision(old)
    torch.backends.cuda.matmul.allow_tf32 = old_tf32


@pytest.mark.parametrize("backend", PROFILE_BACKENDS)
@pytest.mark.parametrize("matmul_precision", ["highest", "high", "medium"], indirect=True)
def test_float32_profile_accuracy_on_bn_relu_features(oracle, factories, backend, matmul_precision):
    feats = factories.bn_relu_features(n=64)  # float32, D from 16*16*8 = 2048 down to 32*8*8 = 2048
    got = naslid_ext.lid_profile(feats, 20, backend=backend)
    want = _layer_lids_f64(oracle, feats, 20)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=0)


@pytest.mark.parametrize("backend", PROFILE_BACKENDS + ["faiss"])
def test_float32_accuracy_nearly_equidistant_high_dim(oracle, backend):
    """i.i.d. ReLU features in D = 16384 / 4096: all distances within a few % of each other, so the
    log ratios are tiny and LID amplifies distance errors: the hardest case for float32."""
    g = torch.Generator().manual_seed(13)
    feats = [torch.relu(torch.randn(96, 16, 32, 32, generator=g)), torch.relu(torch.randn(96, 64, 8, 8, generator=g))]
    got = naslid_ext.lid_profile(feats, 20, backend=backend)
    torch.testing.assert_close(got.double(), _layer_lids_f64(oracle, feats, 20), rtol=1e-4, atol=0)


@pytest.mark.parametrize("backend", LID_BACKENDS)
def test_float32_accuracy_at_d_75000(oracle, factories, backend):
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        f = factories.big_bn_relu_feature()  # (32, 30, 50, 50): D = 75,000
        got = naslid_ext.lid(f, 10, backend=backend)
    finally:
        torch.set_float32_matmul_precision(old)
    want = _oracle_lid(oracle, f.reshape(f.shape[0], -1), 10, "naslid").mean()
    assert float(got) == pytest.approx(float(want), rel=1e-4)


@pytest.mark.parametrize("backend", PROFILE_BACKENDS)
def test_float64_profile_accuracy(oracle, factories, backend):
    feats = factories.bn_relu_features(n=40, widths=(8, 16), hw=12, seed=3, dtype=torch.float64)
    got = naslid_ext.lid_profile(feats, 12, backend=backend)
    torch.testing.assert_close(got, _layer_lids_f64(oracle, feats, 12), rtol=1e-10, atol=0)
