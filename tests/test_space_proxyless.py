"""ProxylessNAS space: structure, encodings, masks, sampling, supernet == standalone subnet, MAC
counts against a hook-based counter and against published numbers, reference files."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from helpers import REFERENCE_ARCHS as REF
from helpers import block_fields, hook_macs, randomize
from naslid.spaces import get_space
from naslid.spaces.mobile_blocks import make_divisible
from naslid.spaces.proxyless import MB_CANDIDATES, ZERO, ProxylessSpace, parse_op
from naslid.spaces.taps import FeatureTap

needs_data = pytest.mark.skipif(not REF.is_dir(), reason=f"reference archs not found at {REF}")
pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kw) -> ProxylessSpace:
    return ProxylessSpace(**{"num_classes": 10, "width": 0.25, "input_size": 32, **kw})


# ----- structure -------------------------------------------------------------------------------
def test_decisions_structure():
    sp = ProxylessSpace()
    d = sp.decisions
    assert len(d) == 21
    assert sum(len(c) == 7 for c in d.values()) == 15 and sum(len(c) == 6 for c in d.values()) == 6
    want_keys = [f"s{s}_c{i}" for s, n in enumerate((4, 4, 4, 4, 4, 1)) for i in range(n)]
    assert list(d) == want_keys
    for k, c in d.items():
        assert c[:6] == ("3x3_MBConv3", "3x3_MBConv6", "5x5_MBConv3", "5x5_MBConv6",
                         "7x7_MBConv3", "7x7_MBConv6")
        assert (len(c) == 6) == k.endswith("_c0")
        if len(c) == 7:
            assert c[6] == "Zero"
    # structure fixed by position: the same decisions at a width where channel counts collide
    assert small(width=0.1).decisions == d


def test_make_divisible_rule():
    assert [make_divisible(v) for v in (19.2, 28.8, 33.6, 134.4, 254.8, 1792, 10, 1, 43.2)] == \
        [24, 32, 32, 136, 256, 1792, 16, 8, 40]
    for v in torch.linspace(1, 500, 997).tolist():
        r = make_divisible(v)
        assert r % 8 == 0 and r >= 8 and (r >= 0.9 * v)


def test_widths_published_networks():
    # ProxylessNAS-GPU (proxyless_gpu.config): 40, 24 | 32 56 112 128 256 432 | 1728 = width 1.35
    sp = ProxylessSpace(width=1.35)
    assert (sp.stem_channels, sp.first_channels, sp.stage_widths, sp.last_channels) == \
        (40, 24, (32, 56, 112, 128, 256, 432), 1728)
    # NAS-LID's script: width_mult 1.4, width_stages [30, 40, 80, 96, 182, 320] (base widths)
    sp = ProxylessSpace(width=1.4, stage_widths=(30, 40, 80, 96, 182, 320))
    assert (sp.stem_channels, sp.first_channels, sp.stage_widths, sp.last_channels) == \
        (48, 24, (40, 56, 112, 136, 256, 448), 1792)
    # the head stays 1280 below width 1 (ProxylessNAS's rule)
    assert ProxylessSpace(width=0.5).last_channels == 1280
    assert ProxylessSpace().stage_widths == (24, 40, 80, 96, 192, 320)
    rebuilt = ProxylessSpace(**sp.options)
    assert rebuilt.layers == sp.layers and rebuilt.last_channels == sp.last_channels


def test_parse_op():
    assert [parse_op(o) for o in MB_CANDIDATES] == [(3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6)]
    for bad in ("Zero", "3x5_MBConv3", "3x3_conv", "", None):
        with pytest.raises(ValueError):
            parse_op(bad)


# ----- encodings, masks, sampling --------------------------------------------------------------
def test_string_index_mask_roundtrip():
    sp = small()
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        a = sp.sample(None, g)
        s = sp.arch_to_string(a)
        assert s.count("|") == 5 and sp.arch_from_string(s) == a
        assert sp.arch_at(sp.index_of(a)) == a
    assert sp.index_of(sp.arch_at(0)) == 0 and sp.arch_at(sp.num_archs() - 1) is not None
    m = sp.full_mask()
    m["s1_c2"] = torch.tensor([1, 0, 0, 0, 0, 0, 1], dtype=torch.bool)
    js = json.dumps(sp.mask_to_json(m))
    back = sp.mask_from_json(js)
    assert all(torch.equal(back[k], m[k]) for k in m)
    assert sp.num_archs(m) == sp.num_archs() // 7 * 2


def test_canonical_key_zero_positions():
    sp = small()
    base = {k: c[0] for k, c in sp.decisions.items()}
    a = dict(base, s0_c1="5x5_MBConv6", s0_c2=ZERO, s0_c3="7x7_MBConv3")
    b = dict(base, s0_c1="5x5_MBConv6", s0_c2="7x7_MBConv3", s0_c3=ZERO)
    c = dict(base, s0_c1=ZERO, s0_c2="5x5_MBConv6", s0_c3="7x7_MBConv3")
    d = dict(base, s0_c1="7x7_MBConv3", s0_c2="5x5_MBConv6", s0_c3=ZERO)  # order differs
    assert sp.canonical_key(a) == sp.canonical_key(b) == sp.canonical_key(c) != sp.canonical_key(d)
    assert sp.arch_to_string(a) != sp.arch_to_string(b)
    # same network: same MACs, params and, with the same weights, the same outputs
    assert sp.count_macs(a) == sp.count_macs(b) and sp.count_params(a) == sp.count_params(b)


def test_num_networks_brute_force():
    sp = small()
    m = sp.full_mask()
    for k in m:  # small mask: stage 0 free over 3 ops, the rest fixed
        if not k.startswith("s0"):
            m[k] = torch.zeros_like(m[k])
            m[k][0] = True
        else:
            m[k] = torch.zeros_like(m[k])
            m[k][[0, 3]] = True
            if len(m[k]) == 7:
                m[k][6] = True
    keys = {sp.canonical_key(dict(zip(sp.decisions, combo)))
            for combo in itertools.product(*[[c for c, b in zip(sp.decisions[k], m[k]) if b]
                                             for k in sp.decisions])}
    assert sp.num_archs(m) == 2 * 3 ** 3
    assert sp.num_networks(m) == len(keys)
    # 2 * (1 + 2 + 4 + 8) would overcount: A,Z,B / A,B,Z / Z,A,B ... coincide
    assert len(keys) == 2 * (1 + 2 + 4 + 8)


def test_sampling_respects_mask_and_is_uniform():
    sp = small()
    m = sp.full_mask()
    m["s2_c1"] = torch.tensor([0, 1, 0, 1, 0, 0, 1], dtype=torch.bool)
    m["s0_c0"] = torch.tensor([1, 0, 0, 0, 0, 1], dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    n = 1200
    counts = {"3x3_MBConv6": 0, "5x5_MBConv6": 0, "Zero": 0}
    for _ in range(n):
        a = sp.sample(m, g)
        assert sp.mask_contains(m, a)
        counts[a["s2_c1"]] += 1
    exp = n / 3
    chi2 = sum((c - exp) ** 2 / exp for c in counts.values())
    assert chi2 < 13.8  # chi-square, 2 dof, p = 0.001


def test_bad_inputs():
    sp = small()
    good = sp.arch_to_string(sp.arch_at(0))
    for s in (good.replace("3x3_MBConv3", "9x9_MBConv3", 1), good + "|3x3_MBConv3",
              good.replace("|", ",", 1), "", good.replace("3x3_MBConv3", "Zero", 1), 42):
        with pytest.raises(ValueError):
            sp.arch_from_string(s)
    a = sp.arch_at(0)
    with pytest.raises(ValueError, match="s0_c0"):
        sp.validate_arch(dict(a, s0_c0="Zero"))  # no Zero at a stage-first layer
    with pytest.raises(ValueError, match="conv_9"):
        sp.validate_arch(dict(a, s1_c1="conv_9"))
    m = sp.full_mask()
    with pytest.raises(ValueError, match="s0_c1"):
        sp.validate_mask(dict(m, s0_c1=torch.zeros(7, dtype=torch.bool)))
    with pytest.raises(ValueError, match="length 6"):
        sp.validate_mask(dict(m, s0_c1=torch.ones(6, dtype=torch.bool)))
    with pytest.raises(ValueError, match="s9_c0"):
        sp.validate_mask(dict(m, s9_c0=torch.ones(6, dtype=torch.bool)))
    for opts in (dict(width=0), dict(width=-1.0), dict(width=float("nan")), dict(width="1"),
                 dict(input_size=16), dict(input_size=0), dict(num_classes=0),
                 dict(in_channels=0), dict(stage_widths=(24, 40)),
                 dict(stage_widths=(24, 40, 80, 96, 192, 0))):
        with pytest.raises(ValueError):
            get_space("proxyless", **opts)
    with pytest.raises(ValueError, match="input_size"):
        sp.count_macs(a, 8)
    net = sp.build_supernet()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="MobileNet.forward"):
        sp.build_subnet(a)(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError):
        sp.arch_at(sp.num_archs())


# ----- networks --------------------------------------------------------------------------------
def test_supernet_equals_standalone_subnet():
    sp = small()
    net = randomize(sp.build_supernet(), seed=3).eval()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 32, 32, generator=g)
    outs = []
    for i in range(3):
        a = sp.sample(None, g)
        if i == 0:
            a.update(s1_c1=ZERO, s3_c3=ZERO)
        net.set_arch(a)
        sub = sp.build_subnet(a, net).eval()
        y, ys = net(x), sub(x)
        torch.testing.assert_close(ys, y, rtol=1e-5, atol=1e-5)
        outs.append(y)
        n_layers = sum(v != ZERO for v in a.values())
        assert len(sub.blocks) == 1 + n_layers
        assert sum(p.numel() for p in sub.parameters()) == sp.count_params(a)
    assert not torch.allclose(outs[0], outs[1])  # different archs compute different functions
    # the subnet owns its weights
    p0 = next(sub.parameters())
    assert all(p0.data_ptr() != p.data_ptr() for p in net.parameters())


def test_forward_backward_small_cpu():
    sp = small()
    net = sp.build_supernet().train()
    a = sp.sample(None, torch.Generator().manual_seed(0))
    a["s2_c2"] = ZERO
    net.set_arch(a)
    x = torch.randn(4, 3, 32, 32)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for layer in net.layers:
        for op, cand in layer.candidates.items():
            has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in cand.parameters())
            assert has_grad == (op == a[layer.key]), (layer.key, op)
    sub = sp.build_subnet(a)
    sub(x).sum().backward()


def test_lid_layers_and_decision_parameters():
    sp = small()
    net = sp.build_supernet().eval()
    layers = net.lid_layers()
    assert len(layers) == sp.num_lid_layers == 23
    outs = []
    hs = [m.register_forward_hook(lambda m, i, o: outs.append(o.shape)) for m in layers]
    net(torch.zeros(2, 3, 32, 32))
    for h in hs:
        h.remove()
    assert len(outs) == 23
    assert outs[-1] == (2, 1280, 1, 1) and outs[1][1] == sp.stage_widths[0]
    own = {id(p) for p in net.decision_parameters("s1_c1")}
    assert own and own.isdisjoint({id(p) for p in net.decision_parameters("s1_c2")})
    shared = net.shared_parameters(exclude="s1_c1")
    assert len(shared) + len(own) == len(list(net.parameters()))
    with pytest.raises(ValueError):
        net.decision_parameters("s7_c0")


def test_feature_tap_leaves_no_hooks():
    sp = small()
    net = sp.build_supernet().eval()
    with FeatureTap(net) as tap:
        net(torch.zeros(3, 3, 32, 32))
    feats = tap.features()
    assert len(feats) == 23 and feats[0].shape[0] == 3
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("width,size", [(0.25, 32), (1.4, 64)])
def test_count_macs_matches_hook_counter(width, size):
    sp = ProxylessSpace(width=width, num_classes=17)
    g = torch.Generator().manual_seed(int(width * 100) + size)
    for _ in range(2):
        a = sp.sample(None, g)
        sub = sp.build_subnet(a)
        assert sp.count_macs(a, size) == hook_macs(sub, size)
        assert sp.count_params(a) == sum(p.numel() for p in sub.parameters())  # analytic vs modules


def test_net_config_round_trip():
    from naslid.spaces.reference import config_space_options, load_net_config, to_net_config

    g = torch.Generator().manual_seed(11)
    for width in (0.25, 1.0, 1.35):
        sp = ProxylessSpace(width=width, num_classes=7)
        for _ in range(5):
            a = sp.sample(None, g)
            cfg = json.loads(json.dumps(to_net_config(sp, a)))
            assert load_net_config(cfg, sp) == a
        if width != 0.25:  # at 0.25 several widths coincide, the width is not identifiable
            assert config_space_options(cfg)[1]["width"] == width


# ----- reference architectures (shared data) ---------------------------------------------------
@needs_data
@pytest.mark.data
@pytest.mark.parametrize("name", ["proxyless_gpu.config",
                                  "GM_ProxylessNAS_split_2_edge_2_3_group_subnetwork_1.config"])
def test_written_config_reproduces_released_file(name):
    from naslid.spaces.reference import load_net_config, space_for_config, to_net_config

    path = REF / name
    cfg = json.loads(path.read_text())
    sp = space_for_config(path)
    ours = to_net_config(sp, load_net_config(path, sp))
    assert block_fields(ours) == block_fields(cfg)
    for k in ("first_conv", "feature_mix_layer", "bn", "classifier"):
        assert ours[k] == cfg[k], k

@needs_data
@pytest.mark.data
def test_proxyless_gpu_published_counts():
    from naslid.spaces.reference import config_space_options, load_net_config, space_for_config

    path = REF / "proxyless_gpu.config"
    assert config_space_options(path) == ("proxyless", {"width": 1.35, "num_classes": 1000, "in_channels": 3})
    sp = space_for_config(path)
    a = load_net_config(path, sp)
    assert sum(v == ZERO for v in a.values()) == 8
    macs, params = sp.count_macs(a, 224), sp.count_params(a)
    # ProxylessNAS paper / model zoo: ProxylessNAS-GPU 465M MACs, 7.1M params
    assert abs(macs / 465e6 - 1) < 0.01 and abs(params / 7.1e6 - 1) < 0.01
    assert macs == hook_macs(sp.build_subnet(a), 224)


@needs_data
@pytest.mark.data
def test_gm_proxyless_config_and_naslid_masks():
    from naslid.spaces.reference import (NASLID_PROXYLESS_OPTIONS, load_naslid_mask,
                                         load_net_config, single_arch, space_for_config)

    path = REF / "GM_ProxylessNAS_split_2_edge_2_3_group_subnetwork_1.config"
    sp = space_for_config(path)
    assert sp.width == 1.0
    a = load_net_config(path, sp)
    cfg = json.loads(path.read_text())
    for (key, *_), blk in zip(sp.layers, cfg["blocks"][1:]):
        c = blk["mobile_inverted_conv"]
        assert a[key] == f"{c['kernel_size']}x{c['kernel_size']}_MBConv{c['expand_ratio']}"
    assert sp.count_macs(a) == hook_macs(sp.build_subnet(a), 224)

    sp14 = get_space("proxyless", **NASLID_PROXYLESS_OPTIONS)
    archs = []
    for v in (1, 2):
        m = load_naslid_mask(REF / f"naslid_proxylessv{v}_mask.json", sp14)
        assert sp14.num_archs(m) == 1
        archs.append(single_arch(sp14, m))
    # v1 and v2 differ only in where stage 0's Zero layer sits: the same network
    assert archs[0] != archs[1]
    assert sp14.canonical_key(archs[0]) == sp14.canonical_key(archs[1])
    assert archs[0]["s0_c0"] == "5x5_MBConv3" and archs[0]["s5_c0"] == "7x7_MBConv6"
    # a full (searchable) mask also loads
    sp14.mask_from_json({k: [1] * len(c) for k, c in sp14.decisions.items()})


@needs_data
@pytest.mark.data
def test_reference_files_that_do_not_fit(tmp_path):
    from naslid.spaces.reference import load_naslid_mask, load_net_config

    sp = ProxylessSpace()
    with pytest.raises(ValueError, match="first_conv"):
        load_net_config(REF / "proxyless_gpu.config", sp)  # width 1.35 network, width 1 space
    with pytest.raises(ValueError, match="ofa"):
        load_net_config(REF / "GM_OFA_split_3_edge_2_group_subnetwork_1_flops_584.config", sp)
    with pytest.raises(ValueError, match="keys"):
        load_naslid_mask(REF / "naslid_ofa_mask.json", sp)
    cfg = json.loads((REF / "GM_ProxylessNAS_split_2_edge_2_3_group_subnetwork_1.config").read_text())
    cfg["blocks"][3]["mobile_inverted_conv"]["kernel_size"] = 9
    with pytest.raises(ValueError, match="9x9_MBConv6"):
        load_net_config(cfg, sp)
    cfg["blocks"] = cfg["blocks"][:10]
    with pytest.raises(ValueError, match="count"):
        load_net_config(cfg, sp)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        load_naslid_mask(bad, sp)
