"""Shared fixtures and input factories for the naslid tests (benchmarks may import them too).

Factories are plain functions; tests reach them through the `factories` fixture or, like the skip
helpers, with `from conftest import ...` (tests/ is on sys.path under pytest's default import mode).
The search-driver fixtures (`one_thread`, `nb201_bench`) are at the end; plain helpers shared by
several test files (the micro run, MAC counting, random weights) are in tests/helpers.py.
"""
from __future__ import annotations

import getpass
import os
import tempfile
import types

import pytest
import torch

# Inductor's on-disk caches do not key on ATEN_CPU_CAPABILITY: C++ generated for 16-lane AVX-512
# vectors by one run, then compiled under ATEN_CPU_CAPABILITY=avx2 (8 lanes) by a run that emulates
# an AVX2-only CPU, sums half of each reduction (seen in test_compile). One cache per capability.
if os.environ.get("ATEN_CPU_CAPABILITY") and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}_{os.environ['ATEN_CPU_CAPABILITY'].lower()}")


# --------------------------------------------------------------------------------------------------
# Input factories
# --------------------------------------------------------------------------------------------------
def ball_sample(n: int, d: int, ambient: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """n points uniform in the unit d-ball, embedded by a random rotation in `ambient` dims: (n, ambient)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = z / z.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1.0 / d)
    q, _ = torch.linalg.qr(torch.randn(ambient, d, generator=g, dtype=torch.float64))  # (ambient, d)
    return (z @ q.T).to(dtype)


def bn_relu_features(
    n: int = 64,
    widths: tuple[int, ...] = (8, 16, 16, 32),
    hw: int = 16,
    seed: int = 0,
    dtype=torch.float32,
) -> list[torch.Tensor]:
    """Realistic layer outputs: ReLU(BN(conv3x3)) of a small random conv net on random images.

    Layer l has widths[l] channels; every second layer halves the resolution (stride 2). BN uses the
    batch statistics (training mode), as in a supernet forward. Returns L tensors (n, C_l, H_l, W_l),
    non-negative with many exact zeros, like NB201 cell outputs.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, hw, hw, generator=g)
    feats = []
    c_in = 3
    with torch.no_grad():
        for i, c in enumerate(widths):
            w = torch.randn(c, c_in, 3, 3, generator=g) * (2.0 / (9 * c_in)) ** 0.5
            stride = 2 if i % 2 == 1 else 1
            x = torch.nn.functional.conv2d(x, w, stride=stride, padding=1)
            x = torch.nn.functional.batch_norm(x, None, None, training=True)
            x = torch.relu(x)
            feats.append(x.to(dtype))
            c_in = c
    return feats


def big_bn_relu_feature(n: int = 32, channels: int = 30, hw: int = 50, seed: int = 1) -> torch.Tensor:
    """One ReLU(BN(conv)) layer output with D = channels*hw*hw = 75,000 features: (n, 30, 50, 50)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, hw, hw, generator=g)
    w = torch.randn(channels, 3, 3, 3, generator=g) * (2.0 / 27) ** 0.5
    with torch.no_grad():
        y = torch.relu(torch.nn.functional.batch_norm(torch.nn.functional.conv2d(x, w, padding=1), None, None, training=True))
    return y


@pytest.fixture
def factories():
    """The input factories of this module as a namespace."""
    return types.SimpleNamespace(
        ball_sample=ball_sample, bn_relu_features=bn_relu_features, big_bn_relu_feature=big_bn_relu_feature
    )


# --------------------------------------------------------------------------------------------------
# The float64 oracle (tests/oracle.py, independent naive loops) and the extension's state
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def oracle():
    """tests/oracle.py (knn_oracle(x, y, k, exclude_self), lid_oracle(sqdist, estimator))."""
    import oracle as mod

    return mod


def ext_has(op: str, device: str = "cpu") -> bool:
    """Whether torch.ops.naslid.<op> has a kernel for `device` in the current build."""
    from naslid_ext import _ops

    return _ops.has_kernel(op, device)


def skip_without_ext(op: str, device: str = "cpu"):
    """pytest.mark.skipif for cases that need the compiled `op` kernel on `device`."""
    return pytest.mark.skipif(
        not ext_has(op, device), reason=f"naslid_ext._C has no {device} kernel for naslid::{op} in this build"
    )


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True




# --------------------------------------------------------------------------------------------------
# Shared fixtures of the search-driver tests
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny tensors: more threads only add contention on a
    busy 2-core machine (measured: 194 s with 2 threads vs ~25 s with 1 under load). Restored
    afterwards. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def nb201_bench():
    """(NB201Space(), the real NB201 CIFAR-10 benchmark that `naslid data nb201` builds); skipped
    without it."""
    from naslid.groundtruth.table import load_csv_benchmark
    from naslid.spaces.nb201 import NB201Space

    from helpers import SHARED_DATA

    path = SHARED_DATA / "nb201_cifar10_valid.csv"
    if not path.is_file():
        pytest.skip(f"{path.name} absent (`naslid data nb201` builds it): real-benchmark tests skipped")
    space = NB201Space()
    return space, load_csv_benchmark(path, space)
