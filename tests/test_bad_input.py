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


# ============================================================================================
# The search driver: CLI (`naslid search`, `naslid bench-memory`) and Python API (naslid.search,
# SearchConfig). Each bad value: one line naming the argument, exit status 2, before any work
# (no run folder). More CLI cases (names, files, schedules) are in tests/test_cli.py.
# ============================================================================================
from naslid.errors import InputError

CLI_BAD = [
    (["--set", "split.k=1"], ["config.split.k", "k = 1", "naslid"]),
    (["--set", "split.k=1", "--set", "split.lid_estimator=levina"], ["config.split.k", "levina"]),
    (["--set", "split.k=200"], ["config.split.k", "split.batch_size = 128"]),
    (["--set", "split.batch_size=1"], ["config.split.batch_size", "1"]),
    (["--set", "split.repeats=0"], ["config.split.repeats"]),
    (["--set", "split.n_groups=1"], ["config.split.n_groups"]),
    (["--set", "split.n_groups=6"], ["config.split.n_groups", "6 groups", "5 candidates"]),
    (["--set", "split.balanced=maybe"], ["config.split.balanced", "maybe"]),
    (["--set", "threads=0"], ["config.threads", "0"]),
    (["--set", "data.valid_fraction=2"], ["config.data.valid_fraction"]),
    (["--set", "data.batch_size=0"], ["config.data.batch_size"]),
    (["--set", "data.batch_size=100000"], ["config.data.batch_size", "100000"]),
    (["--set", "train.lr=-1"], ["config.train.lr"]),
    (["--set", "search.population=0"], ["config.search.population"]),
    (["--set", "search.parents=1", "--set", "search.crossover=1"], ["config.search.parents"]),
    (["--set", "space.C=0"], ["config.space.C"]),
    (["--set", "seed=abc"], ["config.seed", "abc"]),
    (["--levels", "0"], ["--levels"]),
    (["--warm-start", "/nonexistent/run"], ["warm_start", "/nonexistent/run"]),
    (["--set", "benchmark.top_fraction=0"], ["config.benchmark.top_fraction"]),
]


def _search_cli(capsys, *args):
    from naslid.cli import main

    rc = main(["search", *args])
    cap = capsys.readouterr()
    return rc, cap.err


@pytest.mark.parametrize("args,needles", CLI_BAD, ids=[" ".join(a)[:40] for a, _ in CLI_BAD])
def test_cli_bad_value_one_line_exit_2_no_run_folder(capsys, tmp_path, args, needles):
    out = tmp_path / "out"
    rc, err = _search_cli(capsys, *args, "--out", str(out), "--quiet")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("naslid search: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not out.exists()


def test_cli_resume_with_another_thread_count_is_refused(capsys, tmp_path):
    """The thread count is part of a run's identity (MKL / oneDNN sums depend on it)."""
    from naslid.run.checkpoint import RunFolder
    from naslid.cli import build_parser, resolve_config

    out = tmp_path / "run"
    cfg = resolve_config(build_parser().parse_args(["search", "--out", str(out), "--set", "threads=1"]))
    RunFolder.open(out, cfg.config_hash(), resume=False, threads=1)
    (out / "config.yaml").write_text(cfg.to_yaml())
    rc, err = _search_cli(capsys, "--resume", "--out", str(out), "--set", "threads=2", "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "1 intra-op CPU threads" in err and "would use 2" in err and "--set threads=1" in err


BENCH_BAD = [
    (["--k", "40", "--batch", "8"], ["k=40", "batch"]),
    (["--batch", "1"], ["batch=1"]),
    (["--width", "-1"], ["width=-1"]),
    (["--decision", "nope", "--batch", "4", "--k", "2", "--input-size", "8", "--no-rss"], ["decision='nope'"]),
]


@pytest.mark.parametrize("args,needles", BENCH_BAD, ids=[" ".join(a)[:30] for a, _ in BENCH_BAD])
def test_bench_memory_bad_value_one_line_exit_2(capsys, args, needles):
    from naslid.studies.peak_memory import bench_memory_main

    rc = bench_memory_main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("naslid bench-memory: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


API_BAD = [
    (dict(split={"k": 1}), "config.split.k"),
    (dict(split={"criterion": "entropy"}), "config.split.criterion"),
    (dict(train={"warmup_epochs": [3, 2]}), "config.train.warmup_epochs"),
    (dict(search={"population": -1}), "config.search.population"),
    (dict(data={"dataset": "npz", "data_dir": "/nonexistent.npz"}), "config.data.data_dir"),
    (dict(threads=0), "config.threads"),
    (dict(bogus=1), "bogus"),
]


@pytest.mark.parametrize("overrides,needle", API_BAD, ids=[str(o)[:40] for o, _ in API_BAD])
def test_python_api_bad_value_is_an_input_error(tmp_path, overrides, needle):
    import naslid

    out = tmp_path / "out"
    with pytest.raises(InputError, match=re.escape(needle)) as info:
        naslid.search(out=str(out), quiet=True, **overrides)
    assert "\n" not in str(info.value) and not out.exists()
    assert isinstance(info.value, ValueError)  # API compatibility


def test_checkpoint_errors_are_input_errors():
    from naslid.run.checkpoint import CheckpointError
    from naslid.run.warm_start import WarmStartNotReady

    assert issubclass(CheckpointError, InputError) and issubclass(WarmStartNotReady, InputError)


# --------------------------------------------------------------------- a bug is not bad input
BUG = "Expected more than 1 value per channel when training, got input size torch.Size([1, 8])"


def test_cli_keeps_the_traceback_of_a_bug(capsys, tmp_path, monkeypatch):
    """A ValueError raised inside the run (here BatchNorm's, an hour in) is not the user's fault:
    it propagates (exit status 1 with its traceback when run as a program), never exit 2."""
    from naslid.run import pipeline

    def boom(*a, **k):
        raise ValueError(BUG)

    monkeypatch.setattr(pipeline, "run_search", boom)
    with pytest.raises(ValueError, match="Expected more than 1 value"):
        _search_cli(capsys, "--out", str(tmp_path / "o"), "--quiet")


def test_bench_memory_keeps_the_traceback_of_a_bug(monkeypatch):
    from naslid.studies import peak_memory as memory

    def boom(*a, **k):
        raise ValueError(BUG)

    monkeypatch.setattr(memory, "bench_memory", boom)
    with pytest.raises(ValueError, match="Expected more than 1 value"):
        memory.bench_memory_main(["--no-rss"])


def test_program_exit_status_1_with_traceback_for_a_bug(tmp_path):
    import subprocess

    code = (
        "import sys\n"
        "from naslid.run import pipeline\n"
        "def boom(*a, **k):\n"
        f"    raise ValueError({BUG!r})\n"
        "pipeline.run_search = boom\n"
        "from naslid.cli import main\n"
        f"sys.exit(main(['search', '--out', {str(tmp_path / 'o')!r}, '--quiet']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" in res.stderr and BUG in res.stderr
    assert "naslid search: error" not in res.stderr


SPACES_BAD = [
    (["nb201", "--arch", "|bad|"], ["arch_from_string", "|bad|"]),
    (["nb201", "--opt", "C=x"], ["C must be an int", "'x'"]),
    (["nb201", "--opt", "bogus=1"], ["bogus"]),
]


@pytest.mark.parametrize("args,needles", SPACES_BAD, ids=[" ".join(a)[:30] for a, _ in SPACES_BAD])
def test_cli_spaces_bad_value_one_line_exit_2(capsys, args, needles):
    from naslid.cli import main

    rc = main(["spaces", *args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("naslid spaces: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
