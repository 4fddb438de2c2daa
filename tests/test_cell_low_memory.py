"""The NB201 cell's low-memory forward without autograd (naslid.spaces.cell_low_memory), against the
plain forward (itself checked against a re-implemented node-sum oracle in test_lean_forward.py):
equal outputs and BatchNorm running statistics in float64 for every op on every edge, in train and
eval mode; close in float32; and a peak of the cell input plus two node tensors, measured with the
CPU allocator's own accounting."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch

from naslid.spaces import get_space
from naslid.spaces.cell_blocks import NB201_EDGE_KEYS, NB201_OPS, NB201Cell, NB201SearchCell, ResNetBasicBlock
from naslid.spaces.batch_norm import batch_norm_
from naslid.spaces.cell_low_memory import AUTO_CHUNKS, low_memory_forward, use_low_memory
from naslid.split import SplitConfig
from naslid.split.vectors import lid_vector
from naslid.studies.peak_memory import measure_peak


def _archs():
    """Every op on every edge (a Latin-square-like cover), each pair of node 2's edges (the order
    the forward picks depends on which of them is a convolution), uniform archs, random archs."""
    archs = [dict.fromkeys(NB201_EDGE_KEYS, o) for o in NB201_OPS]
    for shift in range(len(NB201_OPS)):
        archs.append({k: NB201_OPS[(i + shift) % len(NB201_OPS)] for i, k in enumerate(NB201_EDGE_KEYS)})
    for a, b in itertools.product(NB201_OPS, repeat=2):
        archs.append({**dict.fromkeys(NB201_EDGE_KEYS, "nor_conv_3x3"), "edge_2_0": a, "edge_2_1": b})
    gen = torch.Generator().manual_seed(5)
    archs += [{k: NB201_OPS[int(torch.randint(5, (1,), generator=gen))] for k in NB201_EDGE_KEYS}
              for _ in range(10)]
    return archs


def _randomise_batch_norm(net: torch.nn.Module, seed: int) -> None:
    """Affine parameters and running statistics away from their defaults, so that a wrong use of
    either shows."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=gen, dtype=m.weight.dtype))
                m.bias.copy_(torch.rand(c, generator=gen, dtype=m.bias.dtype) - 0.5)
                m.running_mean.copy_(torch.rand(c, generator=gen, dtype=m.running_mean.dtype))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen, dtype=m.running_var.dtype))


def _forward(net, x, chunks):
    with torch.no_grad(), low_memory_forward(net, chunks):
        return net(x)


@pytest.mark.parametrize("train", [True, False])
def test_search_cell_low_memory_forward_equals_the_plain_forward_float64(train):
    torch.manual_seed(0)
    cell = NB201SearchCell(4).double()
    _randomise_batch_norm(cell, 1)
    x = torch.randn(7, 4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for arch in _archs():
        for k, edge in cell.edges.items():
            edge.active = NB201_OPS.index(arch[k])
        ref, low = copy.deepcopy(cell).train(train), copy.deepcopy(cell).train(train)
        want = _forward(ref, x, 0)
        got = _forward(low, x, 3)  # chunks of 3, 3 and 1 samples
        assert torch.allclose(got, want, rtol=1e-11, atol=1e-12), arch
        for (n, a), (_, b) in zip(ref.named_buffers(), low.named_buffers()):
            if a.dtype == torch.bool or n.endswith("num_batches_tracked"):
                assert torch.equal(a, b), (n, arch)
            else:
                assert torch.allclose(a, b, rtol=1e-11, atol=1e-12), (n, arch)


def test_supernet_low_memory_forward_float64():
    """The whole supernet (stem, cells, reduction blocks, head) through ``set_arch``."""
    torch.manual_seed(0)
    net = get_space("nb201", C=4, N=1, input_size=8).build_supernet().double()
    _randomise_batch_norm(net, 3)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for arch in _archs()[:4]:
        net.set_arch(arch)
        want, got = _forward(copy.deepcopy(net), x, 0), _forward(copy.deepcopy(net), x, 2)
        assert torch.allclose(got, want, rtol=1e-11, atol=1e-12), arch


def test_standalone_cell_low_memory_forward_and_momentum_none():
    """A fixed NB201Cell, BatchNorm with a cumulative average (momentum None) and without running
    statistics: both follow nn.BatchNorm2d's own bookkeeping."""
    arch = dict(zip(NB201_EDGE_KEYS, ["nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_3x3",
                                      "skip_connect", "nor_conv_1x1"]))
    x = torch.randn(5, 6, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for track in (True, False):
        torch.manual_seed(1)
        cell = NB201Cell(arch, 6, track_running_stats=track).double().train()
        for m in cell.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        ref, low = copy.deepcopy(cell), copy.deepcopy(cell)
        for _ in range(2):  # the cumulative average's factor changes per call
            want, got = _forward(ref, x, 0), _forward(low, x, 2)
            assert torch.allclose(got, want, rtol=1e-11, atol=1e-12)
        for (n, a), (_, b) in zip(ref.named_buffers(), low.named_buffers()):
            assert torch.allclose(a.double(), b.double(), rtol=1e-11, atol=1e-12), n


def test_batch_norm_in_place_matches_the_module():
    torch.manual_seed(0)
    for train in (True, False):
        bn = torch.nn.BatchNorm2d(5).double().train(train)
        _randomise_batch_norm(bn, 4)
        ref = copy.deepcopy(bn)
        t = torch.randn(4, 5, 3, 3, dtype=torch.float64)
        want = ref(t)
        with torch.no_grad():
            got = batch_norm_(bn, t.clone())
        assert torch.allclose(got, want, rtol=1e-13, atol=1e-14)
        assert torch.allclose(bn.running_mean, ref.running_mean)
        assert torch.allclose(bn.running_var, ref.running_var)
        assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked)


def test_float32_low_memory_forward_and_lid_vector_are_close():
    torch.manual_seed(0)
    net = get_space("nb201", C=8, N=1, input_size=16).build_supernet()
    x = torch.randn(24, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    arch = dict.fromkeys(NB201_EDGE_KEYS, "nor_conv_3x3")
    net.set_arch(arch)
    net.train()
    want = _forward(copy.deepcopy(net), x, 0)
    got = _forward(copy.deepcopy(net), x, 4)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    lid0 = lid_vector(net, x, k=8, probe_chunks=0)
    lid4 = lid_vector(net, x, k=8, probe_chunks=4)
    assert lid0.shape == lid4.shape == (len(net.lid_layers()),)
    assert torch.allclose(lid4, lid0, rtol=1e-4)


def test_low_memory_forward_only_without_autograd_and_settings_restored():
    torch.manual_seed(0)
    net = get_space("nb201", C=4, N=1, input_size=8).build_supernet()
    net.set_arch(dict.fromkeys(NB201_EDGE_KEYS, "nor_conv_3x3"))
    x = torch.randn(4, 3, 8, 8)
    cells = [m for m in net.modules() if hasattr(m, "low_memory_chunks")]
    assert len(cells) == 5 and all(c.low_memory_chunks == 0 for c in cells)  # 3 cells, 2 reduction blocks
    with low_memory_forward(net, 2):
        assert all(c.low_memory_chunks == 2 for c in cells)
        out = net(x)  # autograd on: the plain forward, which backpropagates
        out.sum().backward()
        assert all(p.grad is not None for p in net.stem.parameters())
    assert all(c.low_memory_chunks == 0 for c in cells)
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="chunks"):
            with low_memory_forward(net, bad):
                pass
    for bad in (-1, "8", 2.0, None):
        with pytest.raises(ValueError, match="probe_chunks: expected 'auto' or an integer >= 0"):
            SplitConfig(probe_chunks=bad)
    assert SplitConfig().probe_chunks == "auto" and SplitConfig(probe_chunks=0).probe_chunks == 0


def test_auto_chunks_only_for_large_inputs():
    """``auto``: 8 chunks from 64 MiB inputs on, the plain forward below; an int: always."""
    cell = NB201Cell(dict.fromkeys(NB201_EDGE_KEYS, "nor_conv_3x3"), 16)
    small = torch.empty(2, 16, 32, 32)
    large = torch.empty(32, 16, 224, 224)  # 98 MiB: NB201's stage-1 cell tensor at 224 px, batch 32
    with torch.no_grad():
        with low_memory_forward(cell, "auto"):
            assert cell.low_memory_chunks == AUTO_CHUNKS == 8
            assert not use_low_memory(cell, small) and use_low_memory(cell, large)
        with low_memory_forward(cell, 3):
            assert use_low_memory(cell, small) and use_low_memory(cell, large)
        with low_memory_forward(cell, 0):
            assert not use_low_memory(cell, large)
    with low_memory_forward(cell, 3):
        assert not use_low_memory(cell, small)  # autograd on


def _cell_peak(arch, chunks, train=True):
    """Peak extra bytes of one stride-1 cell's no-grad forward on a (16, 8, 32, 32) input, in units
    of that cell-sized tensor (512 KiB)."""
    torch.manual_seed(0)
    cell = NB201Cell(arch, 8).train(train)
    x = torch.randn(16, 8, 32, 32)
    tensor = x.numel() * x.element_size()

    def run():
        with torch.no_grad(), low_memory_forward(cell, chunks):
            y = cell(x)
        return y.shape

    return measure_peak(run, "cpu")["peak_extra_bytes"] / tensor


@pytest.mark.parametrize("arch", [
    dict.fromkeys(NB201_EDGE_KEYS, "nor_conv_3x3"),
    dict(zip(NB201_EDGE_KEYS, ["nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_3x3",
                               "skip_connect", "nor_conv_3x3"])),
])
def test_low_memory_cell_peak_is_two_node_tensors_and_chunks(arch):
    """The cell's own extra memory (its input is the caller's): two node tensors plus chunk-sized
    temporaries (8 chunks: an eighth of a tensor each; ReLU, convolution and the
    library's reorders), against at least four for the plain forward."""
    plain = _cell_peak(arch, 0)
    low = _cell_peak(arch, 8)
    assert plain >= 3.5, plain
    assert low <= 2.75, low
    assert _cell_peak(arch, 8, train=False) <= 2.75


@pytest.mark.parametrize("train", [True, False])
def test_reduction_block_low_memory_forward(train):
    """The ResNet reduction block: equal to its plain forward in float64 (BatchNorm buffers too),
    and one output-sized buffer (half the input's size) plus chunks beyond its input."""
    torch.manual_seed(0)
    block = ResNetBasicBlock(4, 8).double().train(train)
    _randomise_batch_norm(block, 7)
    x = torch.randn(5, 4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    ref, low = copy.deepcopy(block), copy.deepcopy(block)
    want, got = _forward(ref, x, 0), _forward(low, x, 2)
    assert got.shape == want.shape == (5, 8, 3, 3)
    assert torch.allclose(got, want, rtol=1e-11, atol=1e-12)
    for (n, a), (_, b) in zip(ref.named_buffers(), low.named_buffers()):
        assert torch.allclose(a.double(), b.double(), rtol=1e-11, atol=1e-12), n

    block = ResNetBasicBlock(8, 16).train(train)
    x = torch.randn(16, 8, 32, 32)
    tensor = x.numel() * x.element_size()

    def peak(chunks):
        def run():
            with torch.no_grad(), low_memory_forward(block, chunks):
                return block(x).shape
        return measure_peak(run, "cpu")["peak_extra_bytes"] / tensor

    assert peak(0) >= 1.4  # the ReLU output, the convolution's and BatchNorm's
    assert peak(8) <= 0.9  # the output (0.5) and chunks
