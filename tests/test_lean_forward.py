"""The lean supernet forwards (in-place node sums and residual adds, nodes dropped after their last
consumer: spaces/base.add_into, nb201_ops.cell_forward) against the plain forward they replace,
re-implemented here as the oracle: bit-identical outputs in float64, and identical gradients and
BatchNorm running statistics after a training step (in-place ops must not corrupt autograd)."""
from __future__ import annotations

import copy

import pytest
import torch

from naslid.spaces import get_space
from naslid.spaces import mobile_blocks
from naslid.spaces import cell_blocks as nb201_ops
from naslid.spaces.base import add_into


def _plain_cell_forward(x, edge_fn):
    nodes = [x]
    for i in (1, 2, 3):
        total = None
        for j in range(i):
            y = edge_fn(f"edge_{i}_{j}", nodes[j])
            total = y if total is None else total + y
        nodes.append(total)
    return nodes[3]


def _plain_add_into(total, y, inputs=()):
    return total + y


@pytest.fixture
def plain(monkeypatch):
    """A context in which the spaces run the plain forward (out-of-place sums, all nodes kept)."""

    class _Plain:
        def __enter__(self):
            monkeypatch.setattr(nb201_ops, "cell_forward", _plain_cell_forward)
            monkeypatch.setattr(nb201_ops, "add_into", _plain_add_into)
            monkeypatch.setattr(mobile_blocks, "add_into", _plain_add_into)

        def __exit__(self, *exc):
            monkeypatch.undo()

    return _Plain()


def _nb201_archs():
    ops = nb201_ops.NB201_OPS
    keys = nb201_ops.NB201_EDGE_KEYS
    gen = torch.Generator().manual_seed(3)
    archs = [dict.fromkeys(keys, "skip_connect"), dict.fromkeys(keys, "none"),
             dict(zip(keys, ["skip_connect", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none",
                             "nor_conv_1x1"]))]
    archs += [{k: ops[int(torch.randint(len(ops), (1,), generator=gen))] for k in keys} for _ in range(2)]
    return archs


def _run(net, x, train: bool):
    """Output, gradients of every parameter and the BN running stats after one forward/backward."""
    net.train(train)
    net.zero_grad(set_to_none=True)
    xx = x.clone().requires_grad_(train)
    out = net(xx)
    grads = {}
    if train:
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        grads["input"] = xx.grad.clone()
    stats = {n: b.clone() for n, b in net.named_buffers()}
    return out.detach(), grads, stats


def _compare(space, archs, x, plain):
    torch.manual_seed(0)
    net = space.build_supernet().double()
    for arch in archs:
        net.set_arch(arch)
        for train in (False, True):
            ref_net = copy.deepcopy(net)
            with plain:
                want = _run(ref_net, x, train)
            got = _run(net, x, train)
            assert torch.equal(got[0], want[0])  # bit-identical in float64
            assert got[1].keys() == want[1].keys()
            for n in want[1]:
                assert torch.equal(got[1][n], want[1][n]), n
            for n in want[2]:
                assert torch.equal(got[2][n], want[2][n]), n


def test_nb201_lean_forward_is_bit_identical_with_the_same_gradients(plain):
    space = get_space("nb201", C=4, N=2, input_size=8)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _compare(space, _nb201_archs(), x, plain)


@pytest.mark.parametrize("name", ["proxyless", "ofa"])
def test_mobile_lean_forward_is_bit_identical_with_the_same_gradients(plain, name):
    space = get_space(name, num_classes=5, input_size=32, width=0.35, dropout=0.0)
    gen = torch.Generator().manual_seed(2)
    archs = [space.sample(None, gen)]
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _compare(space, archs, x, plain)


def test_add_into_only_writes_into_fresh_results():
    a = torch.randn(4)
    b = torch.randn(4)
    want = a + b
    # an input (identity op): never written; the other operand, fresh, takes the sum
    a0 = a.clone()
    fresh = b.clone()
    out = add_into(a, fresh, (a,))
    assert torch.equal(out, want) and torch.equal(a, a0) and out is fresh
    out = add_into(a, b, (a, b))
    assert torch.equal(out, want) and torch.equal(a, a0) and out is not a and out is not b
    # a fresh result: written in place
    t = a.clone()
    out = add_into(t, b)
    assert out is t and torch.equal(out, want)
    # promotion or broadcasting: out of place, exactly total + y
    h = a.clone().to(torch.float16)
    out = add_into(h, b, (b,))
    assert out.dtype == torch.float32 and torch.equal(out, h.float() + b)
    s = torch.zeros(1)
    out = add_into(s, b, (b,))
    assert out.shape == (4,) and torch.equal(out, b) and s.shape == (1,)
    # a view or a leaf that requires grad: out of place
    base = a.clone()
    v = base[:2]
    out = add_into(v, b[:2], (b,))
    assert torch.equal(base, a)
    leaf = a.clone().requires_grad_(True)
    out = add_into(leaf, b, (b,))
    assert torch.equal(leaf.detach(), a)
