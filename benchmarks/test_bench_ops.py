"""Benchmarks of the naslid_ext CPU ops against the other ways to get k-NN MLE LID, in one run.

Run (2 threads, the whole machine; a few minutes):
    pytest benchmarks/test_bench_ops.py --benchmark-enable -p no:cacheprovider -s
The summary table (ms per case and backend, speed-up of ext over the best other backend,
effective GFLOP/s = 2 N^2 D / t, peak extra memory) is printed at the end of the run and written to
$NASLID_BENCH_TABLE when that variable names a file.

Backends (all compute the per-point LID of k = 20 neighbours, self excluded, and its mean):
  ext          torch.ops.naslid.lid_profile / knn_lid (the C++ kernels; no Python validation)
  ext_api      naslid_ext.lid_profile / lid (public API, validation included), when available
  faiss        faiss.knn on numpy arrays (k+1, first column dropped) + vectorised LID
  torch        vectorised torch: ||x||^2 + ||y||^2 - 2 x y^T (addmm), topk, vectorised LID
  naslid_orig  NAS-LID's released recipe: torch.cdist, argsort, a Python loop over the rows
  skdim        scikit-dimension's MLE (fit: its own k-NN), comb="mean"
  floor        X X^T alone (one GEMM per layer, no symmetry): the cost of the distances
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import naslid_ext._C  # noqa: F401  (registers torch.ops.naslid)

try:
    import faiss
except ImportError:  # pragma: no cover
    faiss = None
try:
    import skdim
except ImportError:  # pragma: no cover
    skdim = None

from bench_results import RESULTS

K = 20
NB201_DIMS = [16 * 32 * 32] * 5 + [32 * 16 * 16] * 6 + [64 * 8 * 8] * 6
EPS = 1e-6


def _features(n: int, d: int, seed: int) -> torch.Tensor:
    """BN+ReLU-like features of a 12-dimensional latent: ReLU(standardise(z W + noise)), float32."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 12, generator=g)
    h = z @ torch.randn(12, d, generator=g) + 0.3 * torch.randn(n, d, generator=g)
    h = (h - h.mean(0)) / h.std(0)
    return torch.relu_(h).contiguous()


_CACHE: dict = {}


def case_data(case: str) -> list[torch.Tensor]:
    if case not in _CACHE:
        _CACHE.clear()  # keep one case in memory at a time
        if case.startswith("nb201_"):
            n = int(case.split("N")[1])
            _CACHE[case] = [_features(n, d, seed) for seed, d in enumerate(NB201_DIMS)]
        else:
            n, d = (int(v) for v in case.split("_")[1].split("x"))
            _CACHE[case] = [_features(n, d, 99)]
    return _CACHE[case]


# --------------------------------------------------------------------------------------------------
# Backends: each maps a list of (N, D_l) float32 tensors to the mean LID per layer, float64 numpy (L,)
# --------------------------------------------------------------------------------------------------
def _lid_from_sq(sq: torch.Tensor) -> torch.Tensor:
    """NAS-LID estimator from sorted squared distances (N, k), vectorised."""
    sq = sq.double()
    return -sq.shape[1] / (0.5 * torch.log(sq / sq[:, -1:]).sum(1))


def run_ext(feats):
    if len(feats) == 1:
        return torch.ops.naslid.knn_lid(feats[0][None], K, "naslid")[0].double().mean().reshape(1).numpy()
    return torch.ops.naslid.lid_profile(feats, K, "naslid").double().mean(1).numpy()


def run_ext_api(feats):
    import naslid_ext

    return naslid_ext.lid_profile(feats, K).double().numpy()


def run_faiss(feats):
    out = []
    for f in feats:
        a = f.numpy()
        sq, _ = faiss.knn(a, a, K + 1)
        out.append(float(_lid_from_sq(torch.from_numpy(sq[:, 1:])).mean()))
    return np.array(out)


def run_torch(feats):
    out = []
    for x in feats:
        n = (x * x).sum(1)
        sq = torch.addmm(n[:, None] + n[None, :], x, x.T, alpha=-2.0).clamp_min_(0)
        sq.fill_diagonal_(float("inf"))
        d, _ = sq.topk(K, dim=1, largest=False)
        out.append(float(_lid_from_sq(d).mean()))
    return np.array(out)


def run_naslid_orig(feats):
    """NAS-LID's recipe: Euclidean cdist, argsort, column 0 dropped as self, a loop over rows."""
    out = []
    for x in feats:
        dist = torch.cdist(x, x)
        order = dist.argsort(dim=1)[:, 1 : K + 1]
        lids = []
        for i in range(x.shape[0]):
            r = dist[i, order[i]]
            lids.append(float(-K / (torch.log(r / (r[-1] + EPS)).sum() + EPS)))
        out.append(float(np.mean(lids)))
    return np.array(out)


def run_skdim(feats):
    out = []
    for x in feats:
        est = skdim.id.MLE().fit(x.numpy(), n_neighbors=K, comb="mean")
        out.append(float(est.dimension_) * K / (K - 1))  # Levina form -> NAS-LID form
    return np.array(out)


def run_floor(feats):
    for x in feats:
        torch.mm(x, x.T)
    return None


BACKENDS = {
    "ext": run_ext,
    "ext_api": run_ext_api,
    "faiss": run_faiss,
    "torch": run_torch,
    "naslid_orig": run_naslid_orig,
    "skdim": run_skdim,
    "floor": run_floor,
}
CASES = ["nb201_N128", "nb201_N256", "nb201_N512", "nb201_N1024", "set_4096x512", "set_10000x128"]


def _available(name: str) -> bool:
    if name == "faiss":
        return faiss is not None
    if name == "skdim":
        return skdim is not None
    if name == "ext_api":
        import naslid_ext

        return hasattr(naslid_ext, "lid_profile")
    return True


def _skip_reason(name: str, case: str) -> str | None:
    if not _available(name):
        return f"{name} not available"
    if name == "skdim" and case in ("nb201_N1024", "set_10000x128"):
        return "skdim: minutes per call at this size (its k-NN is sklearn brute force in float64)"
    if name == "naslid_orig" and case == "set_10000x128":
        return "naslid_orig: N x N cdist + argsort + 10^4-iteration Python loop, minutes"
    if name in ("ext_api",) and case.startswith("set_"):
        return None
    return None


# --------------------------------------------------------------------------------------------------
# 1. correctness pass: every backend computes the same mean LID (and ext matches a float64 oracle)
# --------------------------------------------------------------------------------------------------
def test_backends_agree_before_timing():
    feats = [_features(96, d, s) for s, d in enumerate((3000, 700, 64))]
    from_64 = [f.double() for f in feats]
    ref = torch.ops.naslid.lid_profile(from_64, K, "naslid").mean(1).numpy()  # float64 path
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from oracle import knn_lid_oracle

    oracle = np.array([float(knn_lid_oracle(f, K).mean()) for f in from_64])
    np.testing.assert_allclose(ref, oracle, rtol=1e-10)
    for name, fn in BACKENDS.items():
        if name == "floor" or not _available(name):
            continue
        got = fn(feats)
        tol = 1e-3 if name in ("naslid_orig", "skdim") else 1e-4  # eps=1e-6 / float64 k-NN quirks
        np.testing.assert_allclose(got, oracle, rtol=tol, err_msg=name)


# --------------------------------------------------------------------------------------------------
# 2. timings
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bench(benchmark, case, backend):
    reason = _skip_reason(backend, case)
    if reason:
        pytest.skip(reason)
    feats = case_data(case)
    fn = BACKENDS[backend]
    slow = backend in ("naslid_orig", "skdim") or case in ("nb201_N1024",)
    benchmark.group = case
    benchmark.pedantic(fn, args=(feats,), rounds=1 if slow else 5, warmup_rounds=0 if slow else 1,
                       iterations=1)
    n = feats[0].shape[0]
    flops = sum(2.0 * n * n * f.shape[1] for f in feats)
    RESULTS.setdefault(case, {})[backend] = {"ms": benchmark.stats.stats.min * 1e3, "flop": flops}


# --------------------------------------------------------------------------------------------------
# 3. peak extra memory at (10000, 128): VmHWM of a fresh process, minus its RSS just before the call
# --------------------------------------------------------------------------------------------------
_MEM_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch, numpy as np
    import naslid_ext._C
    def rss(tag):
        for line in open('/proc/self/status'):
            if line.startswith(tag):
                return int(line.split()[1]) * 1024
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(10000, 128, generator=g)).contiguous()
    backend = sys.argv[1]
    if backend == 'faiss':
        import faiss
        a = x.numpy()
    before = rss('VmRSS:')
    if backend == 'ext':
        torch.ops.naslid.knn_lid(x[None], 20, 'naslid')
    elif backend == 'faiss':
        faiss.knn(a, a, 21)
    elif backend == 'torch':
        n = (x * x).sum(1)
        sq = torch.addmm(n[:, None] + n[None, :], x, x.T, alpha=-2.0)
        sq.topk(20, dim=1, largest=False)
    print(json.dumps({'peak_extra': rss('VmHWM:') - before}))
    """
)


@pytest.mark.parametrize("backend", ["ext", "faiss", "torch"])
def test_peak_memory_10000x128(backend):
    if not _available(backend):
        pytest.skip(f"{backend} not available")
    out = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, backend], capture_output=True, text=True,
                         timeout=600, check=True)
    peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_extra"]
    RESULTS.setdefault("peak_extra_MB_10000x128", {})[backend] = peak / 2**20
