"""The CUDA kernels of naslid_ext, executed on the CPU by the grid emulator (`naslid_ext._emu`).

`naslid_ext._emu` runs the kernels' host+device phase functions (csrc/include/naslid/cuda/) over
the whole grid (every block, every thread, phase by phase) through the same host pipeline as the
CUDA ops, with at::bmm on CPU in place of cuBLAS. Compared here with the float64 oracle of
tests/oracle.py: k-NN indices exactly (ties to the lower index), squared distances and LID to
1e-10 (float64) / 1e-4 (float32).

Skips when `naslid_ext._emu` is not built, or is older than its sources (it is built by
`pip install --no-build-isolation -e .`);
set NASLID_EMU_JIT=1 to JIT-compile the current csrc/emu sources instead (1-3 min).
"""
from __future__ import annotations

import os
import pathlib

import pytest
import torch
from oracle import knn_oracle, lid_oracle

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_emu():
    """naslid_ext._emu; with NASLID_EMU_JIT=1 a JIT build of the current csrc/emu sources instead.

    Returns (module, None) or (None, the ImportError).
    """
    if os.environ.get("NASLID_EMU_JIT") != "1":
        try:
            from naslid_ext import _emu
        except ImportError as exc:
            return None, exc
        sources = list((ROOT / "csrc" / "emu").glob("*.cpp")) + list(
            (ROOT / "csrc" / "include" / "naslid").rglob("*.h"))
        newest = max((p.stat().st_mtime for p in sources), default=0.0)
        if os.path.getmtime(_emu.__file__) < newest:
            return None, ImportError(
                f"{_emu.__file__} is older than its sources in csrc/ (a stale build cannot test them)")
        return _emu, None
    from torch.utils.cpp_extension import load

    mod = load(
        name="naslid_emu_jit",
        sources=[str(p) for p in sorted((ROOT / "csrc" / "emu").glob("*.cpp"))],
        extra_include_paths=[str(ROOT / "csrc" / "include")],
        extra_cflags=["-O2"],
    )
    return mod, None


_EMU, _EMU_ERROR = _load_emu()


@pytest.fixture(scope="module")
def emu():
    if _EMU is None:
        pytest.skip(
            f"naslid_ext._emu (the CUDA grid emulator) is not usable ({_EMU_ERROR}); (re)build the package "
            "with `pip install --no-build-isolation -e .` or set NASLID_EMU_JIT=1"
        )
    return _EMU


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs() / b.double().abs().clamp_min(1e-300)).max().item()


def _relu_features(B, N, D, dtype, seed):
    """BN+ReLU-like features: non-negative, large common mean, many exact zeros."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    z = z + 0.5 * torch.randn(B, 1, D, generator=g, dtype=torch.float64)  # shared structure
    return torch.relu(z + 0.3).to(dtype)


LID_RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}
DIST_RTOL = {torch.float32: 1e-6, torch.float64: 1e-12}

# (B, N, M, D, k, exclude_self, threads, gram_budget): threads 0 = the CUDA launch's choice;
# N never a multiple of the block size; gram_budget small -> several row chunks (launches).
KNN_CASES = [
    (1, 37, 37, 9, 5, True, 0, 0),
    (2, 45, 45, 7, 20, True, 8, 200),
    (2, 30, 77, 5, 1, False, 16, 0),
    (1, 50, 130, 3, 20, False, 4, 300),
    (2, 21, 21, 11, 19, True, 1, 0),  # k = N - 2: the largest valid k; one thread per block
    (1, 40, 40, 13, 5, True, 64, 0),  # more threads than columns
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", KNN_CASES, ids=lambda c: "B{}N{}M{}D{}k{}ex{}T{}g{}".format(*c))
def test_knn_matches_oracle(emu, case, dtype):
    B, N, M, D, k, exclude, threads, budget = case
    g = torch.Generator().manual_seed(N * 31 + k)
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64).to(dtype)
    y = x if exclude else torch.randn(B, M, D, generator=g, dtype=torch.float64).to(dtype)
    (d, i), st = emu.knn(x, y, k, exclude, threads=threads, gram_budget=budget, stats=True)
    od, oi = knn_oracle(x, y, k, exclude)
    assert d.dtype == dtype and i.dtype == torch.int64 and d.shape == (B, N, k)
    assert torch.equal(i, oi)
    assert _rel(d, od) < DIST_RTOL[dtype]
    assert st["blocks"] == B * N  # one block per query row, over all launches
    plan = emu.plan(B, N, M, D, k, exclude, dtype == torch.float64, False, threads, budget)
    chunks = -(-N // plan["rows_per_chunk"]) * -(-B // plan["batches_per_chunk"])
    assert st["launches"] == chunks


def test_several_chunks_and_blocks_really_run(emu):
    """The multi-block / multi-launch paths are exercised (not just planned)."""
    x = torch.randn(2, 45, 7, dtype=torch.float64)
    _, st = emu.knn(x, x, 20, True, threads=8, gram_budget=200, stats=True)
    assert st["launches"] == 2 * 12  # rows_per_chunk = 200 // 45 = 4 -> 12 chunks per set
    assert st["blocks"] == 90
    # scan + 3 merge rounds + 2 * ceil(K / (T / G)) exact phases + rank: K = 40, T = G = 8
    assert st["max_phases_per_block"] == 1 + 3 + 2 * 40 + 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ties_go_to_lower_index_and_duplicates_kept(emu, dtype):
    """Lattice points: many exactly equal distances and duplicates; self excluded by index."""
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, (2, 41, 3), generator=g).to(dtype)  # 27 sites, 41 points: duplicates
    for k in (1, 5, 20):
        d, i = emu.knn(x, x, k, True, threads=8)
        od, oi = knn_oracle(x, x, k, True)
        assert torch.equal(i, oi)
        assert torch.equal(d.double(), od)  # integer distances: exact
        assert not (i == torch.arange(41)[None, :, None]).any()  # never itself
    # a duplicated point sees its twin at distance 0
    d, i = emu.knn(x, x, 1, True, threads=8)
    dup = (od[..., 0] == 0)
    assert dup.any() and (d[..., 0][dup] == 0).all()


@pytest.mark.parametrize("order", [1, 2])
def test_thread_order_does_not_matter(emu, order):
    """Each phase only reads what earlier phases wrote: any thread order gives identical bits."""
    x = _relu_features(2, 53, 19, torch.float32, seed=5)
    ref = emu.knn(x, x, 20, True, threads=16, gram_budget=500)
    got = emu.knn(x, x, 20, True, threads=16, gram_budget=500, order=order, seed=7)
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
    ref_l = emu.knn_lid(x, 20, "naslid", threads=16)
    got_l = emu.knn_lid(x, 20, "naslid", threads=16, order=order, seed=11)
    assert torch.equal(ref_l, got_l)


def test_launch_plan(emu):
    """Block size follows the work: ~M/8 threads for the scan, more when D makes the exact
    re-computation dominate, halved until the float32 lists fit 48 KiB of shared memory."""
    small = emu.plan(1, 128, 128, 8, 20, True, False, True)
    wide = emu.plan(1, 128, 128, 1024, 20, True, False, True)
    big = emu.plan(1, 1024, 1024, 8, 20, True, False, True)
    assert (small["threads"], wide["threads"], big["threads"]) == (32, 64, 64)
    assert small["K"] == 40 and not wide["global_scratch"] and wide["smem_bytes"] <= 48 * 1024
    assert emu.plan(1, 10, 10, 8, 5, True, False, True)["K"] == 9  # capped by the candidates


def test_global_scratch_path(emu):
    """Lists too large for shared memory move to a global workspace: same results."""
    x = torch.randn(1, 70, 6, dtype=torch.float64)
    plan = emu.plan(1, 70, 70, 6, 20, True, True, False, 0, 0, 1024)
    assert plan["global_scratch"] and plan["threads"] == 32
    d, i = emu.knn(x, x, 20, True, smem_limit=1024)
    od, oi = knn_oracle(x, x, 20, True)
    assert torch.equal(i, oi) and _rel(d, od) < 1e-12


def test_large_k_uses_global_scratch(emu):
    """k = 100 in float64: the candidate lists exceed 48 KiB even at 32 threads -> global workspace."""
    x = torch.randn(1, 130, 5, dtype=torch.float64)
    plan = emu.plan(1, 130, 130, 5, 100, True, True, False)
    assert plan["global_scratch"] and plan["K"] == 129
    d, i = emu.knn(x, x, 100, True)
    od, oi = knn_oracle(x, x, 100, True)
    assert torch.equal(i, oi) and _rel(d, od) < 1e-12


def test_non_contiguous_input(emu):
    x = torch.randn(2, 6, 33, dtype=torch.float64).transpose(1, 2)  # (2, 33, 6), strided
    y = torch.randn(2, 9, 50, dtype=torch.float64).transpose(1, 2)[:, ::2]  # (2, 25, 9), strided
    d, i = emu.knn(x, x, 5, True, threads=8)
    od, oi = knn_oracle(x, x, 5, True)
    assert torch.equal(i, oi) and _rel(d, od) < 1e-12
    x9 = torch.randn(2, 9, 40, dtype=torch.float64).transpose(1, 2)  # (2, 40, 9)
    d, i = emu.knn(x9, y, 5, False, threads=8)
    od, oi = knn_oracle(x9, y, 5, False)
    assert torch.equal(i, oi) and _rel(d, od) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("estimator", ["naslid", "levina"])
@pytest.mark.parametrize("k", [5, 20])
def test_knn_lid_matches_oracle(emu, dtype, estimator, k):
    x = _relu_features(2, 61, 33, dtype, seed=k)
    lid = emu.knn_lid(x, k, estimator, threads=16, gram_budget=400)
    od, _ = knn_oracle(x, x, k, True)
    assert lid.dtype == dtype and lid.shape == (2, 61)
    assert _rel(lid, lid_oracle(od, estimator)) < LID_RTOL[dtype]


def test_knn_lid_float32_with_tf32_gram(emu):
    """GEMM inputs rounded to TF32 (allow_tf32 on a GPU): candidates + exact re-ranking keep 1e-4."""
    x = _relu_features(1, 128, 1024, torch.float32, seed=1)
    lid = emu.knn_lid(x, 20, "naslid", tf32=True)
    od, _ = knn_oracle(x, x, 20, True)
    assert _rel(lid, lid_oracle(od, "naslid")) < 1e-4


def test_knn_lid_duplicates_finite(emu):
    """A duplicated point has LID 0 (documented limit), never NaN/Inf."""
    x = torch.randn(1, 30, 5, dtype=torch.float32)
    x[0, 7] = x[0, 3]
    lid = emu.knn_lid(x, 5, "naslid")
    assert torch.isfinite(lid).all()
    assert lid[0, 3] == 0 and lid[0, 7] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lid_profile_matches_oracle(emu, dtype):
    """Layers of their own shapes; equal flattened widths share one batched launch."""
    g = torch.Generator().manual_seed(9)
    N = 47
    shapes = [(4, 3, 3), (17,), (36,), (2, 5), (6, 6)]  # D = 36, 17, 36, 10, 36 -> 3 groups
    feats = [torch.relu(torch.randn(N, *s, generator=g, dtype=torch.float64) + 0.2).to(dtype)
             for s in shapes]
    prof, st = emu.lid_profile(feats, 20, "naslid", threads=8, stats=True)
    assert prof.shape == (len(shapes), N) and prof.dtype == dtype
    assert st["launches"] == 3 and st["blocks"] == len(shapes) * N
    for layer, f in enumerate(feats):
        x = f.reshape(N, -1)
        od, _ = knn_oracle(x, x, 20, True)
        assert _rel(prof[layer], lid_oracle(od, "naslid")) < LID_RTOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("estimator", ["naslid", "levina"])
def test_lid_mle_matches_oracle(emu, dtype, estimator):
    g = torch.Generator().manual_seed(2)
    s = (torch.rand(3, 7, 20, generator=g, dtype=torch.float64) + 0.01).sort(-1).values.to(dtype)
    lid, st = emu.lid_mle(s, estimator, threads=4, stats=True)  # 21 rows -> 6 blocks of 4 threads
    assert st["blocks"] == 6 and lid.shape == (3, 7)
    assert _rel(lid, lid_oracle(s, estimator)) < LID_RTOL[dtype]
    # degenerate rows: a zero distance -> 0, equidistant neighbours -> 1/eps of the dtype
    deg = torch.tensor([[0.0, 1.0, 2.0], [2.0, 2.0, 2.0]], dtype=dtype)
    out = emu.lid_mle(deg, estimator)
    assert out[0] == 0 and out[1] == 1.0 / torch.finfo(dtype).eps


def test_lid_mle_grid_stride(emu):
    """More rows than the grid has threads: the grid-stride loop covers the rest."""
    g = torch.Generator().manual_seed(8)
    s = (torch.rand(5000, 3, generator=g, dtype=torch.float64) + 0.1).sort(-1).values
    lid, st = emu.lid_mle(s, "naslid", threads=1, stats=True)
    assert st["blocks"] == 4096  # the grid is capped; rows 4096.. come from the stride
    assert _rel(lid, lid_oracle(s, "naslid")) < 1e-12


def test_knn_lid_equidistant_cap_is_dtype_cap(emu):
    """All neighbours at one distance: the documented finite cap of the input dtype."""
    x = torch.eye(6, dtype=torch.float32)[None]  # every pair at squared distance 2
    lid = emu.knn_lid(x, 4, "naslid")
    assert (lid == 1.0 / torch.finfo(torch.float32).eps).all()


def test_bad_input_messages(emu):
    x = torch.randn(1, 10, 3)
    for k in (9, 10):  # k must be smaller than the 9 candidates (self excluded)
        with pytest.raises(ValueError, match=r"naslid::knn: k must be in \[1, 8\]"):
            emu.knn(x, x, k, True)
    with pytest.raises(ValueError, match="estimator"):
        emu.knn_lid(x, 3, "nope")
    with pytest.raises(ValueError, match="same D"):
        emu.knn(x, torch.randn(1, 10, 4), 3, False)
    with pytest.raises(TypeError, match="float32 or float64"):
        emu.knn(x.long(), x.long(), 3, True)
