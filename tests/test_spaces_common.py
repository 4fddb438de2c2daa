"""The SearchSpace contract, checked on every space (nb201, proxyless, ofa) through get_space.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

from naslid.spaces import SPACE_NAMES, SearchSpace, Supernet, get_space
from naslid.spaces.taps import FeatureTap

# small width, 32x32 input, few classes: CPU-scale
SMALL = {
    "nb201": dict(C=4, N=1, num_classes=5, input_size=32),
    "proxyless": dict(width=0.25, num_classes=5, input_size=32),
    "ofa": dict(width=0.25, num_classes=5, input_size=32),
}


def _space(name: str) -> SearchSpace:
    return get_space(name, **SMALL[name])


@pytest.fixture(params=SPACE_NAMES, scope="module")
def space(request) -> SearchSpace:
    return _space(request.param)


def _random_mask(space, gen):
    """Each decision keeps a random non-empty subset of its candidates."""
    mask = {}
    for k, cands in space.decisions.items():
        m = torch.rand(len(cands), generator=gen) < 0.5
        m[int(torch.randint(len(cands), (1,), generator=gen))] = True
        mask[k] = m
    return mask


def test_get_space_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown search space"):
        get_space("darts")


def test_decisions_and_full_mask(space):
    dec = space.decisions
    assert len(dec) > 0
    for key, cands in dec.items():
        assert isinstance(key, str) and len(cands) >= 1 and len(set(cands)) == len(cands)
    full = space.full_mask()
    assert list(full) == list(dec)
    assert all(v.dtype == torch.bool and bool(v.all()) for v in full.values())
    assert space.num_archs() == math.prod(len(c) for c in dec.values())
    assert space.num_archs(full) == space.num_archs()


def test_mask_validation_errors(space):
    full = space.full_mask()
    first = next(iter(full))
    with pytest.raises(TypeError):
        space.validate_mask([1, 0])
    missing = dict(full)
    del missing[first]
    with pytest.raises(ValueError, match="missing"):
        space.validate_mask(missing)
    with pytest.raises(ValueError, match="unknown"):
        space.validate_mask({**full, "no_such_decision": [True]})
    with pytest.raises(ValueError, match="length"):
        space.validate_mask({**full, first: torch.ones(len(full[first]) + 1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="disabled"):
        space.validate_mask({**full, first: torch.zeros(len(full[first]), dtype=torch.bool)})
    with pytest.raises(ValueError):
        space.sample({**full, first: torch.zeros(len(full[first]), dtype=torch.bool)},
                     torch.Generator().manual_seed(0))


def test_mask_json_round_trip(space):
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        mask = _random_mask(space, gen)
        obj = space.mask_to_json(mask)
        assert all(set(v) <= {0, 1} for v in obj.values())
        for back in (space.mask_from_json(json.loads(json.dumps(obj))), space.mask_from_json(json.dumps(obj))):
            assert list(back) == list(mask)
            assert all(torch.equal(back[k], mask[k]) for k in mask)
        assert space.num_archs(mask) == math.prod(int(v.sum()) for v in mask.values())


def test_sampling_respects_mask_and_is_reproducible(space):
    gen = torch.Generator().manual_seed(5)
    mask = _random_mask(space, gen)
    a = [space.sample(mask, torch.Generator().manual_seed(11)) for _ in range(2)]
    assert a[0] == a[1]
    for _ in range(100):
        arch = space.sample(mask, gen)
        assert space.mask_contains(mask, arch)
        assert space.validate_arch(arch) == arch


def test_sampling_is_uniform_chi_square(space):
    # A small mask: two decisions keep 2 and 3 candidates, every other decision one: 6 archs.
    keys = [k for k, c in space.decisions.items() if len(c) >= 3][:2]
    assert len(keys) == 2
    mask = {}
    for k, cands in space.decisions.items():
        m = torch.zeros(len(cands), dtype=torch.bool)
        if k == keys[0]:
            m[[0, len(cands) - 1]] = True
        elif k == keys[1]:
            m[:3] = True
        else:
            m[len(cands) // 2] = True
        mask[k] = m
    assert space.num_archs(mask) == 6
    gen = torch.Generator().manual_seed(1234)
    counts: dict[tuple, int] = {}
    for _ in range(1200):
        arch = space.sample(mask, gen)
        assert space.mask_contains(mask, arch)
        cell = (arch[keys[0]], arch[keys[1]])
        counts[cell] = counts.get(cell, 0) + 1
    assert len(counts) == 6
    _, p = stats.chisquare(list(counts.values()))
    assert p > 1e-3, counts


def test_arch_string_round_trip_and_errors(space):
    gen = torch.Generator().manual_seed(7)
    for _ in range(20):
        arch = space.sample(None, gen)
        s = space.arch_to_string(arch)
        assert space.arch_from_string(s) == arch
        assert isinstance(space.canonical_key(arch), str)
        assert space.canonical_key(arch) == space.canonical_key(dict(arch))
    for bad in ("", "###", s + "|junk"):
        with pytest.raises(ValueError):
            space.arch_from_string(bad)
    first = next(iter(space.decisions))
    with pytest.raises(ValueError):
        space.validate_arch({**arch, first: "no_such_op"})
    with pytest.raises(ValueError):
        space.validate_arch({k: v for k, v in arch.items() if k != first})


def test_builds_runs_forward_backward_and_matches_subnet(space):
    torch.manual_seed(0)
    sup = space.build_supernet()
    assert isinstance(sup, Supernet)
    arch = space.sample(None, torch.Generator().manual_seed(2))
    sup.set_arch(arch)
    sup.train()
    x = torch.randn(2, space.in_channels, 32, 32)
    y = sup(x)
    assert y.shape == (2, space.num_classes)
    y.square().mean().backward()
    grads = [p.grad for p in sup.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    layers = sup.lid_layers()
    assert len(layers) > 0
    with torch.no_grad(), FeatureTap(sup) as tap:
        sup(x)
    assert len(tap.features()) == len(layers)
    assert all(not m._forward_hooks for m in sup.modules())

    sup.eval()
    sub = space.build_subnet(arch, sup).eval()
    with torch.no_grad():
        torch.testing.assert_close(sup(x), sub(x), rtol=1e-5, atol=1e-5)
    assert space.count_params(arch) == sum(p.numel() for p in space.build_subnet(arch).parameters())
    macs = space.count_macs(arch)
    assert isinstance(macs, int) and macs > 0


def test_decision_parameters_exclude_cleanly(space):
    sup = space.build_supernet()
    everything = {id(p) for p in sup.parameters()}
    for key in space.decisions:
        own = {id(p) for p in sup.decision_parameters(key)}
        shared = {id(p) for p in sup.shared_parameters(exclude=key)}
        assert own <= everything and not own & shared and own | shared == everything


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_bad_options(name):
    _space(name)
    for bad in (dict(num_classes=0), dict(input_size=0), dict(in_channels=0), dict(width=-1.0)):
        with pytest.raises(ValueError):
            get_space(name, **{**SMALL[name], **bad})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['no_such_option'\]"):
        get_space(name, no_such_option=1)


def test_describe_space(space):
    from naslid.spaces.describe import describe_space

    text = describe_space(space.name, **SMALL[space.name])
    n = space.num_archs()
    assert f"architectures: {n:,}" in text if n < 10**12 else f"architectures: {n:.3e}" in text
    assert all(k in text for k in space.decisions)
    arch = space.sample(None, torch.Generator().manual_seed(0))
    text = describe_space(space.name, arch=space.arch_to_string(arch), **SMALL[space.name])
    assert space.arch_to_string(arch) in text
    assert f"params: {space.count_params(arch):,}" in text
    assert f"{space.count_macs(arch):,}" in text
    with pytest.raises(ValueError):
        describe_space(space.name, arch="garbage", **SMALL[space.name])


def test_describe_nb201_reference_arch():
    from naslid.spaces.describe import describe_space

    s = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    text = describe_space("nb201", arch=s)
    assert "architectures: 15,625" in text and "index: 15474" in text
    assert "params: 802,426 (0.802426 M)" in text
