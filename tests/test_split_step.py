"""split_step end to end on a tiny fake space and a tiny NB201 supernet (CPU, fast)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from naslid.split import SplitConfig, SplitRecord, similarity_matrix, split_step

from split_fakes import FakeSpace, FakeSupernet, make_batches, naive_lid


def _setup(seed=0):
    torch.manual_seed(seed)
    space = FakeSpace()
    net = FakeSupernet()
    return space, net


def _run(space, net, cfg, seed=7, batches=None, mask=None):
    batches = batches if batches is not None else make_batches(cfg.repeats, b=24)
    return split_step(space, net, mask or space.full_mask(), batches, cfg,
                      generator=torch.Generator().manual_seed(seed))


def _assert_children_partition_parent(space, rec, parent):
    parent = space.validate_mask(parent)
    kids = rec.child_mask_tensors(space)
    assert len(kids) == rec.config["n_groups"]
    d = rec.chosen
    for k in space.decisions:
        if k == d:
            stack = torch.stack([m[k] for m in kids]).int()
            assert torch.equal(stack.sum(0).bool(), parent[k])      # union = parent
            assert int(stack.sum(0).max()) == 1                      # disjoint
            assert all(bool(m[k].any()) for m in kids)               # non-empty
        else:
            assert all(torch.equal(m[k], parent[k]) for m in kids)   # others unchanged


def _captured_lid(space, net, d, rec, batches, k):
    """Independent oracle: forward hooks capture every LID layer's output on the recorded paths;
    float64 naive LID; average over repeats."""
    ops = rec.decisions[d].ops
    out = torch.zeros(len(ops), len(net.lid_layers()), dtype=torch.float64)
    net.train()
    for r, path in enumerate(rec.decisions[d].paths):
        for i, o in enumerate(ops):
            arch = dict(path)
            arch[d] = o
            net.set_arch(arch)
            feats = []
            hooks = [m.register_forward_hook(lambda m, a, y: feats.append(y.detach().clone()))
                     for m in net.lid_layers()]
            try:
                with torch.no_grad():
                    net(batches[r][0])
            finally:
                for h in hooks:
                    h.remove()
            out[i] += torch.tensor([naive_lid(f, k) for f in feats], dtype=torch.float64)
    return out / len(rec.decisions[d].paths)


# ----------------------------------------------------------------------------------------- lid
def test_lid_split_vectors_match_independent_oracle():
    space, net = _setup()
    cfg = SplitConfig(criterion="lid", repeats=2, k=5)
    batches = make_batches(2, b=24)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    rec = _run(space, net, cfg, batches=batches)
    assert not net.training
    # the step left the supernet as it was (BN running stats restored, eval/train flag kept)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert rec.split and rec.criterion == "lid" and rec.edge_rule == "paper"
    assert 0.0 < rec.lid_seconds < rec.seconds  # the LID ops' share of the step is measured
    assert set(rec.decisions) == set(space.decisions)
    for d, dr in rec.decisions.items():
        assert len(dr.paths) == 2 and all(d not in p for p in dr.paths)
        ref = _captured_lid(space, net, d, rec, batches, 5)
        np.testing.assert_allclose(np.array(dr.vectors), ref.numpy(), rtol=1e-4)
        np.testing.assert_allclose(np.array(dr.similarity), similarity_matrix(torch.tensor(dr.vectors)), atol=1e-12)
    # the edge rule's choice is the argmax of the recorded values, ties to the first
    vals = {d: dr.rule_value for d, dr in rec.decisions.items()}
    assert rec.chosen == max(vals, key=vals.get)
    assert rec.decisions[rec.chosen].within == vals[rec.chosen]
    _assert_children_partition_parent(space, rec, space.full_mask())


def test_lid_split_deterministic_given_seed_and_json_roundtrip():
    space, net = _setup()
    cfg = SplitConfig(criterion="lid", repeats=2, k=5, partition="spectral")
    batches = make_batches(2, b=24)
    a = _run(space, net, cfg, seed=3, batches=batches).to_json()
    b = _run(space, net, cfg, seed=3, batches=batches).to_json()
    c = _run(space, net, cfg, seed=4, batches=batches).to_json()
    for r in (a, b, c):
        r.pop("seconds"), r.pop("lid_seconds")
    assert a == b
    assert a != c  # other random paths
    rec = SplitRecord.from_json(json.dumps(_run(space, net, cfg, seed=3, batches=batches).to_json()))
    back = rec.to_json()
    back.pop("seconds"), back.pop("lid_seconds")
    assert back == a


def test_partially_split_mask_skips_split_decisions():
    space, net = _setup()
    mask = space.full_mask()
    mask["d2"] = torch.tensor([True, False, True, False, True])
    cfg = SplitConfig(criterion="lid", k=5, edge_rule="code")
    rec = _run(space, net, cfg, mask=mask)
    assert set(rec.decisions) == {"d0", "d1"}
    for dr in rec.decisions.values():
        for p in dr.paths:
            assert p["d2"] in ("conv3", "pool", "neg")
    vals = {d: dr.between for d, dr in rec.decisions.items()}
    assert rec.chosen == max(vals, key=vals.get)
    _assert_children_partition_parent(space, rec, mask)


# ----------------------------------------------------------------------------------------- grad
def test_grad_split_runs_on_same_engine_and_matches_autograd():
    space, net = _setup()
    cfg = SplitConfig(criterion="grad", record_grad_vectors=True)
    batches = make_batches(1, b=16)
    rec = _run(space, net, cfg, batches=batches)
    assert rec.criterion == "grad" and rec.edge_rule == "gm" and rec.similarity == "cosine"
    for d, dr in rec.decisions.items():
        params = net.shared_parameters(exclude=d)
        assert dr.vector_dim == sum(p.numel() for p in params)
        # oracle: torch.autograd.grad on the recorded path, train-mode BN
        for i, o in enumerate(dr.ops):
            arch = dict(dr.paths[0])
            arch[d] = o
            net.set_arch(arch)
            net.train()
            state = {k: v.clone() for k, v in net.state_dict().items()}
            loss = torch.nn.functional.cross_entropy(net(batches[0][0]), batches[0][1])
            gs = torch.autograd.grad(loss, params, allow_unused=True)
            ref = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gs, params)])
            net.load_state_dict(state)
            np.testing.assert_allclose(np.array(dr.vectors[i]), ref.numpy(), rtol=1e-4, atol=1e-6)
    vals = {d: dr.between_distance for d, dr in rec.decisions.items()}
    assert rec.chosen == max(vals, key=vals.get)
    _assert_children_partition_parent(space, rec, space.full_mask())
    assert all(p.grad is None for p in net.parameters())


def test_grad_record_is_small_by_default_and_deterministic():
    space, net = _setup()
    cfg = SplitConfig(criterion="grad", repeats=2, average="similarity")
    batches = make_batches(2, b=16)
    a = _run(space, net, cfg, batches=batches).to_json()
    b = _run(space, net, cfg, batches=batches).to_json()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert all(dr["vectors"] is None and len(dr["vector_norms"]) == len(dr["ops"]) for dr in a["decisions"].values())


# ----------------------------------------------------------------------------------------- random / none
def test_random_and_none():
    space, net = _setup()
    recs = [_run(space, net, SplitConfig(criterion="random", n_groups=2), seed=s, batches=[]) for s in range(12)]
    for r in recs:
        assert r.split and not r.decisions
        _assert_children_partition_parent(space, r, space.full_mask())
    assert len({r.chosen for r in recs}) > 1
    assert recs[0].groups == _run(space, net, SplitConfig(criterion="random"), seed=0, batches=[]).groups
    none = _run(space, net, SplitConfig(criterion="none"), batches=[])
    assert not none.split and none.chosen is None and none.child_masks == [] and "none" in none.reason


def test_no_decision_left_and_three_groups():
    space, net = _setup()
    mask = space.full_mask()
    mask["d0"][0] = False
    mask["d2"][0] = False
    # only d1 (3 ops) is unsplit; 4 groups impossible anywhere -> no split, with a reason
    rec = _run(space, net, SplitConfig(criterion="random", n_groups=4), mask=mask, batches=[])
    assert not rec.split and "no decision" in rec.reason
    rec = _run(space, net, SplitConfig(criterion="grad", n_groups=3), mask=mask, batches=make_batches(1, b=8))
    assert rec.chosen == "d1" and len(rec.child_masks) == 3
    _assert_children_partition_parent(space, rec, mask)


# ----------------------------------------------------------------------------------------- bad input
def test_bad_inputs():
    space, net = _setup()
    g = torch.Generator().manual_seed(0)
    full = space.full_mask()
    with pytest.raises(ValueError, match="k=20 needs a batch of at least k \\+ 2 = 22 images.*batch size 21"):
        split_step(space, net, full, make_batches(1, b=21), SplitConfig(), generator=g)
    with pytest.raises(ValueError, match="yielded 1 batch.*repeats=3"):
        split_step(space, net, full, make_batches(1), SplitConfig(criterion="grad", repeats=3), generator=g)
    with pytest.raises(TypeError, match="single \\(x, y\\) pair"):
        split_step(space, net, full, make_batches(1)[0], SplitConfig(criterion="grad"), generator=g)
    with pytest.raises(TypeError, match="SplitConfig"):
        split_step(space, net, full, make_batches(1), {"criterion": "lid"}, generator=g)
    with pytest.raises(TypeError, match="generator"):
        split_step(space, net, full, make_batches(1), SplitConfig(), generator=0)
    with pytest.raises(ValueError, match="mask"):
        split_step(space, net, {"d0": [1, 1, 1, 1]}, make_batches(1), SplitConfig(), generator=g)
    with pytest.raises(ValueError, match="version"):
        SplitRecord.from_json({"version": 99})


# ----------------------------------------------------------------------------------------- NB201
def _nb201():
    from naslid.spaces import get_space
    space = get_space("nb201", C=4, N=1, num_classes=10)
    torch.manual_seed(0)
    return space, space.build_supernet()


@pytest.mark.parametrize("criterion", ["lid", "grad"])
def test_nb201_tiny_split_partitions_parent_on_one_decision(criterion):
    space, net = _nb201()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(24, 3, 16, 16, generator=g), torch.randint(10, (24,), generator=g))]
    cfg = SplitConfig(criterion=criterion, k=5)
    rec = split_step(space, net, space.full_mask(), batches, cfg, generator=torch.Generator().manual_seed(1))
    assert rec.split and rec.chosen in space.decisions and len(rec.decisions) == 6
    if criterion == "lid":
        assert all(dr.vector_dim == len(net.lid_layers()) == 5 for dr in rec.decisions.values())
    _assert_children_partition_parent(space, rec, space.full_mask())
    # split a child again: the chosen decision is no longer a candidate
    child = rec.child_mask_tensors(space)[0]
    rec2 = split_step(space, net, child, batches, cfg, generator=torch.Generator().manual_seed(2))
    assert rec.chosen not in rec2.decisions and len(rec2.decisions) == 5
    _assert_children_partition_parent(space, rec2, child)
