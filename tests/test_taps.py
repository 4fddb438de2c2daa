"""FeatureTap: captured features, on-the-fly LID against a float64 oracle, hooks always removed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from naslid.spaces import get_space
from naslid.spaces.taps import FeatureTap

ARCH = {"edge_1_0": "nor_conv_3x3", "edge_2_0": "skip_connect", "edge_2_1": "nor_conv_1x1",
        "edge_3_0": "avg_pool_3x3", "edge_3_1": "nor_conv_3x3", "edge_3_2": "skip_connect"}


def _no_hooks(net: nn.Module) -> bool:
    return all(not m._forward_hooks for m in net.modules())


@pytest.fixture
def supernet():
    torch.manual_seed(0)
    net = get_space("nb201", C=4, N=2).build_supernet()
    net.set_arch(ARCH)
    return net.eval()


def _manual_outputs(net, x):
    """Cell outputs by running the modules by hand (independent of hooks)."""
    outs, h = [], net.stem(x)
    for cell in net.cells:
        h = cell(h)
        outs.append(h)
    return outs


def test_capture_matches_manual_forward(supernet):
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad(), FeatureTap(supernet) as tap:
        assert tap.active and not _no_hooks(supernet)
        supernet(x)
    assert not tap.active and _no_hooks(supernet)
    feats = tap.features()
    with torch.no_grad():
        want = _manual_outputs(supernet, x)
    assert len(feats) == len(supernet.lid_layers()) == 8
    for f, w in zip(feats, want):
        assert not f.requires_grad
        torch.testing.assert_close(f, w, rtol=0, atol=0)
    assert tap.fired == [1] * 8


def test_capture_detaches_with_grad_enabled(supernet):
    supernet.train()
    with FeatureTap(supernet) as tap:
        loss = supernet(torch.randn(4, 3, 16, 16)).sum()
    loss.backward()  # the tap does not interfere with autograd
    assert all(not f.requires_grad for f in tap.features())


def test_hooks_removed_on_exception(supernet):
    with pytest.raises(ValueError, match="divisible by 4"):
        with FeatureTap(supernet):
            supernet(torch.randn(2, 3, 18, 18))
    assert _no_hooks(supernet)
    with pytest.raises(ZeroDivisionError):
        with FeatureTap(supernet):
            1 / 0
    assert _no_hooks(supernet)


def test_fired_twice_raises_and_reset_allows_reuse(supernet):
    x = torch.randn(2, 3, 16, 16)
    tap = FeatureTap(supernet)
    with pytest.raises(RuntimeError, match="second time"):
        with tap, torch.no_grad():
            supernet(x)
            supernet(x)
    assert _no_hooks(supernet)
    tap.reset()
    with tap, torch.no_grad():
        supernet(x)
    assert len(tap.features()) == 8


def test_layer_that_did_not_fire_raises(supernet):
    unused = nn.ReLU()
    with torch.no_grad(), FeatureTap(list(supernet.lid_layers()) + [unused]) as tap:
        supernet(torch.randn(2, 3, 16, 16))
    with pytest.raises(RuntimeError, match=r"layers \[8\].*did not fire"):
        tap.features()
    assert _no_hooks(supernet) and not unused._forward_hooks


def test_bad_targets(supernet):
    with pytest.raises(TypeError):
        FeatureTap(3)
    with pytest.raises(ValueError, match="empty"):
        FeatureTap([])
    with pytest.raises(ValueError, match="twice"):
        FeatureTap([supernet.stem, supernet.stem])
    with pytest.raises(ValueError, match="reduce"):
        FeatureTap(supernet, reduce="pca")
    with pytest.raises(RuntimeError, match="reduces on the fly"):
        FeatureTap(supernet, reduce=lambda f: f.sum()).features()
    with pytest.raises(RuntimeError, match="captures"):
        FeatureTap(supernet).lid_vector()


def _naive_lid(feats: torch.Tensor, k: int) -> float:
    """Float64 NAS-LID MLE, written out: -k / sum_j log(r_j / r_k) over the k nearest others, mean."""
    x = feats.reshape(feats.shape[0], -1).to(torch.float64).numpy()
    n = x.shape[0]
    lids = []
    for i in range(n):
        d = np.sqrt(((x - x[i]) ** 2).sum(axis=1))
        others = sorted(d[j] for j in range(n) if j != i)[:k]
        lids.append(-k / sum(np.log(r / others[-1]) for r in others))
    return float(np.mean(lids))


def test_callable_reducer_gives_per_layer_values(supernet):
    x = torch.randn(24, 3, 16, 16)
    k = 5
    with torch.no_grad(), FeatureTap(supernet, reduce=lambda f: torch.tensor(_naive_lid(f, k))) as tap:
        supernet(x)
    with torch.no_grad(), FeatureTap(supernet) as cap:
        supernet(x)
    want = torch.tensor([_naive_lid(f, k) for f in cap.features()], dtype=torch.float64)
    got = tap.lid_vector()
    assert got.shape == (8,)
    torch.testing.assert_close(got.to(torch.float64), want)
    assert len(set(want.tolist())) > 1


def test_lid_reduce_matches_float64_oracle():
    torch.manual_seed(1)
    net = get_space("nb201", C=4, N=1).build_supernet()
    net.set_arch(ARCH)
    net.train()  # batch-statistics BN, as in a split step
    x = torch.randn(32, 3, 16, 16)
    k = 10
    with torch.no_grad(), FeatureTap(net, reduce="lid", k=k) as tap:
        net(x)
    with torch.no_grad(), FeatureTap(net) as cap:
        net(x)
    assert _no_hooks(net)
    got = tap.lid_vector()
    assert got.shape == (5,) and torch.isfinite(got).all()
    want = torch.tensor([_naive_lid(f, k) for f in cap.features()], dtype=torch.float64)
    torch.testing.assert_close(got.to(torch.float64), want, rtol=1e-4, atol=0)


def test_standalone_network_is_tappable():
    space = get_space("nb201", C=4, N=1)
    net = space.build_subnet(ARCH).eval()
    with torch.no_grad(), FeatureTap(net) as tap:
        net(torch.randn(2, 3, 8, 8))
    assert [tuple(f.shape[1:]) for f in tap.features()] == [(4, 8, 8), (8, 4, 4), (8, 4, 4),
                                                            (16, 2, 2), (16, 2, 2)]
