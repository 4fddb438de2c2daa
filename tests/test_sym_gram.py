"""The strip kernels of the symmetric CPU path (csrc/cpu/sym_gram.cpp: FMA micro-kernels;
csrc/cpu/sym_gram_amx.cpp: AMX bfloat16 tiles on three-part splits) against float64 products, the
choice among them (NASLID_CPU_SYRK, torch's CPU capability, ONEDNN_MAX_CPU_ISA, the CPU), and the
whole ops run with each kernel forced, against the float64 oracle.

An AVX-512 CPU runs the AVX2 and AVX-512 kernels (the AVX2 one needs only AVX2 + FMA), an Intel
Xeon with AMX all three; a kernel the CPU lacks is skipped with the CPU's best named.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from naslid_ext import _ops

pytestmark = pytest.mark.skipif(not _ops.ext_loaded(), reason="naslid_ext._C is not built")

ORDER = ["blas", "avx2", "avx512", "amx"]
KERNELS = ["avx2", "avx512", "amx"]
U = 2.0 ** -24


def _tol(kernel: str, d: int) -> float:
    """Error bound relative to |x_r| |x_c|: float32 products summed per lane, then per chunk
    (~ sqrt(D) eps); the AMX kernel also drops the three smallest of its nine bfloat16 part products
    (less than 2^-20 sum |x_d y_d|, naslid/cpu/sym_gram_amx.h)."""
    return 4 * U * max(1.0, math.sqrt(d)) + (16 * U if kernel == "amx" else 0.0)


def _best() -> str:
    return _ops._C.cpu_sym_kernel_supported()


def _need(kernel: str):
    if ORDER.index(kernel) > ORDER.index(_best()):
        pytest.skip(f"this CPU runs at most the {_best()!r} kernel, not {kernel!r}")


# (N, D, rows): rows that are not multiples of the 6- and 4-row tiles, columns that end inside a
# tile and cross the 96/128-column panels, D below one vector, with a tail, over one 1024-feature
# chunk with and without a tail, and rows = 0.
SHAPES = [(1, 1, 1), (2, 3, 1), (7, 5, 7), (13, 16, 5), (33, 17, 33), (50, 1024, 17),
          (61, 1041, 61), (130, 2049, 48), (300, 40, 100), (257, 8, 256), (9, 30, 0), (600, 333, 192)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gram_strip_matches_float64(kernel, shape):
    _need(kernel)
    n, d, rows = shape
    g = torch.Generator().manual_seed(n * 1000 + d)
    x = torch.randn(n, d, generator=g)
    x[::2].relu_()  # half the rows with exact zeros, like ReLU features
    got = _ops._C._gram_strip(x, rows, kernel)
    assert got.shape == (rows, n) and got.dtype == torch.float32
    xd = x.double()
    ref = xd[:rows] @ xd.T
    nrm = xd.norm(dim=1)
    scale = (nrm[:rows, None] * nrm[None, :]).clamp_min(1e-30)
    err = (got.double() - ref).abs() / scale
    assert err.numel() == 0 or float(err.max()) <= _tol(kernel, d)
    diag = got[:, :rows]
    assert torch.equal(diag, diag.T)  # the diagonal block is mirrored: exactly symmetric


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", [(96, 16384, 96), (40, 1040, 33), (7, 2000, 7), (50, 511, 20)],
                         ids=lambda s: "x".join(map(str, s)))
def test_gram_strip_split_among_threads_matches_float64(kernel, shape):
    """The features shared among threads (naslid_ext.lid on one layer): each share's sums added, the
    diagonal block mirrored; shares of whole vectors, a last share with the tail, D under two
    shares (no split)."""
    _need(kernel)
    n, d, rows = shape
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(d)).relu_()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = _ops._C._gram_strip(x, rows, kernel, split=True)
    finally:
        torch.set_num_threads(threads)
    xd = x.double()
    nrm = xd.norm(dim=1)
    err = (got.double() - xd[:rows] @ xd.T).abs() / (nrm[:rows, None] * nrm[None, :]).clamp_min(1e-30)
    assert float(err.max()) <= _tol(kernel, d)
    assert torch.equal(got[:, :rows], got[:, :rows].T)


@pytest.mark.parametrize("value", [1e-13, -1e-30, 3e12, float("nan"), float("inf")],
                         ids=["tiny", "tinier", "huge", "nan", "inf"])
def test_amx_strip_falls_back_to_avx512_outside_its_range(value):
    """AMX flushes denormal bfloat16 parts and products to zero, so a strip with a value outside
    {0} and magnitudes [2^-40, 2^40] (or NaN / inf) is computed by the AVX-512 kernel instead: the
    same bits as that kernel. The same data in range run on AMX: other bits (a different summation),
    so the comparison can tell the two apart."""
    _need("amx")
    x = torch.randn(70, 1500, generator=torch.Generator().manual_seed(5)).relu_()
    inside = _ops._C._gram_strip(x, 70, "amx")
    assert not torch.equal(inside, _ops._C._gram_strip(x, 70, "avx512"))
    x[41, 1234] = value  # in the sixth 256-feature chunk: found while an earlier chunk multiplies
    got = _ops._C._gram_strip(x, 70, "amx")
    want = _ops._C._gram_strip(x, 70, "avx512")
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
    assert torch.equal(got.isnan(), want.isnan())


def test_gram_strip_rejects_bad_arguments():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="kernel must be 'avx2', 'avx512' or 'amx'"):
        _ops._C._gram_strip(x, 2, "sse")
    with pytest.raises(ValueError, match=r"rows \(6\) must be in \[0, N = 5\]"):
        _ops._C._gram_strip(x, 6, "avx2")
    with pytest.raises(ValueError, match="2-D float32"):
        _ops._C._gram_strip(x.double(), 2, "avx2")


def test_gram_strip_names_a_kernel_the_cpu_lacks():
    missing = [k for k in KERNELS if ORDER.index(k) > ORDER.index(_best())]
    if not missing:
        pytest.skip(f"this CPU runs every kernel (best {_best()!r})")
    with pytest.raises(RuntimeError, match=f"kernel '{missing[-1]}' is not available on this CPU"):
        _ops._C._gram_strip(torch.randn(4, 4), 4, missing[-1])


def _run(env_extra: dict, script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NASLID_CPU_SYRK", "ATEN_CPU_CAPABILITY")}
    env.update(env_extra, OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


CHOICE = """
    import torch
    from naslid_ext import _ops
    print(_ops._C.cpu_sym_kernel(), torch.backends.cpu.get_cpu_capability().lower())
"""


@pytest.mark.parametrize(
    "env,want",
    [({}, None), ({"NASLID_CPU_SYRK": "blas"}, "blas"), ({"NASLID_CPU_SYRK": "avx2"}, "avx2"),
     ({"ATEN_CPU_CAPABILITY": "avx2"}, "avx2"), ({"ATEN_CPU_CAPABILITY": "default"}, "blas"),
     ({"NASLID_CPU_SYRK": "avx512"}, "avx512"), ({"NASLID_CPU_SYRK": "amx"}, "amx"),
     ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx512")],
    ids=["default", "syrk-blas", "syrk-avx2", "aten-avx2", "aten-default", "syrk-avx512",
         "syrk-amx", "onednn-no-amx"])
def test_kernel_choice_follows_the_switch_torch_and_the_cpu(env, want):
    """NASLID_CPU_SYRK forces a kernel, torch's CPU capability (ATEN_CPU_CAPABILITY) caps the
    default (AVX512 allows AMX, which has no ATen level), ONEDNN_MAX_CPU_ISA without AMX turns AMX
    off as it does for oneDNN, and a kernel the CPU lacks falls back to its best."""
    got, cap = _run(env, CHOICE).split()
    if want is None:  # the default: torch's capability (in that process), as far as the CPU goes
        want = {"avx512": "amx"}.get(cap, cap) if cap in ORDER else "blas"
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()  # this run's own cap, if any
        if isa not in ("", "ALL") and "AMX" not in isa and "ONEDNN_MAX_CPU_ISA" not in env:
            want = min(want, "avx512", key=ORDER.index)
    if ORDER.index(want) > ORDER.index(_best()):
        want = _best()
    assert got == want


PROFILE = """
    import sys, torch, naslid_ext
    from naslid_ext import _ops
    sys.path.insert(0, sys.argv[1])
    from conftest import bn_relu_features
    if sys.argv[3] == "auto":  # the measured choice (the default)
        assert _ops._C.cpu_kernel_mode() in ("measured", "capability"), _ops._C.cpu_kernel_mode()
    else:
        assert _ops._C.cpu_sym_kernel() == sys.argv[3], _ops._C.cpu_sym_kernel()
    out = {}
    for n in (100, 300):  # one strip of 100 rows; strips of 192 rows
        feats = bn_relu_features(n=n, widths=(8, 16, 16, 32), hw=16, seed=n)
        out[n] = (feats, naslid_ext.lid_profile(feats, 20, backend="ext", reduction="none"),
                  naslid_ext.knn(feats[1].reshape(n, -1), 20, backend="ext"))
    torch.save(out, sys.argv[2])
    print("ok")
"""


@pytest.mark.parametrize("kernel", ["blas", "avx2", "avx512", "amx", "auto"])
def test_ops_with_each_kernel_match_the_float64_oracle(tmp_path, oracle, kernel):
    """lid_profile and self-knn with the kernel forced (or measured, "auto"): the float64 oracle's
    neighbours exactly, and its per-point LID within the float32 contract (1e-4 relative)."""
    if kernel != "auto":
        _need(kernel)
    path = tmp_path / "out.pt"
    _run({"NASLID_CPU_SYRK": kernel}, PROFILE, os.path.dirname(__file__), str(path), kernel)
    for n, (feats, prof, (d, i)) in torch.load(path).items():
        for l, f in enumerate(feats):
            want = oracle.knn_lid_oracle(f.reshape(n, -1), 20, "naslid")
            torch.testing.assert_close(prof[l].double(), want, rtol=1e-4, atol=0)
        od, oi = oracle.knn_oracle(feats[1].reshape(n, -1), feats[1].reshape(n, -1), 20, True)
        assert torch.equal(i, oi)
        torch.testing.assert_close(d.double(), od, rtol=1e-4, atol=1e-6)


TIES = """
    import sys, torch
    from naslid_ext import _ops  # noqa: F401  (registers the ops)
    g = torch.Generator().manual_seed(7)
    out = {}
    for n in (24, 40, 128, 300):  # lists barely longer than k; one strip; strips of 192 rows
        x = torch.randint(0, 3, (n, 256), generator=g).float()  # small integers: exact Gram sums
        x[n // 2:n // 2 + 5] = x[:5]  # exact duplicates (distance 0), one inside the self row's range
        x3 = x.unsqueeze(0)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[(n, threads)] = (x, torch.ops.naslid.knn(x3, x3, 20, True))
    torch.save(out, sys.argv[1])
    print("ok")
"""


@pytest.mark.parametrize("kernel", ["blas", "avx2", "avx512", "amx"])
def test_row_seeding_with_ties_matches_the_brute_force(tmp_path, oracle, kernel):
    """Every row scan into a list that is not full yet selects its cut by bisection over the
    distances' bit patterns (gram_knn.h kth_eligible): on integer points (exact distances, many of
    them equal) with exact duplicates, each kernel forced, on one and two threads, the neighbours
    and distances of the float64 brute force exactly, ties ordered by index."""
    _need(kernel)
    path = tmp_path / "ties.pt"
    assert _run({"NASLID_CPU_SYRK": kernel}, TIES, str(path)) == "ok"
    for (n, threads), (x, (d, i)) in torch.load(path).items():
        od, oi = oracle.knn_oracle(x.double(), x.double(), 20, True)
        assert torch.equal(i[0], oi), (n, threads)
        assert torch.equal(d[0].double(), od), (n, threads)


CACHED = """
    import torch, naslid_ext
    from naslid_ext import _ops
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)).relu()
    naslid_ext.lid(x, 5)
    c = [c for c in naslid_ext.build_info()["cpu"]["choices"] if c["n_class"] == 6 and c["d_class"] == 8]
    print(_ops._C.cpu_kernel_mode(), len(c), c[0]["why"], c[0]["kernel"])
"""


def test_decisions_are_cached_on_disk_when_asked(tmp_path):
    """NASLID_CPU_SYRK_CACHE: the first process measures and appends its decision, the next one
    reads it (the same kernel, why == "cached"); a line for the class decides it (here: the BLAS)."""
    if _best() == "blas":
        pytest.skip("no FMA kernel on this CPU: nothing is measured")
    cache = tmp_path / "kernels.txt"
    env = {"NASLID_CPU_SYRK_CACHE": str(cache)}
    mode, n, why, first = _run(env, CACHED).split()
    assert (mode, n, why) == ("measured", "1", "measured")
    line = cache.read_text().splitlines()
    assert len(line) == 1 and line[0].endswith("\t" + first) and "|par 1|n 6|d 8" in line[0]
    assert _run(env, CACHED).split() == ["measured", "1", "cached", first]
    assert len(cache.read_text().splitlines()) == 1  # a cached decision is not appended again
    cache.write_text(line[0].rsplit("\t", 1)[0] + "\tblas\n")
    assert _run(env, CACHED).split() == ["measured", "1", "cached", "blas"]


SCANS = """
    import torch
    from naslid_ext import _ops  # noqa: F401  (registers the ops)
    g = torch.Generator().manual_seed(3)
    for n, d, ties in ((300, 500, False), (300, 500, True), (128, 96, True), (1000, 200, False)):
        x = torch.randn(n, d, generator=g)
        if ties:  # a coarse grid: many equal distances, decided by index across the scan tasks
            x = torch.randint(0, 3, (n, d), generator=g).float()
        x3 = x.unsqueeze(0)
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append(torch.ops.naslid.knn(x3, x3, 20, True))
        assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1]), (n, d, ties)
    print("same")
"""


def test_split_pass_scans_in_parallel_give_the_sequential_lists():
    """One set on two threads (the split pass: each strip's scans shared among the threads) gives
    bit for bit the lists of the one-thread pass when the strip's features are not split (D < 1024,
    so both passes compute the same Gram tiles with the forced FMA kernel), ties included."""
    if _best() == "blas":
        pytest.skip("no FMA kernel on this CPU: the split pass is not used")
    assert _run({"NASLID_CPU_SYRK": _best()}, SCANS) == "same"
