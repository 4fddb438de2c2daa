"""torch.library.opcheck on every naslid op (fake vs real kernels, schema, dispatch) and
torch.compile(fullgraph=True) over the public functions, ext and torch backends."""
from __future__ import annotations

import pytest
import torch

import naslid_ext
from conftest import ext_has

G = torch.Generator().manual_seed(0)


def _opcheck_cases():
    x = torch.randn(2, 17, 5, generator=G)
    y = torch.randn(2, 23, 5, generator=G)
    s = torch.rand(3, 11, 6, generator=G).sort(-1).values
    feats = [torch.randn(19, 12, generator=G), torch.randn(19, 7, generator=G).double().float()]
    return [
        ("knn", (x, x, 4, True)),
        ("knn", (x, y, 6, False)),
        ("knn", (x.double(), y.double(), 22, False)),
        ("lid_mle", (s, "naslid")),
        ("lid_mle", (s.double(), "levina")),
        ("knn_lid", (x, 5, "naslid")),
        ("knn_lid", (x.double(), 3, "levina")),
        ("lid_profile", (feats, 4, "naslid")),
        ("lid_profile", ([f.double() for f in feats], 6, "levina")),
    ]


@pytest.mark.parametrize("op,args", _opcheck_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_opcheck_cpu(op, args):
    if not ext_has(op, "cpu"):
        pytest.skip(f"no CPU kernel for naslid::{op} in this build")
    torch.library.opcheck(getattr(torch.ops.naslid, op).default, args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("op,args", _opcheck_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_opcheck_cuda(op, args):
    if not ext_has(op, "cuda"):
        pytest.skip(f"no CUDA kernel for naslid::{op}")
    moved = tuple([t.cuda() for t in a] if isinstance(a, list) else a.cuda() if isinstance(a, torch.Tensor) else a for a in args)
    torch.library.opcheck(getattr(torch.ops.naslid, op).default, moved)


def _backends(op):
    """(naslid backend, torch.compile backend). The torch backend's graph is large: inductor's cold
    compile of it takes about a minute on 2 cores, so the fast suite traces it with aot_eager (dynamo
    + fake tensors + AOT autograd, no codegen) and the inductor variant is marked slow."""
    return [
        pytest.param("ext", "inductor", marks=pytest.mark.skipif(not ext_has(op), reason=f"no CPU kernel for naslid::{op} in this build")),
        ("torch", "aot_eager"),
        pytest.param("torch", "inductor", marks=pytest.mark.slow),
    ]


@pytest.mark.parametrize("backend,compiler", _backends("lid_profile"))
def test_compile_fullgraph_lid_profile(factories, backend, compiler):
    torch._dynamo.reset()
    feats = factories.bn_relu_features(n=32, widths=(4, 8), hw=8)

    def profile(fs):
        return naslid_ext.lid_profile(fs, 6, backend=backend)

    compiled = torch.compile(profile, fullgraph=True, backend=compiler)
    got = compiled(feats)
    torch.testing.assert_close(got, naslid_ext.lid_profile(feats, 6, backend=backend), rtol=1e-5, atol=0)
    assert got.shape == (2,)


@pytest.mark.parametrize("backend,compiler", _backends("knn"))
def test_compile_fullgraph_knn_and_lid(backend, compiler):
    if backend == "ext" and not ext_has("knn_lid"):
        pytest.skip("no CPU kernel for naslid::knn_lid in this build")
    torch._dynamo.reset()
    x = torch.randn(3, 20, 6, generator=G)

    def fn(t):
        d, i = naslid_ext.knn(t, 4, backend=backend)
        return d, i, naslid_ext.lid(t, 4, batched=True, backend=backend), naslid_ext.lid_mle(d)

    got = torch.compile(fn, fullgraph=True, backend=compiler)(x)
    want = fn(x)
    assert torch.equal(got[1], want[1])
    for a, b in zip(got[::2] + got[3:], want[::2] + want[3:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
