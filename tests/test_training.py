"""Single-path supernet training (naslid.blocks.supernet_training) and inherited-weight evaluation (naslid.blocks.inherited_eval)."""
from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch

from fake_space import FakeSpace, mask_with
from naslid import data as D
from naslid.spaces import get_space
from naslid.spaces.nb201 import NB201Space
from naslid.blocks.inherited_eval import SubnetEvaluator, evaluate_arch, recalibrate_bn
from naslid.blocks.supernet_training import (OptimConfig, build_optimizer, build_scheduler, make_generator,
                             reinit_parameters, train_epoch)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    """digits at 8x8x3 (192 features), 400 train / 200 valid."""
    return D.load_splits("digits", image_size=8, max_train=400, max_valid=200, seed=0).search_data()


def _setup(seed=0, space=None):
    torch.manual_seed(seed)
    space = space or FakeSpace()
    net = space.build_supernet()
    cfg = OptimConfig(lr=0.2)
    opt = build_optimizer(net, cfg)
    return space, net, cfg, opt


def test_train_epoch_reduces_loss(digits):
    space, net, cfg, opt = _setup()
    loader = D.make_loader(digits, "train", 25, seed=0)
    sched = build_scheduler(opt, cfg, epochs=8, steps_per_epoch=len(loader))
    g = make_generator(0)
    stats = []
    for e in range(8):
        loader.set_epoch(e)
        stats.append(train_epoch(space, net, space.full_mask(), loader, opt, generator=g,
                                 scheduler=sched, grad_clip=cfg.grad_clip))
    assert stats[0]["samples"] == 400 and stats[0]["batches"] == 16
    assert stats[-1]["loss"] < 0.6 * stats[0]["loss"]
    assert stats[-1]["acc"] > 45.0  # chance is 10 %
    assert stats[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine reached eta_min


def test_single_path_sampling_is_uniform_inside_mask(digits):
    space, net, _, opt = _setup()
    mask = mask_with(space, "d1", ("lin", "id"))
    seen = []
    orig = net.set_arch
    net.set_arch = lambda a: (seen.append(dict(a)), orig(a))[1]
    loader = D.make_loader(digits, "train", 4, seed=0)  # 100 batches
    train_epoch(space, net, mask, loader, opt, generator=make_generator(1))
    assert len(seen) == 100
    assert all(a["d1"] in ("lin", "id") for a in seen)
    c0, c1 = Counter(a["d0"] for a in seen), Counter(a["d1"] for a in seen)
    assert set(c0) == {"lin", "tanh", "id"} and set(c1) == {"lin", "id"}
    assert all(15 <= v <= 55 for v in c0.values())  # ~33 each (binomial, p=1/3, n=100)
    assert all(30 <= v <= 70 for v in c1.values())


def test_training_is_deterministic_and_resumable(digits):
    def run(epochs, resume_from=None):
        space, net, cfg, opt = _setup(seed=1)
        loader = D.make_loader(digits, "train", 50, seed=2)
        sched = build_scheduler(opt, cfg, epochs=2, steps_per_epoch=len(loader))
        g = make_generator(3)
        start = 0
        if resume_from is not None:
            net.load_state_dict(resume_from["net"])
            opt.load_state_dict(resume_from["opt"])
            sched.load_state_dict(resume_from["sched"])
            g.set_state(resume_from["gen"])
            start = resume_from["epoch"]
        for e in range(start, epochs):
            loader.set_epoch(e)
            train_epoch(space, net, space.full_mask(), loader, opt, generator=g, scheduler=sched)
        return {"net": copy.deepcopy(net.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
                "sched": sched.state_dict(), "gen": g.get_state(), "epoch": epochs}

    full = run(2)
    again = run(2)
    half = run(1)
    resumed = run(2, resume_from=half)
    for k, v in full["net"].items():
        assert torch.equal(v, again["net"][k]), k
        assert torch.equal(v, resumed["net"][k]), k
    assert not torch.equal(half["net"]["head.weight"], full["net"]["head.weight"])


def test_cosine_schedule_per_batch():
    net = torch.nn.Linear(2, 2)
    cfg = OptimConfig(lr=0.1, eta_min=0.01)
    opt = build_optimizer(net, cfg)
    sched = build_scheduler(opt, cfg, epochs=2, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ref = [0.01 + 0.09 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert lrs == pytest.approx(ref, rel=1e-9)
    g = opt.param_groups[0]
    assert g["momentum"] == 0.9 and g["nesterov"] and g["weight_decay"] == 5e-4


@pytest.mark.parametrize("kw, msg", [
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(momentum=1.0), "momentum"),
    (dict(momentum=0.0), "nesterov"), (dict(weight_decay=-1), "weight_decay"),
    (dict(grad_clip=0), "grad_clip"),
])
def test_optim_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        build_optimizer(torch.nn.Linear(2, 2), OptimConfig(**kw))


def test_scheduler_bad_schedule():
    opt = build_optimizer(torch.nn.Linear(2, 2), OptimConfig())
    with pytest.raises(ValueError, match="epochs"):
        build_scheduler(opt, OptimConfig(), epochs=0, steps_per_epoch=3)


def test_train_epoch_nonfinite_and_bad_mask(digits):
    space, net, _, opt = _setup()
    x = torch.full((4, 3, 8, 8), float("nan"))
    with pytest.raises(FloatingPointError, match="batch 0"):
        train_epoch(space, net, space.full_mask(), [(x, torch.zeros(4, dtype=torch.long))], opt,
                    generator=make_generator(0))
    bad = space.full_mask()
    bad["d0"] = torch.zeros(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="disabled"):
        train_epoch(space, net, bad, [], opt, generator=make_generator(0))
    with pytest.raises(ValueError, match="no batches"):
        train_epoch(space, net, space.full_mask(), [], opt, generator=make_generator(0))


def test_reinit_parameters():
    space, net, _, _ = _setup()
    net.inp[2].running_mean.fill_(3.0)
    before = copy.deepcopy(net.state_dict())
    rng_state = torch.get_rng_state()
    reinit_parameters(net, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG untouched
    after = copy.deepcopy(net.state_dict())
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert torch.equal(after["inp.2.running_mean"], torch.zeros(16))
    net2 = space.build_supernet()
    reinit_parameters(net2, seed=7)
    for k, v in after.items():
        assert torch.equal(v, net2.state_dict()[k]), k


# ------------------------------------------------------------------------------------------------
# evaluation with inherited weights
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(digits):
    space, net, cfg, opt = _setup(seed=4)
    loader = D.make_loader(digits, "train", 25, seed=0)
    g = make_generator(0)
    for e in range(6):
        loader.set_epoch(e)
        train_epoch(space, net, space.full_mask(), loader, opt, generator=g)
    valid = D.fixed_batches(digits, "valid", 100)
    calib = D.fixed_batches(digits, "train", 50, num_batches=2, seed=1)
    return space, net, valid, calib


def test_recalibrate_bn_equals_float64_statistics(trained):
    space, net, _, calib = trained
    net = copy.deepcopy(net)
    arch = {"d0": "lin", "d1": "id", "d2": "tanh"}
    net.set_arch(arch)
    old_mean = net.inp[2].running_mean.clone()
    recalibrate_bn(net, calib)
    assert not net.training
    # oracle: the first BN's input is inp[1](flatten(x)); running stats = average over the
    # calibration batches of the per-batch mean and unbiased variance (equal batch sizes)
    lin = net.inp[1]
    with torch.no_grad():
        feats = [torch.nn.functional.linear(x.flatten(1).double(), lin.weight.double(),
                                            lin.bias.double()) for x, _ in calib]
    mean = torch.stack([f.mean(0) for f in feats]).mean(0)
    var = torch.stack([f.var(0, unbiased=True) for f in feats]).mean(0)
    np.testing.assert_allclose(net.inp[2].running_mean.double().numpy(), mean.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.inp[2].running_var.double().numpy(), var.numpy(), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(old_mean, net.inp[2].running_mean)
    # an inactive candidate's BN is reset (never saw data)
    assert torch.equal(net.blocks["d1"].cands[0][1].running_mean, torch.zeros(16))


def test_evaluate_arch_deterministic_and_side_effect_free(trained):
    space, net, valid, calib = trained
    arch = {"d0": "tanh", "d1": "lin", "d2": "id"}
    state = copy.deepcopy(net.state_dict())
    net.train()
    a = evaluate_arch(space, net, arch, valid, calib_batches=calib)
    b = evaluate_arch(space, net, arch, valid, calib_batches=calib)
    c = evaluate_arch(space, net, arch, valid, bn="batch")
    assert a == b and 0.0 <= a <= 100.0 and a > 30.0  # trained: well above chance
    assert net.training
    for k, v in state.items():
        assert torch.equal(v, net.state_dict()[k]), k
    # "batch": equals an independent forward in train mode (no running stats) on a copy
    ref = copy.deepcopy(net)
    ref.set_arch(arch)
    ref.train()
    with torch.no_grad():
        correct = sum(int((ref(x).argmax(1) == y).sum()) for x, y in valid)
    assert c == pytest.approx(100.0 * correct / 200)
    # "recalibrate": equals a manual reset + cumulative forward + eval on a copy
    ref = copy.deepcopy(net)
    ref.set_arch(arch)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for x, _ in calib:
            ref(x)
        ref.eval()
        correct = sum(int((ref(x).argmax(1) == y).sum()) for x, y in valid)
    assert a == pytest.approx(100.0 * correct / 200)


def test_evaluate_arch_bad_input(trained):
    space, net, valid, calib = trained
    arch = {"d0": "tanh", "d1": "lin", "d2": "id"}
    with pytest.raises(ValueError, match="bn must be"):
        evaluate_arch(space, net, arch, valid, bn="frozen")
    with pytest.raises(ValueError, match="calib_batches"):
        evaluate_arch(space, net, arch, valid)
    with pytest.raises(ValueError, match="no samples"):
        evaluate_arch(space, net, arch, [], bn="batch")
    with pytest.raises(ValueError, match="not one of"):
        evaluate_arch(space, net, {"d0": "conv", "d1": "lin", "d2": "id"}, valid, bn="batch")


def test_subnet_evaluator_uses_the_leaf_containing_the_arch(trained):
    space, net, valid, calib = trained
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.head.weight.neg_()  # a clearly different sub-supernet
    leaves = [(mask_with(space, "d0", ("lin",)), net), (mask_with(space, "d0", ("tanh", "id")), other)]
    ev = SubnetEvaluator(space, leaves, valid, calib_batches=calib)
    a1 = {"d0": "lin", "d1": "lin", "d2": "lin"}
    a2 = {"d0": "id", "d1": "lin", "d2": "lin"}
    assert ev.leaf_index(a1) == 0 and ev.leaf_index(a2) == 1
    assert ev(a1) == evaluate_arch(space, net, a1, valid, calib_batches=calib)
    assert ev(a2) == evaluate_arch(space, other, a2, valid, calib_batches=calib)
    assert ev(a2) != evaluate_arch(space, net, a2, valid, calib_batches=calib)
    assert len(ev.cache) == 2
    only = SubnetEvaluator(space, leaves[:1], valid, bn="batch")
    with pytest.raises(ValueError, match="in no leaf"):
        only(a2)


def test_nb201_train_and_evaluate_smoke():
    space = NB201Space(C=4, N=1, num_classes=10, input_size=8)
    sd = D.load_splits("digits", image_size=8, max_train=64, max_valid=32).search_data()
    torch.manual_seed(0)
    net = space.build_supernet()
    mask = space.full_mask()
    mask["edge_1_0"] = torch.tensor([False, True, True, False, False])
    if hasattr(net, "set_mask"):
        net.set_mask(mask)
    opt = build_optimizer(net, OptimConfig())
    loader = D.make_loader(sd, "train", 32, seed=0)
    out = train_epoch(space, net, mask, loader, opt, generator=make_generator(0))
    assert out["batches"] == 2 and math.isfinite(out["loss"])
    valid = D.fixed_batches(sd, "valid", 32)
    calib = D.fixed_batches(sd, "train", 32, num_batches=1)
    arch = space.sample(mask, make_generator(1))
    acc = evaluate_arch(space, net, arch, valid, calib_batches=calib)
    assert acc == evaluate_arch(space, net, arch, valid, calib_batches=calib)
    assert 0.0 <= acc <= 100.0


def test_fair_archs_cover_every_enabled_candidate_once():
    space = get_space("nb201", C=4, N=1, num_classes=10, input_size=8)
    mask = space.full_mask()
    mask["edge_1_0"] = torch.tensor([False, True, True, False, False])
    archs = space.fair_archs(mask, make_generator(3))
    assert len(archs) == 5  # the largest decision has 5 enabled candidates
    for k, cands in space.decisions.items():
        ops = [a[k] for a in archs]
        allowed = [c for c, m in zip(cands, mask[k].tolist()) if m]
        assert set(ops) == set(allowed)
        if len(allowed) == 5:
            assert sorted(ops) == sorted(allowed)  # each exactly once
        assert all(space.mask_contains(mask, a) for a in archs)


def test_fair_sampling_trains_every_candidate_every_step():
    """Under "fair" every conv candidate of every edge gets a gradient at the first step; under
    "uniform" only the sampled path does."""
    space = get_space("nb201", C=4, N=1, num_classes=10, input_size=8)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    for sampling, want_all in (("fair", True), ("uniform", False)):
        torch.manual_seed(0)
        net = space.build_supernet()
        opt = build_optimizer(net, OptimConfig())
        seen = {}

        def record(m):
            for k in space.decisions:
                seen[k] = [p.grad is not None for p in m.decision_parameters(k)]

        train_epoch(space, net, space.full_mask(), [(x, y)], opt, generator=make_generator(0),
                    sampling=sampling, after_backward=record)
        got_all = all(all(v) for v in seen.values())
        assert got_all == want_all, sampling
    with pytest.raises(ValueError, match="sampling"):
        train_epoch(space, net, space.full_mask(), [(x, y)], opt, generator=make_generator(0),
                    sampling="greedy")
