"""The default finiteness check taken from the kernels' row norms (naslid_ext._validate.norms_verdict,
the private `_*_norms` ops) against the separate-pass check it replaces: the same errors for NaN/Inf
input wherever it sits, the same results as check_finite=False / the raw ops for finite input, and
finite input that overflows (or underflows) the compute dtype still rescaled exactly as before.
Plus `naslid_ext.build_info()`."""
from __future__ import annotations

import json
import re

import pytest
import torch

import naslid_ext
from naslid_ext import _ops
from naslid_ext.backends import ext_backend

pytestmark = pytest.mark.skipif(not _ops.has_kernel("_knn_norms", "cpu"),
                                reason="naslid_ext._C without the _*_norms ops")


def _x(n=40, d=9, seed=0, dtype=torch.float32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_the_default_call_takes_the_fused_path():
    assert ext_backend.fused_check("auto", torch.device("cpu"))
    assert not ext_backend.fused_check("torch", torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_norms_of_the_ops_are_the_squared_norms(dtype):
    x = _x(dtype=dtype).unsqueeze(0)
    want = (x.double() ** 2).sum(-1)
    lid, nrm = torch.ops.naslid._knn_lid_norms(x, 5, "naslid")
    torch.testing.assert_close(nrm.double(), want, rtol=1e-5, atol=0)
    assert torch.equal(lid, torch.ops.naslid.knn_lid(x, 5, "naslid"))
    prof, pn = torch.ops.naslid._lid_profile_norms([x[0], 2 * x[0]], 5, "naslid")
    torch.testing.assert_close(pn.double(), torch.cat([want, 4 * want]), rtol=1e-5, atol=0)
    y = _x(n=30, seed=1, dtype=dtype).unsqueeze(0)
    d, i, xn, yn = torch.ops.naslid._knn_norms(x, y, 4, False)
    d0, i0 = torch.ops.naslid.knn(x, y, 4, False)
    assert torch.equal(d, d0) and torch.equal(i, i0)
    torch.testing.assert_close(yn.double(), (y.double() ** 2).sum(-1), rtol=1e-5, atol=0)
    _, _, sn, sn2 = torch.ops.naslid._knn_norms(x, x, 4, True)
    assert torch.equal(sn, sn2) and sn.data_ptr() != sn2.data_ptr()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("row", [0, 17, 39])
def test_nan_inf_anywhere_gives_the_same_error_as_the_separate_pass(bad, row):
    x = _x()
    x[row, 3] = bad
    x[row, 5] = bad
    pat = r"naslid_ext\.{}: {} of shape \(40, 9\) contains 2 NaN/Inf value\(s\); pass check_finite=False"
    with pytest.raises(ValueError, match=pat.format("lid", "x")):
        naslid_ext.lid(x, 5)
    with pytest.raises(ValueError, match=pat.format("knn", "x")):
        naslid_ext.knn(x, 5)
    with pytest.raises(ValueError, match=pat.format("knn", "y")):
        naslid_ext.knn(_x(seed=3), 5, x)
    with pytest.raises(ValueError, match=pat.format("lid_profile", re.escape("features[1]"))):
        naslid_ext.lid_profile([_x(seed=2), x, x], 5)
    xb = torch.stack([_x(seed=4), x])
    with pytest.raises(ValueError, match=r"naslid_ext\.lid: x of shape \(2, 40, 9\) contains 2 NaN/Inf"):
        naslid_ext.lid(xb, 5, batched=True)


def test_finite_input_gives_the_unchecked_results():
    feats = [_x(seed=s, d=d) for s, d in ((0, 9), (1, 300), (2, 1500))]
    assert torch.equal(naslid_ext.lid_profile(feats, 6, reduction="none"),
                       torch.ops.naslid.lid_profile(feats, 6, "naslid"))
    assert torch.equal(naslid_ext.lid(feats[1], 6, reduction="none"),
                       naslid_ext.lid(feats[1], 6, reduction="none", check_finite=False))
    for a, b in zip(naslid_ext.knn(feats[2], 6), naslid_ext.knn(feats[2], 6, check_finite=False)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("scale", [2.0**100, 2.0**-100, 2.0**62])
def test_overflowing_or_tiny_finite_input_is_rescaled_as_before(scale):
    """Finite float32 points whose squared distances overflow (or underflow): the exact path
    rescales them by a power of two, so their LID is that of the unit-scale points."""
    x = _x(n=50, d=12, seed=7)
    want = naslid_ext.lid(x, 6, reduction="none")
    got = naslid_ext.lid(x * scale, 6, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    prof = naslid_ext.lid_profile([x, x * scale], 6, reduction="none")
    torch.testing.assert_close(prof[1], want, rtol=1e-5, atol=0)


def test_build_info_reports_versions_kernels_and_the_choice():
    x = _x(n=64, d=256, seed=9)
    naslid_ext.lid(x, 5)  # at least one float32 strip-kernel decision
    info = naslid_ext.build_info()
    json.dumps(info)  # JSON-ready
    assert info["version"] == naslid_ext.__version__
    import naslid

    assert naslid.__version__ == naslid_ext.__version__
    assert info["ext_version"] == naslid_ext.__version__  # this build of _C is not stale
    assert info["torch"] == torch.__version__ and info["ext_loaded"] and info["load_error"] is None
    assert set(_ops.OPS) <= set(info["kernels"]["cpu"])
    assert (info["kernels"]["cuda"] != []) == _ops.built_with_cuda()
    assert (info["cuda_archs"] != []) == _ops.built_with_cuda()
    cpu = info["cpu"]
    assert cpu["mode"] in ("measured", "forced", "capability")
    assert cpu["fma_kernels_supported"] in ("blas", "avx2", "avx512", "amx")
    assert cpu["threads"] == torch.get_num_threads()
    if cpu["mode"] == "measured":
        # one decision per class (an earlier call of this process may have made it)
        mine = [c for c in cpu["choices"] if c["n_class"] == 6 and c["d_class"] == 8
                and c["threads"] == torch.get_num_threads()]
        assert len(mine) == len({c["par"] for c in mine}) >= 1
        for c in mine:
            assert 32 < c["n"] <= 64 and 128 < c["d"] <= 256
            assert c["why"] == "measured" and c["kernel"] in c["est_ms"]
            assert "blas" in c["est_ms"] and all(v > 0 for v in c["est_ms"].values())


def test_version_is_written_once():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    hits = [p for p in [root / "setup.py", root / "naslid_ext" / "__init__.py", root / "python" / "naslid" / "_version.py",
                        root / "python" / "naslid" / "__init__.py"]
            if re.search(r"""(__version__|VERSION)\s*=\s*["']\d""", p.read_text())]
    assert hits == []


# ----- lid_mle's default check in the kernel's own pass (`_lid_mle_checked`) -----------------------
def _sorted_sq(n=50, k=8, seed=0, dtype=torch.float32):
    d = torch.rand(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.05
    return d.sort(dim=-1).values.to(dtype)


def _naive_counts(d: torch.Tensor) -> list[int]:
    """Float64 loop over the rows: (rows with NaN/Inf, rows with a negative first entry, unsorted rows)."""
    rows = d.double().reshape(-1, d.shape[-1]).tolist()
    nf = sum(any(v != v or v in (float("inf"), -float("inf")) for v in r) for r in rows)
    neg = sum(r[0] < 0 for r in rows)
    uns = sum(any(not (r[j] >= r[j - 1]) for j in range(1, len(r))) for r in rows)
    return [nf, neg, uns]


@pytest.mark.skipif(not _ops.has_kernel("_lid_mle_checked", "cpu"), reason="naslid_ext._C without _lid_mle_checked")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lid_mle_checked_counts_bad_rows_and_gives_lid_mle(dtype):
    d = _sorted_sq(dtype=dtype)
    out, bad = torch.ops.naslid._lid_mle_checked(d, "naslid")
    assert bad.tolist() == [0, 0, 0]
    assert torch.equal(out, torch.ops.naslid.lid_mle(d, "naslid"))
    d[3, 2] = float("nan")            # non-finite and (NaN breaks the order) unsorted
    d[7, -1] = float("inf")           # non-finite, still sorted
    d[9, 0] = -1.0                    # negative, still sorted
    d[11, 4], d[11, 5] = d[11, 5].item(), d[11, 4].item()  # unsorted
    d[13] = d[13].flip(0)             # unsorted
    _, bad = torch.ops.naslid._lid_mle_checked(d, "levina")
    assert bad.tolist() == _naive_counts(d) == [2, 1, 3]
    _, bad = torch.ops.naslid._lid_mle_checked(d.reshape(5, 10, 8), "naslid")  # batched rows
    assert bad.tolist() == [2, 1, 3]


@pytest.mark.skipif(not _ops.has_kernel("_lid_mle_checked", "cpu"), reason="naslid_ext._C without _lid_mle_checked")
@pytest.mark.parametrize("where,msg", [((0, 3), "NaN/Inf"), ((20, 0), "negative entries"), ((49, 5), "not sorted")])
def test_lid_mle_default_check_raises_the_separate_pass_errors(where, msg):
    d = _sorted_sq()
    d[where] = {"NaN/Inf": float("nan"), "negative entries": -0.5, "not sorted": 9.0}[msg]
    with pytest.raises(ValueError, match=rf"naslid_ext\.lid_mle: sqdist (of shape \(50, 8\) )?.*{msg}"):
        naslid_ext.lid_mle(d)
    good = _sorted_sq(seed=1)
    assert torch.equal(naslid_ext.lid_mle(good), naslid_ext.lid_mle(good, check_finite=False))
    assert torch.equal(naslid_ext.lid_mle(good.half()), naslid_ext.lid_mle(good.half(), check_finite=False))
