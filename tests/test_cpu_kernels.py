"""CPU kernels of naslid_ext (torch.ops.naslid.*) against the float64 naive oracle (tests/oracle.py).

The ops are called directly with contiguous float32/float64 CPU tensors (the public API validates
and makes inputs contiguous before calling them).
"""
import itertools
import math

import pytest
import torch

import naslid_ext._C  # noqa: F401  (registers torch.ops.naslid)
from oracle import knn_lid_oracle, knn_oracle, lid_cap, lid_oracle

ops = torch.ops.naslid

TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


def _check_knn(d, i, x, y, k, exclude_self, dtype):
    """Distances close to the oracle; indices equal wherever the oracle's order is unambiguous."""
    od, oi = knn_oracle(x, y, k, exclude_self)
    scale = od.abs().amax().clamp_min(1e-300)
    atol = (1e-12 if dtype == torch.float64 else 2e-5) * float(scale)
    torch.testing.assert_close(d.double(), od, rtol=TOL[dtype], atol=atol)
    if dtype == torch.float64:
        assert torch.equal(i, oi)
    else:  # float32: a different index is allowed only for a neighbour at the same distance
        xa, ya = x.double(), y.double()
        if xa.dim() == 2:
            xa, ya, i2, od2 = xa[None], ya[None], i[None], od[None]
        else:
            i2, od2 = i, od
        for b, q, t in (i2 != (oi if oi.dim() == 3 else oi[None])).nonzero().tolist():
            true_d = float(((xa[b, q] - ya[b, i2[b, q, t]]) ** 2).sum())
            assert abs(true_d - float(od2[b, q, t])) <= atol + 1e-4 * float(od2[b, q, t])


@pytest.mark.parametrize("B,N,M,D,k", [(1, 9, 9, 3, 4), (3, 40, 40, 17, 7), (1, 70, 53, 5, 10),
                                       (3, 33, 100, 64, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("same", [True, False])
def test_knn_matches_oracle(B, N, M, D, k, dtype, same):
    g = torch.Generator().manual_seed(N * 1000 + D)
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64).to(dtype)
    if same:
        y, M = x, N
    else:
        y = torch.randn(B, M, D, generator=g, dtype=torch.float64).to(dtype)
    for exclude_self in ([True, False] if N == M else [False]):
        d, i = ops.knn(x, y, k, exclude_self)
        assert d.dtype == dtype and i.dtype == torch.int64 and d.shape == (B, N, k)
        _check_knn(d, i, x, y, k, exclude_self, dtype)
        if exclude_self:
            assert not (i == torch.arange(N).view(1, N, 1)).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knn_exclude_self_with_distinct_copy_of_x(dtype):
    """y equal to x but a different tensor: the cross path must exclude by index too."""
    x = torch.randn(2, 30, 6, dtype=torch.float64).to(dtype)
    d, i = ops.knn(x, x.clone(), 5, True)
    _check_knn(d, i, x, x, 5, True, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("same", [True, False])
def test_exact_duplicates_kept_by_index(dtype, same):
    """Duplicates of a query are neighbours at distance exactly 0, ordered by index; LID 0."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(20, 8, generator=g, dtype=torch.float64) * 3 + 5  # offset: centring path
    x = torch.cat([base, base[:5], base[:2]]).to(dtype)[None]  # rows 20..24, 25..26 duplicate 0..4, 0..1
    y = x if same else x.clone()
    d, i = ops.knn(x, y, 3, True)
    assert d[0, 0, 0] == 0 and d[0, 0, 1] == 0 and i[0, 0, :2].tolist() == [20, 25]
    assert d[0, 20, 0] == 0 and d[0, 20, 1] == 0 and i[0, 20, :2].tolist() == [0, 25]
    assert d[0, 3, 0] == 0 and i[0, 3, 0] == 23 and d[0, 3, 1] > 0
    _check_knn(d, i, x, y, 3, True, dtype)
    lid = ops.knn_lid(x, 3, "naslid")
    assert lid[0, 0] == 0 and lid[0, 3] == 0 and torch.isfinite(lid).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ties_go_to_lower_index(dtype):
    """Integer lattice points: many exactly equal distances, ordered by index like the oracle."""
    pts = torch.tensor(list(itertools.product(range(-2, 3), repeat=3)), dtype=dtype)  # 125 x 3
    perm = torch.randperm(125, generator=torch.Generator().manual_seed(0))
    x = pts[perm][None].contiguous()
    for y in (x, x.clone()):
        d, i = ops.knn(x, y, 12, True)
        od, oi = knn_oracle(x, y, 12, True)
        assert torch.equal(d.double(), od) and torch.equal(i, oi)
    # offset lattice (centring path, shifted by a rounded mean): still exact
    x2 = (x + 1000).contiguous()
    d, i = ops.knn(x2, x2, 12, True)
    od, oi = knn_oracle(x2, x2, 12, True)
    assert torch.equal(d.double(), od) and torch.equal(i, oi)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_long_row_scans_with_ties_and_duplicates(dtype):
    """Rows whose scan is longer than the seeding prefix (gram_knn.h seed_row: 256 candidates
    selected by bisection before the running insertion): a 4-D integer lattice (625 points,
    many exactly equal distances) with 50 exact duplicates, symmetric and cross path, batched knn
    and the per-layer path of lid_profile, equal to the float64 brute force index for index."""
    pts = torch.tensor(list(itertools.product(range(-2, 3), repeat=4)), dtype=torch.float64)
    pts = pts[torch.randperm(len(pts), generator=torch.Generator().manual_seed(1))]
    x = torch.cat([pts, pts[:50]]).to(dtype)[None].contiguous()  # 675 x 4
    for y in (x, x.clone()):
        for k in (12, 30):
            d, i = ops.knn(x, y, k, True)
            od, oi = knn_oracle(x, y, k, True)
            assert torch.equal(d.double(), od) and torch.equal(i, oi)
    prof = ops.lid_profile([x[0], (x[0] * 0.5).contiguous()], 12, "naslid")
    ref = knn_lid_oracle(x[0], 12, "naslid", lid_cap(dtype))
    torch.testing.assert_close(prof[0].double(), ref, rtol=TOL[dtype], atol=0)
    torch.testing.assert_close(prof[1], prof[0], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_equal_points_and_equidistant_cap(dtype):
    """All points equal: every distance 0 -> LID 0. A regular simplex: equidistant -> the cap."""
    x = torch.full((1, 10, 4), 1.5, dtype=dtype)
    d, i = ops.knn(x, x, 3, True)
    assert (d == 0).all()
    assert i[0, 4].tolist() == [0, 1, 2]
    assert (ops.knn_lid(x, 3, "naslid") == 0).all()
    s = torch.eye(16, dtype=dtype)[None]  # pairwise squared distance 2
    for est in ("naslid", "levina"):
        lid = ops.knn_lid(s, 5, est)
        assert torch.equal(lid, torch.full_like(lid, lid_cap(dtype)))
        assert torch.equal(lid, lid_oracle(ops.knn(s, s, 5, True)[0], est, lid_cap(dtype)).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("est", ["naslid", "levina"])
def test_lid_mle_matches_oracle(dtype, est):
    g = torch.Generator().manual_seed(2)
    s = torch.rand(3, 5, 8, generator=g, dtype=torch.float64).sort(-1).values.to(dtype)
    s[0, 0, :3] = 0  # duplicates -> 0
    s[0, 1] = 0.25  # equidistant -> cap
    s[1, 2, 0] = 0
    out = ops.lid_mle(s.contiguous(), est)
    ref = lid_oracle(s, est, lid_cap(dtype))
    assert out.shape == (3, 5) and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=TOL[dtype] * 10, atol=0)
    assert out[0, 0] == 0 and out[0, 1] == lid_cap(dtype) and out[1, 2] == 0


def test_lid_mle_identity_naslid_levina():
    """NAS-LID form = k/(k-1) * Levina form on the same distances (cheap identity)."""
    s = torch.rand(50, 20, dtype=torch.float64).sort(-1).values + 0.01
    a, b = ops.lid_mle(s, "naslid"), ops.lid_mle(s, "levina")
    torch.testing.assert_close(a, b * 20 / 19, rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("est", ["naslid", "levina"])
def test_knn_lid_and_profile_match_oracle(dtype, est):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 45, 12, generator=g, dtype=torch.float64).to(dtype)
    lid = ops.knn_lid(x, 6, est)
    ref = knn_lid_oracle(x, 6, est)
    torch.testing.assert_close(lid.double(), ref, rtol=TOL[dtype] * 10, atol=0)
    feats = [torch.randn(45, dd, generator=g, dtype=torch.float64).relu().to(dtype) for dd in (3, 50, 7, 130)]
    prof = ops.lid_profile(feats, 6, est)
    assert prof.shape == (4, 45) and prof.dtype == dtype
    for l, f in enumerate(feats):
        torch.testing.assert_close(prof[l].double(), knn_lid_oracle(f, 6, est), rtol=TOL[dtype] * 10, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_tile_path_running_selection(dtype):
    """N larger than the symmetric block (256 rows above N=1536) and M larger than the cross tile
    (4096 columns): the running selection over many tiles must equal brute force."""
    g = torch.Generator().manual_seed(4)
    N, D, k = 1700, 6, 5
    x = torch.randn(1, N, D, generator=g, dtype=torch.float64).to(dtype)
    d, i = ops.knn(x, x, k, True)
    rows = torch.arange(0, N, 97)
    od, oi = knn_oracle(x[:, rows], x, k + 1, False)  # self (distance 0, or a duplicate) first
    # drop the query itself from the oracle's list by index
    keep = oi != rows.view(1, -1, 1)
    od = od[keep].view(1, len(rows), -1)[..., :k]
    oi = oi[keep].view(1, len(rows), -1)[..., :k]
    torch.testing.assert_close(d[:, rows].double(), od, rtol=TOL[dtype], atol=1e-5 if dtype == torch.float32 else 1e-12)
    if dtype == torch.float64:
        assert torch.equal(i[:, rows], oi)
    y = torch.randn(1, 4500, D, generator=g, dtype=torch.float64).to(dtype)
    q = x[:, :40].contiguous()
    d2, i2 = ops.knn(q, y, k, False)
    _check_knn(d2, i2, q, y, k, False, dtype)


def _relu_bn_features(N, D, seed, dtype):
    """ReLU of standardised random projections of a low-dimensional latent: BN+ReLU-like."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, 12, generator=g, dtype=torch.float64)
    w = torch.randn(12, D, generator=g, dtype=torch.float64)
    h = z @ w + 0.3 * torch.randn(N, D, generator=g, dtype=torch.float64)
    h = (h - h.mean(0)) / h.std(0)  # batch-norm over the batch
    return torch.relu(h).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_profile_accuracy_large_D(dtype):
    """Mean LID per layer within 1e-4 (float32) / 1e-10 (float64) of the float64 oracle at D=75,000."""
    N, k = 96, 20
    feats = [_relu_bn_features(N, 75000, 5, dtype), _relu_bn_features(N, 4096, 6, dtype)]
    prof = ops.lid_profile(feats, k, "naslid")
    for l, f in enumerate(feats):
        ref = knn_lid_oracle(f.double(), k).mean()  # oracle on the same (rounded) inputs
        rel = abs(float(prof[l].double().mean()) - float(ref)) / float(ref)
        assert rel < TOL[dtype], (l, rel)
        assert math.isfinite(float(prof[l].mean()))


def test_offset_data_centring_accuracy():
    """A large common offset (cancellation factor ~1e4): float32 still within 1e-4 of the oracle."""
    x = (_relu_bn_features(64, 2000, 7, torch.float64) + 30.0).float()
    lid = ops.knn_lid(x[None], 10, "naslid")[0]
    ref = knn_lid_oracle(x.double(), 10)
    assert abs(float(lid.double().mean() - ref.mean())) / float(ref.mean()) < 1e-4


@pytest.mark.parametrize(
    "call, msg",
    [
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(1, 5, 3), 5, True), "k must be in"),
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(1, 5, 3), 4, True), "k must be in"),
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(1, 5, 3), 5, False), "k must be in"),
        (lambda: ops.knn_lid(torch.randn(1, 5, 3), 4, "naslid"), "k must be in"),
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(1, 5, 4), 2, False), "same D"),
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(2, 5, 3), 2, False), "batch size"),
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(1, 6, 3), 2, True), "N == M"),
        (lambda: ops.knn(torch.randn(5, 3), torch.randn(5, 3), 2, True), "x must be"),
        (lambda: ops.knn(torch.randn(1, 5, 3), torch.randn(1, 5, 3).double(), 2, True), "same dtype"),
        (lambda: ops.knn(torch.ones(1, 5, 3, dtype=torch.int64), torch.ones(1, 5, 3, dtype=torch.int64), 2, True),
         "float32 or float64"),
        (lambda: ops.lid_mle(torch.rand(4, 3), "mle"), "estimator"),
        (lambda: ops.lid_mle(torch.rand(4, 1), "levina"), "k >= 2"),
        (lambda: ops.knn_lid(torch.randn(1, 5, 3), 0, "naslid"), "k >= 2"),
        (lambda: ops.knn_lid(torch.randn(1, 5, 3), 1, "naslid"), "k >= 2"),
        (lambda: ops.lid_profile([], 3, "naslid"), "empty list of Tensors"),  # no tensor to dispatch on
        (lambda: ops.lid_profile([torch.randn(6, 3), torch.randn(7, 3)], 3, "naslid"), "N=7"),
        (lambda: ops.lid_profile([torch.randn(6, 3), torch.randn(6, 3).double()], 3, "naslid"), "dtype"),
    ],
)
def test_op_argument_errors(call, msg):
    # value problems raise ValueError, dtype problems TypeError (TORCH_CHECK_VALUE / _TYPE); the
    # empty list fails in the dispatcher itself (RuntimeError: no tensor to dispatch on)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=msg):
        call()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sequential_path_offset_duplicates_ties(dtype):
    """The per-layer (one set per thread) path: offset data (centring after the Gram-based check),
    exact duplicates and lattice ties, through lid_profile and batched knn."""
    pts = torch.tensor(list(itertools.product(range(-2, 3), repeat=3)), dtype=torch.float64) + 1000
    base = _relu_bn_features(40, 300, 8, torch.float64) + 20.0
    dup = torch.cat([base, base[:4]])
    feats = [pts.to(dtype), dup.to(dtype), (pts * 0.5).to(dtype)]
    feats = [f[: len(dup)].contiguous() for f in feats]  # same N for every layer
    prof = ops.lid_profile(feats, 7, "naslid")
    for l, f in enumerate(feats):
        ref = knn_lid_oracle(f, 7, "naslid", lid_cap(dtype))
        torch.testing.assert_close(prof[l].double(), ref, rtol=TOL[dtype] * 10, atol=0)
    assert prof[1, 0] == 0 and prof[1, 40] == 0
    x = torch.stack([feats[0], feats[2]]).contiguous()
    d, i = ops.knn(x, x, 7, True)
    od, oi = knn_oracle(x, x, 7, True)
    assert torch.equal(d.double(), od) and torch.equal(i, oi)


def test_ops_accept_non_contiguous_input():
    """Layout is not a rule (one rule set for CPU and CUDA): a transposed view gives the result of
    its contiguous copy."""
    x = torch.randn(1, 4, 12).transpose(1, 2)  # (1, 12, 4), non-contiguous
    assert not x.is_contiguous()
    d, i = ops.knn(x, x, 3, True)
    xc = x.contiguous()
    d0, i0 = ops.knn(xc, xc, 3, True)  # the same tensor twice: the symmetric path, like (x, x)
    assert torch.equal(d, d0) and torch.equal(i, i0)
    assert torch.equal(ops.knn_lid(x, 3, "naslid"), ops.knn_lid(x.contiguous(), 3, "naslid"))
    assert torch.equal(ops.lid_profile([x[0]], 3, "naslid"), ops.lid_profile([x[0].contiguous()], 3, "naslid"))
    s = torch.rand(6, 8).sort(1).values[:, ::2]  # (6, 4) sorted rows, non-contiguous
    assert not s.is_contiguous()
    assert torch.equal(ops.lid_mle(s, "naslid"), ops.lid_mle(s.contiguous(), "naslid"))
