"""The real CUDA kernels of naslid_ext (torch.ops.naslid.* on CUDA tensors) against a float64 oracle.

Skipped (not failed) where no GPU is visible or the build has no CUDA kernels. Without a GPU the
same kernel code is tested through the grid emulator in tests/test_cuda_emulated.py.
"""
from __future__ import annotations

import pytest
import torch

try:
    from naslid_ext import _C
except ImportError as exc:  # pragma: no cover - depends on the build
    pytest.skip(f"naslid_ext._C not importable: {exc}", allow_module_level=True)

if not torch.cuda.is_available():
    pytest.skip("no CUDA device visible (torch.cuda.is_available() is False)", allow_module_level=True)
if not _C.built_with_cuda():
    pytest.skip("naslid_ext._C was built without CUDA kernels (NASLID_CUDA=0 or no nvcc)",
                allow_module_level=True)

from oracle import knn_oracle, lid_oracle  # noqa: E402
from test_cuda_emulated import _rel, _relu_features  # noqa: E402

ops = torch.ops.naslid
DEV = torch.device("cuda")
LID_RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [(1, 37, 37, 9, 5, True), (2, 45, 45, 7, 20, True),
                                  (2, 30, 77, 5, 1, False), (1, 300, 1100, 33, 20, False)])
def test_knn_cuda_matches_oracle(case, dtype):
    B, N, M, D, k, exclude = case
    g = torch.Generator().manual_seed(N + k)
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64).to(dtype)
    y = x if exclude else torch.randn(B, M, D, generator=g, dtype=torch.float64).to(dtype)
    xd = x.to(DEV)
    yd = xd if exclude else y.to(DEV)
    d, i = ops.knn(xd, yd, k, exclude)
    od, oi = knn_oracle(x, y, k, exclude)
    assert torch.equal(i.cpu(), oi)
    assert _rel(d.cpu(), od) < (1e-12 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tf32", [False, True])
def test_knn_lid_cuda_matches_oracle(dtype, tf32):
    x = _relu_features(1, 256, 2048, dtype, seed=3)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        lid = ops.knn_lid(x.to(DEV), 20, "naslid").cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    od, _ = knn_oracle(x, x, 20, True)
    assert _rel(lid, lid_oracle(od, "naslid")) < LID_RTOL[dtype]


def test_lid_profile_cuda_matches_oracle():
    g = torch.Generator().manual_seed(4)
    N = 128
    feats = [torch.relu(torch.randn(N, *s, generator=g) + 0.2) for s in [(16, 8, 8), (32, 4, 4), (5,)]]
    prof = ops.lid_profile([f.to(DEV) for f in feats], 20, "naslid").cpu()
    for layer, f in enumerate(feats):
        x = f.reshape(1, N, -1)
        od, _ = knn_oracle(x, x, 20, True)
        assert _rel(prof[layer], lid_oracle(od[0], "naslid")) < 1e-4


@pytest.mark.parametrize("estimator", ["naslid", "levina"])
def test_lid_mle_cuda_matches_oracle(estimator):
    g = torch.Generator().manual_seed(2)
    s = (torch.rand(5, 300, 20, generator=g, dtype=torch.float64) + 0.01).sort(-1).values
    lid = ops.lid_mle(s.to(DEV), estimator).cpu()
    assert _rel(lid, lid_oracle(s, estimator)) < 1e-10


def test_cuda_agrees_with_emulator_bitwise():
    """The GPU runs the same phases as the emulator; float64 distances agree to the last bits."""
    emu = pytest.importorskip("naslid_ext._emu")
    x = torch.randn(2, 90, 17, dtype=torch.float64)
    d, i = ops.knn(x.to(DEV), x.to(DEV), 20, True)
    ed, ei = emu.knn(x, x, 20, True)
    assert torch.equal(i.cpu(), ei)
    assert _rel(d.cpu(), ed) < 1e-13


def test_cuda_runs_on_current_stream_and_device():
    s = torch.cuda.Stream()
    x = torch.randn(1, 64, 8, device=DEV)
    with torch.cuda.stream(s):
        lid = ops.knn_lid(x, 5, "naslid")
    s.synchronize()
    assert lid.device == x.device and torch.isfinite(lid).all()
