"""Every bad input of the public API, one by one: the right exception type and a message naming the
function, the argument and the sizes. Never a crash, a hang or a silent NaN."""
from __future__ import annotations

import re
import sys

import pytest
import torch

import naslid_ext
from naslid_ext import _ops

G = torch.Generator().manual_seed(0)
X = torch.randn(10, 3, generator=G)
Y = torch.randn(12, 3, generator=G)


def _nan(t, value=float("nan")):
    t = t.clone()
    t.view(-1)[3] = value
    return t


# ---------------------------------------------------------------------------------------------- knn
@pytest.mark.parametrize("k", [0, -3])
def test_knn_k_below_one(k):
    with pytest.raises(ValueError, match=rf"naslid_ext\.knn: k={k} must be >= 1"):
        naslid_ext.knn(X, k)


@pytest.mark.parametrize("k", [9, 10])
def test_knn_k_not_below_candidates_with_self_excluded(k):
    # docs/ops_api.md: k >= number of candidates (here M-1 = 9) is bad input
    with pytest.raises(ValueError, match=rf"naslid_ext\.knn: k={k} must be smaller .*M-1=9 .*\(10, 3\).*1 <= k <= 8"):
        naslid_ext.knn(X, k)


@pytest.mark.parametrize("k", [12, 13])
def test_knn_k_not_below_references(k):
    with pytest.raises(ValueError, match=rf"naslid_ext\.knn: k={k} must be smaller .*M=12 references .*\(12, 3\)"):
        naslid_ext.knn(X, k, Y)


def test_knn_largest_valid_k():
    sq, idx = naslid_ext.knn(X, 8)
    assert sq.shape == (10, 8) and idx.shape == (10, 8)


@pytest.mark.parametrize("k", [2.0, True, "3"])
def test_knn_k_not_an_int(k):
    with pytest.raises(TypeError, match=r"naslid_ext\.knn: k must be an int"):
        naslid_ext.knn(X, k)


@pytest.mark.parametrize("shape", [(10,), (2, 2, 10, 3)])
def test_knn_wrong_rank(shape):
    with pytest.raises(ValueError, match=rf"naslid_ext\.knn: x must be \(N, D\) or \(B, N, D\), got {len(shape)}-D shape"):
        naslid_ext.knn(torch.randn(shape), 2)


def test_knn_y_rank_differs():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: y must have the rank of x .*\(10, 3\).*\(1, 12, 3\)"):
        naslid_ext.knn(X, 2, Y.unsqueeze(0))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_knn_integer_or_bool_x(dtype):
    with pytest.raises(TypeError, match=rf"naslid_ext\.knn: x must be a floating-point tensor .*{dtype}.*\(10, 3\)"):
        naslid_ext.knn(X.to(dtype), 2)


def test_knn_integer_y():
    with pytest.raises(TypeError, match=r"naslid_ext\.knn: y must be a floating-point tensor .*torch\.int64.*\(12, 3\)"):
        naslid_ext.knn(X, 2, Y.long())


def test_knn_not_a_tensor():
    with pytest.raises(TypeError, match=r"naslid_ext\.knn: x must be a torch\.Tensor, got list"):
        naslid_ext.knn([[0.0, 1.0]], 1)


def test_knn_mismatched_batch():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: x and y must have the same batch size B.*\(2, 10, 3\).*\(3, 12, 3\)"):
        naslid_ext.knn(torch.randn(2, 10, 3), 2, torch.randn(3, 12, 3))


def test_knn_mismatched_features():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: x and y must have the same number of features D.*\(10, 3\).*\(12, 4\)"):
        naslid_ext.knn(X, 2, torch.randn(12, 4))


def test_knn_mismatched_dtype():
    with pytest.raises(TypeError, match=r"naslid_ext\.knn: x and y must have the same dtype.*float32.*float64"):
        naslid_ext.knn(X, 2, Y.double())


def test_knn_mismatched_device():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: x and y must be on the same device.*cpu.*meta"):
        naslid_ext.knn(X, 2, torch.empty(12, 3, device="meta"))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_knn_non_finite_x(value):
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: x of shape \(10, 3\) contains 1 NaN/Inf"):
        naslid_ext.knn(_nan(X, value), 2)


def test_knn_non_finite_y():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: y of shape \(12, 3\) contains 1 NaN/Inf"):
        naslid_ext.knn(X, 2, _nan(Y))


def test_knn_check_finite_false_skips_the_check():
    d, i = naslid_ext.knn(X, 2, _nan(Y, float("inf")), check_finite=False, backend="torch")
    assert d.shape == (10, 2) and i.shape == (10, 2)


@pytest.mark.parametrize("shape", [(0, 3), (10, 0), (0, 0, 3)])
def test_knn_empty_x(shape):
    with pytest.raises(ValueError, match=re.escape(f"naslid_ext.knn: x is empty (shape {shape})")):
        naslid_ext.knn(torch.empty(shape), 1)


def test_knn_empty_y():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: y is empty \(shape \(0, 3\)\)"):
        naslid_ext.knn(X, 1, torch.empty(0, 3))


def test_knn_exclude_self_needs_square():
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: exclude_self=True needs .*N == M.*\(10, 3\).*\(12, 3\)"):
        naslid_ext.knn(X, 2, Y, exclude_self=True)


def test_knn_exclude_self_not_a_bool():
    with pytest.raises(TypeError, match=r"naslid_ext\.knn: exclude_self must be a bool"):
        naslid_ext.knn(X, 2, exclude_self=1)


@pytest.mark.parametrize("backend", ["cuda", "", None, "EXT"])
def test_knn_unknown_backend(backend):
    with pytest.raises(ValueError, match=r"naslid_ext\.knn: backend=.* is not supported; expected one of 'auto', 'ext', 'torch', 'faiss'"):
        naslid_ext.knn(X, 2, backend=backend)


def test_knn_non_contiguous_is_accepted():
    x = torch.randn(3, 10, generator=G).t()  # (10, 3), non-contiguous
    d, i = naslid_ext.knn(x, 2)
    d2, i2 = naslid_ext.knn(x.contiguous(), 2)
    assert torch.equal(i, i2) and torch.equal(d, d2)


# ----------------------------------------------------------------------------------- missing backends
def test_faiss_backend_without_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with pytest.raises(RuntimeError, match=r"naslid_ext\.knn: backend='faiss' needs the faiss package.*pip install faiss"):
        naslid_ext.knn(X, 2, backend="faiss")
    with pytest.raises(RuntimeError, match=r"naslid_ext\.lid: backend='faiss' needs the faiss package"):
        naslid_ext.lid(X, 2, backend="faiss")
    # the other backends do not need faiss
    assert naslid_ext.knn(X, 2, backend="torch")[0].shape == (10, 2)


def test_ext_backend_without_kernel_raises(monkeypatch):
    monkeypatch.setattr(_ops, "has_kernel", lambda op, device_type: False)
    with pytest.raises(RuntimeError, match=r"naslid_ext\.knn: torch\.ops\.naslid\.knn has no kernel for device type 'cpu'"):
        naslid_ext.knn(X, 2, backend="ext")
    with pytest.raises(RuntimeError, match=r"naslid_ext\.lid_profile: torch\.ops\.naslid\.lid_profile has no kernel"):
        naslid_ext.lid_profile([X], 2, backend="ext")
    # "auto" falls back to the torch backend instead
    d, _ = naslid_ext.knn(X, 2, backend="auto")
    torch.testing.assert_close(d, naslid_ext.knn(X, 2, backend="torch")[0])


def test_ext_cuda_tensor_with_a_build_without_cuda(monkeypatch):
    """The message a CUDA tensor gets from a CPU-only build (no GPU needed to check it)."""
    monkeypatch.setattr(_ops, "has_kernel", lambda op, device_type: device_type == "cpu")
    monkeypatch.setattr(_ops, "built_with_cuda", lambda: False)
    with pytest.raises(RuntimeError, match=r"naslid_ext\.knn: got a CUDA tensor \(device cuda:0\) but this build of naslid_ext\._C has no CUDA kernels.*NASLID_CUDA=1"):
        _ops.require_kernel("knn", "knn", torch.device("cuda", 0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.skipif(naslid_ext.built_with_cuda(), reason="this build has CUDA kernels")
def test_ext_cuda_tensor_real():
    with pytest.raises(RuntimeError, match=r"has no CUDA kernels"):
        naslid_ext.knn(X.cuda(), 2, backend="ext")


def test_ext_missing_extension(monkeypatch):
    monkeypatch.setattr(_ops, "_C", None)
    monkeypatch.setattr(_ops, "_LOAD_ERROR", ImportError("undefined symbol: _ZN3c10"))
    with pytest.raises(RuntimeError, match=r"naslid_ext\.knn: backend='ext' needs the compiled extension .*undefined symbol.*pip install --no-build-isolation -e \."):
        naslid_ext.knn(X, 2, backend="ext")
    assert naslid_ext.knn(X, 2)[0].shape == (10, 2)  # auto still works in plain torch


# ------------------------------------------------------------------------------------------ lid_mle
S = torch.rand(5, 4, generator=G).sort(dim=-1).values + 0.1


def test_lid_mle_unknown_estimator():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_mle: estimator='mle' is not supported; expected one of 'naslid', 'levina'"):
        naslid_ext.lid_mle(S, estimator="mle")


@pytest.mark.parametrize("estimator", ["naslid", "levina"])
def test_lid_mle_needs_two_neighbours(estimator):
    # k = 1 carries no information: "naslid" would always give the 1/eps cap, "levina" 0/0
    with pytest.raises(ValueError, match=rf"naslid_ext\.lid_mle: estimator='{estimator}' needs k >= 2 .*\(5, 1\)"):
        naslid_ext.lid_mle(S[:, :1], estimator=estimator)
    assert naslid_ext.lid_mle(S[:, :2], estimator=estimator).shape == (5,)


def test_lid_mle_integer_dtype():
    with pytest.raises(TypeError, match=r"naslid_ext\.lid_mle: sqdist must be a floating-point tensor.*int64.*\(5, 4\)"):
        naslid_ext.lid_mle(S.long())


def test_lid_mle_non_finite():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_mle: sqdist of shape \(5, 4\) contains 1 NaN/Inf"):
        naslid_ext.lid_mle(_nan(S))


def test_lid_mle_negative():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_mle: sqdist of shape \(5, 4\) has negative entries"):
        naslid_ext.lid_mle(S - 1.0)


def test_lid_mle_unsorted():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_mle: sqdist of shape \(5, 4\) is not sorted ascending"):
        naslid_ext.lid_mle(S.flip(-1))


@pytest.mark.parametrize("s", [torch.tensor(1.0), torch.empty(0, 4), torch.empty(3, 0)])
def test_lid_mle_scalar_or_empty(s):
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_mle: sqdist (is empty|must be \(\.\.\., k\))"):
        naslid_ext.lid_mle(s)


# ---------------------------------------------------------------------------------------------- lid
def test_lid_needs_two_points():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: need N >= 2 points .*N=1 .*\(1, 3\)"):
        naslid_ext.lid(X[:1], 1)


def test_lid_batched_needs_two_points_per_set():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: need N >= 2 points .*N=1 .*\(4, 1, 3\).*batched=True"):
        naslid_ext.lid(torch.randn(4, 1, 3), 1, batched=True)


@pytest.mark.parametrize("k", [9, 10, 25])
def test_lid_k_not_below_n(k):
    with pytest.raises(ValueError, match=rf"naslid_ext\.lid: k={k} must be smaller .*N-1=9 other points .*\(10, 3\)"):
        naslid_ext.lid(X, k)


def test_lid_default_k_too_large_for_a_small_set():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: k=20 must be smaller .*N-1=9"):
        naslid_ext.lid(X)


def test_lid_k_below_two():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: k=0 must be >= 2 for estimator='naslid'"):
        naslid_ext.lid(X, 0)
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: k=1 must be >= 2 for estimator='naslid'"):
        naslid_ext.lid(X, 1)


def test_lid_levina_k_one():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: k=1 must be >= 2 for estimator='levina'"):
        naslid_ext.lid(X, 1, estimator="levina")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(estimator="skdim"), r"naslid_ext\.lid: estimator='skdim' is not supported"),
        (dict(reduction="sum"), r"naslid_ext\.lid: reduction='sum' is not supported; expected one of 'mean', 'harmonic', 'median', 'none'"),
        (dict(backend="gpu"), r"naslid_ext\.lid: backend='gpu' is not supported"),
    ],
)
def test_lid_unknown_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        naslid_ext.lid(X, 3, **kwargs)


def test_lid_batched_needs_rank_two():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: batched=True needs x of shape \(B, N, \.\.\.\), got 1-D shape \(10,\)"):
        naslid_ext.lid(torch.randn(10), 3, batched=True)


def test_lid_scalar_input():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: x must be \(N, \.\.\.\), got a 0-D tensor"):
        naslid_ext.lid(torch.tensor(1.0), 1)


def test_lid_integer_dtype():
    with pytest.raises(TypeError, match=r"naslid_ext\.lid: x must be a floating-point tensor.*torch\.bool"):
        naslid_ext.lid(X > 0, 3)


def test_lid_non_finite_and_skip():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: x of shape \(10, 3\) contains 1 NaN/Inf"):
        naslid_ext.lid(_nan(X), 3)
    naslid_ext.lid(_nan(X), 3, check_finite=False, backend="torch")  # no exception: undefined result


def test_lid_empty():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: x is empty \(shape \(10, 0\)\)"):
        naslid_ext.lid(torch.empty(10, 0), 3)


# -------------------------------------------------------------------------------------- lid_profile
def test_profile_empty_list():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: features is empty"):
        naslid_ext.lid_profile([], 3)


def test_profile_tensor_instead_of_list():
    with pytest.raises(TypeError, match=r"naslid_ext\.lid_profile: features must be a list or tuple .*Tensor of shape \(10, 3\)"):
        naslid_ext.lid_profile(X, 3)


def test_profile_mismatched_n():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: every layer must hold the same N samples.*\(10, 3\).*features\[1\] of shape \(12, 3\)"):
        naslid_ext.lid_profile([X, Y], 3)


def test_profile_mixed_devices():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: all features must be on one device.*cpu.*features\[1\] on meta"):
        naslid_ext.lid_profile([X, torch.empty(10, 5, device="meta")], 3)


def test_profile_integer_layer():
    with pytest.raises(TypeError, match=r"naslid_ext\.lid_profile: features\[1\] must be a floating-point tensor.*int32"):
        naslid_ext.lid_profile([X, X.int()], 3)


def test_profile_non_finite_layer():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: features\[2\] of shape \(10, 3\) contains 1 NaN/Inf"):
        naslid_ext.lid_profile([X, X, _nan(X)], 3)


def test_profile_needs_two_samples():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: need N >= 2 samples .*N=1"):
        naslid_ext.lid_profile([X[:1]], 1)


def test_profile_k_too_large():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: k=20 must be smaller .*N-1=9 other samples"):
        naslid_ext.lid_profile([X])


def test_profile_empty_layer():
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: features\[0\] is empty \(shape \(10, 0, 2\)\)"):
        naslid_ext.lid_profile([torch.empty(10, 0, 2)], 3)


@pytest.mark.parametrize("kwargs", [dict(estimator="x"), dict(reduction="max"), dict(backend="numpy")])
def test_profile_unknown_choices(kwargs):
    with pytest.raises(ValueError, match=r"naslid_ext\.lid_profile: \w+='\w+' is not supported"):
        naslid_ext.lid_profile([X], 3, **kwargs)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_finite_check_finds_one_bad_value_anywhere(value, dtype):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(300, 67, generator=g).to(dtype)  # odd sizes: vectorised main loop and tail
    for pos in (0, 1, 17, 4567, x.numel() - 1):
        bad = x.clone()
        bad.view(-1)[pos] = value
        with pytest.raises(ValueError, match=r"naslid_ext\.lid: x of shape \(300, 67\) contains 1 NaN/Inf"):
            naslid_ext.lid(bad, 3)
    big = torch.full((10, 3), 3e38 if dtype != torch.float16 else 6e4).to(dtype)  # finite extremes
    assert naslid_ext.knn(big, 2, backend="torch")[0].shape == (10, 2)


def test_package_imports_and_works_without_the_extension():
    """A missing / ABI-broken _C: import still succeeds with a logged warning, "auto" runs in plain
    torch and "ext" raises RuntimeError with the import error (checked in a fresh interpreter)."""
    import subprocess
    import textwrap

    code = textwrap.dedent(
        """
        import sys, torch
        sys.modules["naslid_ext._C"] = None  # makes `from naslid_ext import _C` raise ImportError
        import naslid_ext
        assert not naslid_ext.ext_loaded() and naslid_ext.load_error() is not None
        x = torch.randn(30, 4, dtype=torch.float64)
        d, i = naslid_ext.knn(x, 3)
        assert d.shape == (30, 3)
        try:
            naslid_ext.lid(x, 3, backend="ext")
        except RuntimeError as e:
            assert "failed to import" in str(e), str(e)
        else:
            raise AssertionError("backend='ext' did not raise")
        print("OK")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("OK")
    assert "naslid_ext._C failed to import" in res.stderr
