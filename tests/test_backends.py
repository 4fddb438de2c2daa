"""All backends ("ext", "torch", "faiss") give the same k-NN and LID; backend selection; the Python
mirror of lid_math.h equals the compiled lid_mle; the torch backend's blocking and tie handling."""
from __future__ import annotations

import pytest
import torch

import naslid_ext
from conftest import ext_has, faiss_available
from naslid_ext import _lid_math, _ops
from naslid_ext.backends import ext_backend, torch_backend

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
ALL = [
    "torch",
    pytest.param("faiss", marks=needs_faiss),
    pytest.param("ext", marks=pytest.mark.skipif(not ext_has("knn"), reason="no CPU kernel for naslid::knn in this build")),
]


def _reference(x, k, y, exclude_self):
    """float64 brute force with ties to the lower index (stable sort), (B, N, D) or (N, D)."""
    yy = x if y is None else y
    d = ((x.double().unsqueeze(-2) - yy.double().unsqueeze(-3)) ** 2).sum(-1)
    if exclude_self:
        n = d.shape[-1]
        d = d + torch.diag(torch.full((n,), float("inf"), dtype=torch.float64))
    dist, idx = torch.sort(d, dim=-1, stable=True)
    return dist[..., :k], idx[..., :k]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "shape_x,shape_y,k",
    [((64, 16), None, 10), ((3, 40, 7), None, 5), ((50, 12), (70, 12), 9), ((2, 30, 5), (2, 45, 5), 44)],
)
def test_knn_backends_agree(backend, dtype, shape_x, shape_y, k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(shape_x, generator=g, dtype=torch.float64).to(dtype)
    y = None if shape_y is None else torch.randn(shape_y, generator=g, dtype=torch.float64).to(dtype)
    d, i = naslid_ext.knn(x, k, y, backend=backend)
    rd, ri = _reference(x, k, y, y is None)
    assert d.dtype == dtype and i.dtype == torch.int64 and d.shape == rd.shape
    assert torch.equal(i, ri)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d.double(), rd, **tol)


@pytest.mark.parametrize("backend", ALL)
def test_duplicates_tying_with_self_are_kept(backend):
    """faiss (and any position-based code) may return a duplicate before the point itself: the
    contract drops the point's own index, never its twin."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(20, 6, generator=g)
    x = torch.cat([base, base, base[:3]])  # every point has >= 1 exact twin
    d, i = naslid_ext.knn(x, 4, backend=backend)
    rd, ri = _reference(x, 4, None, True)
    assert torch.equal(i, ri)
    torch.testing.assert_close(d.double(), rd, rtol=1e-5, atol=1e-6)
    assert not bool((i == torch.arange(x.shape[0])[:, None]).any())


@pytest.mark.parametrize("backend", ALL)
def test_large_tie_groups_go_to_lower_index(backend):
    """A tie group far larger than the candidate margin (60 equal points) still yields the lowest
    indices (the torch/faiss backends redo such rows exactly)."""
    g = torch.Generator().manual_seed(2)
    far = torch.randn(15, 4, generator=g) * 10 + 50
    same = torch.zeros(60, 4)
    x = torch.cat([far[:5], same, far[5:]])  # the 60 equal points are rows 5..64
    d, i = naslid_ext.knn(x, 7, backend=backend)
    rd, ri = _reference(x, 7, None, True)
    assert torch.equal(i, ri)
    torch.testing.assert_close(d.double(), rd, rtol=1e-5, atol=1e-6)  # float32 input
    assert i[5].tolist() == [6, 7, 8, 9, 10, 11, 12]
    assert i[40].tolist() == [5, 6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("estimator", ["naslid", "levina"])
def test_lid_and_profile_backends_agree(factories, backend, estimator):
    feats = factories.bn_relu_features(n=40, widths=(4, 8, 8), hw=8, seed=5, dtype=torch.float64)
    lid_backend = backend
    if backend == "ext" and not (ext_has("knn_lid") and ext_has("lid_profile")):
        pytest.skip("no CPU kernels for naslid::knn_lid / lid_profile in this build")
    ref = torch.stack([naslid_ext.lid(f, 8, estimator=estimator, backend="torch", reduction="none") for f in feats])
    per_layer = torch.stack([naslid_ext.lid(f, 8, estimator=estimator, backend=lid_backend, reduction="none") for f in feats])
    prof = naslid_ext.lid_profile(feats, 8, estimator=estimator, backend=lid_backend, reduction="none")
    torch.testing.assert_close(per_layer, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(prof, ref, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------- backend selection
def test_auto_uses_ext_exactly_when_it_has_a_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(ext_backend, "knn", lambda *a: calls.append("ext") or torch_backend.knn(*a))
    # the default check_finite=True takes the ext kernels' variant that also returns the row norms
    monkeypatch.setattr(ext_backend, "knn_norms", lambda x, y, *a: calls.append("ext") or (
        *torch_backend.knn(x, y, *a), (x * x).sum(-1), (y * y).sum(-1)))
    x = torch.randn(12, 3)
    monkeypatch.setattr(_ops, "has_kernel", lambda op, dev: True)
    naslid_ext.knn(x, 2)
    assert calls == ["ext"]
    monkeypatch.setattr(_ops, "has_kernel", lambda op, dev: False)
    naslid_ext.knn(x, 2)
    assert calls == ["ext"]  # fell back to torch


def test_auto_matches_torch_backend():
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(naslid_ext.lid(x, 6), naslid_ext.lid(x, 6, backend="torch"), rtol=1e-12, atol=0)


# ----------------------------------------------------------------------- the one LID formula, twice
def _degenerate_rows(dtype):
    return torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # all neighbours coincide -> 0
            [0.0, 1.0, 2.0, 3.0],  # one duplicate -> 0
            [2.0, 2.0, 2.0, 2.0],  # equidistant -> cap
            [1.0, 1.0, 1.0, 4.0],
            [0.5, 1.0, 1.5, 1.5],
            [1.0, 1.0, 1.0 + 1e-9, 1.0 + 1e-9],  # nearly equidistant: cap in float32
        ],
        dtype=dtype,
    )


@pytest.mark.skipif(not ext_has("lid_mle"), reason="no CPU kernel for naslid::lid_mle in this build")
@pytest.mark.parametrize("estimator", ["naslid", "levina"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_python_mirror_equals_compiled_lid_mle(estimator, dtype):
    g = torch.Generator().manual_seed(4)
    rnd = torch.rand(200, 20, generator=g, dtype=torch.float64).sort(-1).values.to(dtype)
    for s in (rnd, _degenerate_rows(dtype)):
        mirror = _lid_math.lid_from_sorted_sqdist(s, estimator)
        compiled = torch.ops.naslid.lid_mle(s, estimator)
        assert compiled.dtype == mirror.dtype == dtype
        rtol = 1e-6 if dtype == torch.float32 else 1e-13
        torch.testing.assert_close(mirror, compiled, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_python_mirror_degenerate_values(dtype):
    cap = 1.0 / torch.finfo(dtype).eps
    out = _lid_math.lid_from_sorted_sqdist(_degenerate_rows(dtype), "naslid")
    assert out[0] == 0 and out[1] == 0 and out[2] == cap
    assert bool(torch.isfinite(out).all())
    assert float(out[3]) == pytest.approx(-4 / (3 * 0.5 * torch.log(torch.tensor(0.25, dtype=torch.float64)).item()), rel=1e-6)
    levina = _lid_math.lid_from_sorted_sqdist(_degenerate_rows(dtype), "levina")
    assert levina[1] == 0 and levina[2] == cap
    # levina sums j < k only: s_{k-1} = s_k adds log 1 = 0
    assert float(levina[4]) == pytest.approx(3 / (0.5 * (torch.log(torch.tensor(3.0)) + torch.log(torch.tensor(1.5))).item()), rel=1e-6)


# --------------------------------------------------------------------------- torch backend internals
def test_torch_backend_blocks_give_identical_results(monkeypatch):
    x = torch.randn(2, 57, 9, generator=torch.Generator().manual_seed(5))
    d_one, i_one = naslid_ext.knn(x, 6, backend="torch")
    monkeypatch.setattr(torch_backend, "BLOCK_ELEMS", 100)  # many row blocks and refine blocks
    d_blk, i_blk = naslid_ext.knn(x, 6, backend="torch")
    assert torch.equal(i_one, i_blk)
    torch.testing.assert_close(d_one, d_blk, rtol=1e-6, atol=1e-6)


def test_select_lowest_ties():
    d = torch.tensor([[3.0, 1.0, 1.0, 0.5, 1.0, 1.0, 2.0]])
    assert sorted(torch_backend.select_lowest(d, 3)[0].tolist()) == [1, 2, 3]
    assert sorted(torch_backend.select_lowest(d, 5)[0].tolist()) == [1, 2, 3, 4, 5]
