"""SearchConfig: presets, YAML round-trip, precedence, validation naming the field, run identity."""
from __future__ import annotations

import pytest
import yaml

from naslid.cli import build_parser, resolve_config
from naslid.config import SearchConfig, load_config


def test_presets_load_and_validate():
    q = SearchConfig.preset_config("quick").validate(num_decisions=6)
    p = SearchConfig.preset_config("paper").validate(num_decisions=6)
    assert (q.space.name, q.data.dataset, q.split.criterion) == ("nb201", "digits", "lid")
    assert q.device == "cpu" and q.preset == "quick"
    # the paper preset is the released code's NB201 schedule and search (docs/method.md)
    assert p.train.warmup_epochs == [20, 40, 60, 80] and p.levels == 4
    assert (p.space.C, p.space.N) == (16, 5)
    s = p.search
    assert (s.population, s.generations, s.parents, s.crossover, s.mutation, s.newcomers) == (50, 100, 10, 20, 20, 10)
    assert s.mutation_prob == 0.1


def test_yaml_round_trip(tmp_path):
    c = SearchConfig.preset_config("quick")
    c.split.criterion = "grad"
    c.train.warmup_epochs = [3, 5, 9]
    c.benchmark.sample_size = 42
    f = tmp_path / "c.yaml"
    c.save_yaml(f)
    back = SearchConfig.from_yaml(f)
    assert back == c
    assert yaml.safe_load(f.read_text())["train"]["warmup_epochs"] == [3, 5, 9]


def test_partial_yaml_overlays_quick_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("split: {criterion: random}\nseed: 7\n")
    c = load_config(config_file=str(f))
    quick = SearchConfig.preset_config("quick")
    assert c.split.criterion == "random" and c.seed == 7
    assert c.train == quick.train and c.space == quick.space


def test_precedence_preset_config_cli(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("split: {criterion: random, repeats: 3}\ntrain: {leaf_epochs: 9}\n")
    a = build_parser().parse_args(["search", "--preset", "paper", "--config", str(f), "--criterion", "grad",
                                   "--warmup", "2,5", "--out", str(tmp_path / "o"), "--set", "search.population=12"])
    c = resolve_config(a)
    assert c.split.criterion == "grad"            # CLI beats file
    assert c.split.repeats == 3                   # file beats preset (paper has 5)
    assert c.train.leaf_epochs == 9
    assert c.train.warmup_epochs == [2, 5]
    assert c.search.population == 12
    assert c.space.C == 16                        # from the paper preset
    assert c.out == str(tmp_path / "o")


def test_levels_flag_keeps_epochs_per_level(tmp_path):
    a = build_parser().parse_args(["search", "--levels", "3", "--out", str(tmp_path / "o")])
    c = resolve_config(a)
    step = SearchConfig.preset_config("quick").train.warmup_epochs[0]
    assert c.train.warmup_epochs == [step, 2 * step, 3 * step]


def test_unknown_field_named():
    with pytest.raises(ValueError, match=r"split\.bogus"):
        SearchConfig.from_dict({"split": {"bogus": 1}})
    with pytest.raises(ValueError, match="nonsense"):
        SearchConfig.from_dict({"nonsense": 1})


BAD = [
    ({"space": {"name": "darts"}}, "space.name"),
    ({"data": {"dataset": "mnist"}}, "data.dataset"),
    ({"data": {"dataset": "npz", "data_dir": None}}, "data.data_dir"),
    ({"data": {"dataset": "npz", "data_dir": 3}}, "data.data_dir"),
    ({"split": {"criterion": "entropy"}}, "split.criterion"),
    ({"split": {"partition": "kmeans"}}, "split.partition"),
    ({"split": {"similarity": "manhattan"}}, "split.similarity"),
    ({"split": {"edge_rule": "best"}}, "split.edge_rule"),
    ({"split": {"repeats": 0}}, "split.repeats"),
    ({"split": {"k": 200, "batch_size": 128}}, "split.k"),
    ({"split": {"batch_size": 1}}, "split.batch_size"),
    ({"split": {"average": "median"}}, "split.average"),
    ({"split": {"record_grad_vectors": 1}}, "split.record_grad_vectors"),
    ({"split": {"bn_mode": "recalibrate"}}, "split.bn_mode"),
    ({"split": {"lid_backend": "gpu"}}, "split.lid_backend"),
    ({"train": {"warmup_epochs": []}}, "train.warmup_epochs"),
    ({"train": {"warmup_epochs": [0, 2]}}, r"train.warmup_epochs\[0\]"),
    ({"train": {"warmup_epochs": [4, 4]}}, "train.warmup_epochs"),
    ({"train": {"leaf_init": "zeros"}}, "train.leaf_init"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"train": {"bn_shards": 3}}, "train.bn_shards"),
    ({"search": {"method": "bayes"}}, "search.method"),
    ({"search": {"parents": 30, "population": 20}}, "search.parents"),
    ({"search": {"parents": 1, "crossover": 1}}, "search.parents"),
    ({"search": {"max_tries": 0}}, "search.max_tries"),
    ({"search": {"mutation_prob": 1.5}}, "search.mutation_prob"),
    ({"search": {"method": "random", "generations": 0}}, "search.generations"),
    ({"search": {"bn": "frozen"}}, "search.bn"),
    ({"search": {"bn": "eval"}}, "search.bn"),
    ({"benchmark": {"file": 5}}, "benchmark.file"),
    ({"device": "tpu"}, "device"),
    ({"seed": -1}, "seed"),
]


@pytest.mark.parametrize("override,field", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_values_name_the_field(override, field):
    c = SearchConfig.from_dict(override, base=SearchConfig.preset_config("quick"))
    with pytest.raises(ValueError, match=rf"^config\.{field}: "):
        c.validate(num_decisions=6)


def test_more_levels_than_decisions():
    c = SearchConfig.from_dict({"train": {"warmup_epochs": list(range(1, 8))}},
                               base=SearchConfig.preset_config("quick"))
    c.validate()  # without the space it cannot know
    with pytest.raises(ValueError, match=r"train.warmup_epochs: 7 levels .* only 6 decisions"):
        c.validate(num_decisions=6)
    c.split.criterion = "none"  # plain one-shot: the schedule is only epochs
    c.validate(num_decisions=6)


def test_run_identity_ignores_output_options():
    a = SearchConfig.preset_config("quick")
    b = SearchConfig.from_dict({"out": "/tmp/x", "quiet": True, "resume": True, "threads": 2}, base=a)
    assert a.config_hash() == b.config_hash()
    c = SearchConfig.from_dict({"seed": 1}, base=a)
    d = SearchConfig.from_dict({"split": {"criterion": "grad"}}, base=a)
    assert len({a.config_hash(), c.config_hash(), d.config_hash()}) == 3


def test_cli_integer_lists():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--warmup", "a,b"])
    assert build_parser().parse_args(["search", "--warmup", "5, 10,20"]).warmup == [5, 10, 20]
    assert build_parser().parse_args(["search"]).warmup is None  # not given: the preset's schedule


def test_space_options_pass_through_to_the_space():
    """``space.options`` reaches the space's constructor (e.g. NAS-LID's OFA choice sets); unknown
    options and options that other fields own are ValueErrors naming them."""
    from naslid.spaces import get_space

    cfg = SearchConfig.from_dict({"space": {"name": "ofa", "width": 1.2,
                                            "options": {"depth_choices": [3, 4], "expand_choices": [4, 6]}}})
    space = get_space(cfg.space.name, **cfg.space_options(10, 3, 32))
    assert space.decisions["depth1"] == ("3", "4")
    assert space.decisions["er_block1"] == ("4", "6")
    bad = SearchConfig.from_dict({"space": {"name": "ofa", "options": {"bogus": 1}}})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        get_space(bad.space.name, **bad.space_options(10, 3, 32))
    clash = SearchConfig.from_dict({"space": {"name": "ofa", "options": {"width": 2.0}}})
    with pytest.raises(ValueError, match=r"config.space.options: \['width'\]"):
        clash.space_options(10, 3, 32)


def test_evolution_settings_checked_before_work_starts():
    """An evolution setting the search would reject (crossover with one parent) fails validation,
    not after the warm-up."""
    cfg = SearchConfig.from_dict({"search": {"parents": 1, "crossover": 1}})
    with pytest.raises(ValueError, match=r"config.search.parents: crossover needs parents >= 2"):
        cfg.validate()
    SearchConfig.from_dict({"search": {"parents": 1, "crossover": 0}}).validate()


# ------------------------------------------------------------------ one declaration per field
# a valid non-default value of every field of the split and search sections
SPLIT_VALUES = {"criterion": "grad", "repeats": 3, "similarity": "euclidean", "partition": "spectral",
                "n_groups": 3, "balanced": False, "edge_rule": "code", "k": 7, "lid_estimator": "levina",
                "lid_backend": "torch", "bn_mode": "eval", "probe_chunks": 4, "average": "similarity",
                "record_grad_vectors": True, "batch_size": 64}
SEARCH_VALUES = {"population": 30, "generations": 7, "parents": 4, "crossover": 3, "mutation": 5,
                 "mutation_prob": 0.25, "newcomers": 2, "max_tries": 9, "method": "random",
                 "bn": "batch", "bn_batches": 3, "eval_batch_size": 100, "score": "acc", "eval_images": 500,
                 "reference_size": 64, "free_cells": 3, "free_batch": 48}


def _every_field():
    return [("split", k, v) for k, v in SPLIT_VALUES.items()] + [("search", k, v) for k, v in SEARCH_VALUES.items()]


def test_sections_are_the_algorithm_configs():
    """The split section is a SplitConfig and the search section an EvolutionConfig: their fields
    are declared there once; the tables above cover every field (a new field must be added)."""
    import dataclasses

    from naslid.blocks.evolutionary_search import EvolutionConfig
    from naslid.split import SplitConfig

    c = SearchConfig()
    assert isinstance(c.split, SplitConfig) and isinstance(c.search, EvolutionConfig)
    split_names = {f.name for f in dataclasses.fields(c.split)}
    search_names = {f.name for f in dataclasses.fields(c.search)}
    assert {f.name for f in dataclasses.fields(SplitConfig)} | {"batch_size"} == split_names == set(SPLIT_VALUES)
    assert {f.name for f in dataclasses.fields(EvolutionConfig)} < search_names == set(SEARCH_VALUES)
    for section, name, val in _every_field():
        assert getattr(c, section).__dataclass_fields__[name].default != val, (section, name)


@pytest.mark.parametrize("section,name,val", _every_field(), ids=[f"{s}.{n}" for s, n, _ in _every_field()])
def test_every_field_settable_from_dict_yaml_and_cli(section, name, val, tmp_path):
    d = SearchConfig.from_dict({section: {name: val}})
    assert getattr(getattr(d, section), name) == val
    d.validate(num_decisions=6)
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({section: {name: val}}))
    assert getattr(getattr(load_config(config_file=str(f)), section), name) == val
    text = yaml.safe_dump(val).strip().removesuffix("...").strip()
    a = build_parser().parse_args(["search", "--out", str(tmp_path / "o"), "--set", f"{section}.{name}={text}"])
    c = resolve_config(a)
    assert getattr(getattr(c, section), name) == val and type(getattr(getattr(c, section), name)) is type(val)
    # the API: the section's attribute, then validate
    e = SearchConfig.preset_config("quick")
    setattr(getattr(e, section), name, val)
    e.validate(num_decisions=6)


def test_split_and_search_sections_reach_the_algorithms(tmp_path):
    """The split section itself goes to split_step: an option the old copy of SplitConfig's
    fields could not carry (average) reaches the split record, with the split batch size."""
    import json

    from helpers import micro_config
    from naslid.run.pipeline import run_search

    cfg = micro_config(tmp_path / "o", {"split": {"average": "similarity", "repeats": 2},
                                        "train": {"warmup_epochs": [1], "leaf_epochs": 0},
                                        "search": {"generations": 1},
                                        "plots": False, "tensorboard": False})
    run_search(cfg)
    tree = json.loads((tmp_path / "o" / "result.json").read_text())["split_tree"]
    rec = tree["r"]["split"]
    assert rec["config"]["average"] == "similarity" and rec["config"]["repeats"] == 2
    assert rec["config"]["batch_size"] == cfg.split.batch_size


def test_warmup_int_is_normalised_when_loading(tmp_path):
    assert SearchConfig.from_dict({"train": {"warmup_epochs": 6}}).train.warmup_epochs == [6]
    assert SearchConfig.from_dict({"train": {"warmup_epochs": (2, 4)}}).train.warmup_epochs == [2, 4]
    a = build_parser().parse_args(["search", "--out", str(tmp_path / "o"), "--set", "train.warmup_epochs=6"])
    assert resolve_config(a).train.warmup_epochs == [6]
    c = SearchConfig()
    c.train.warmup_epochs = 6  # set directly: not a list, rejected (validate changes nothing)
    with pytest.raises(ValueError, match=r"config.train.warmup_epochs: expected a non-empty list"):
        c.validate()
    assert c.train.warmup_epochs == 6


@pytest.mark.parametrize("preset", ["quick", "cpu", "paper"])
def test_validate_changes_nothing_and_reads_no_file(preset, monkeypatch):
    import copy
    import os
    import pathlib

    c = SearchConfig.from_dict({"data": {"dataset": "npz", "data_dir": "/nonexistent/x.npz"},
                                "benchmark": {"file": "/nonexistent.csv"}},
                               base=SearchConfig.preset_config(preset))
    before = copy.deepcopy(c)

    def boom(*a, **k):
        raise AssertionError("validate touched the file system")

    for name in ("exists", "isfile", "isdir", "getsize"):
        monkeypatch.setattr(os.path, name, boom)
    for name in ("exists", "is_file", "is_dir", "stat", "open", "read_text"):
        monkeypatch.setattr(pathlib.Path, name, boom)
    monkeypatch.setattr("builtins.open", boom)
    assert c.validate(num_decisions=6) is c
    monkeypatch.undo()
    assert c == before and c.to_dict() == before.to_dict()


def test_each_rule_is_checked_once(monkeypatch):
    """Every field is checked in one place: validating a full config checks no field twice."""
    import collections

    import naslid.config
    import naslid.blocks.evolution_settings
    import naslid.split.config
    from naslid import validation

    c = SearchConfig.preset_config("paper")  # constructing a SplitConfig validates it: not counted
    c.benchmark.file = "x.csv"
    seen = collections.Counter()

    def counting(fn):
        def wrapped(where, *a, **k):
            seen[where] += 1
            return fn(where, *a, **k)
        return wrapped

    for mod in (naslid.config, naslid.split.config, naslid.blocks.evolution_settings):
        for name in ("choice", "integer", "number", "boolean", "auto_or_integer"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, counting(getattr(validation, name)))
    c.validate(num_decisions=6)
    assert seen, "the checks were not counted"
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice
    for section, name, _ in _every_field():
        if name not in ("edge_rule", "eval_images", "free_cells", "score"):  # None by default: nothing to check;
            assert seen[f"config.{section}.{name}"] == 1, name  # score: naslid.scores.spec's grammar


def test_standalone_configs_name_their_class():
    from naslid.blocks.evolutionary_search import EvolutionConfig
    from naslid.split import SplitConfig

    with pytest.raises(ValueError, match=r"^SplitConfig\.k: must be >= 1"):
        SplitConfig(k=0)
    with pytest.raises(ValueError, match=r"^EvolutionConfig\.parents: parents \(9\) > population \(5\)"):
        EvolutionConfig(population=5, parents=9).validate()


@pytest.mark.parametrize("override,field,msg", [
    ({"data": {"dataset": "npz", "data_dir": "/nonexistent/x.npz"}}, "data.data_dir", "does not exist"),
    ({"benchmark": {"file": "/nonexistent.csv"}}, "benchmark.file", "is not a file"),
])
def test_missing_files_are_found_when_the_run_is_prepared(override, field, msg, tmp_path):
    from naslid.run.pipeline import prepare

    c = SearchConfig.from_dict({**override, "out": str(tmp_path / "o")}, base=SearchConfig.preset_config("quick"))
    c.validate(num_decisions=6)  # no file system: fine
    with pytest.raises(ValueError, match=rf"^config\.{field}: '/nonexistent.*' {msg}"):
        prepare(c)
    assert not (tmp_path / "o").exists()


def test_nb201_supernet_without_bn_affine_from_the_command_line():
    """``--set "space.options={affine: false}"`` trains the NB201 supernet with BatchNorm without
    affine weights (docs/search.md, BN probes): every BN of the supernet loses its weight and bias,
    and, as in NB201's own code, the convolution before each such BN takes a bias instead: the
    parameter count drops by exactly one per channel of those BNs."""
    import torch

    from naslid.spaces import get_space

    args = build_parser().parse_args(["search", "--set", "space.options={affine: false}"])
    cfg = resolve_config(args)
    assert cfg.space.options == {"affine": False}
    plain = get_space("nb201", **SearchConfig().space_options(10, 3, 16))
    bare = get_space("nb201", **cfg.space_options(10, 3, 16))
    def bn_flags(space):
        return {name: (m.affine, m.num_features) for name, m in space.build_supernet().named_modules()
                if isinstance(m, torch.nn.BatchNorm2d)}

    on, off = bn_flags(plain), bn_flags(bare)
    assert on.keys() == off.keys()
    turned = [name for name in on if on[name][0] and not off[name][0]]
    # NB201's flag covers the cell ops and the reduction blocks; the stem and the last BN keep theirs
    assert len(turned) > len(on) - 3 and all(name.startswith("cells.") for name in turned)
    n = lambda space: sum(p.numel() for p in space.build_supernet().parameters())
    assert n(plain) - n(bare) == sum(on[name][1] for name in turned)


# ------------------------------------------------------------------ one set of defaults
def test_dataclass_defaults_are_the_quick_preset(tmp_path):
    """SearchConfig(), from_dict({}), from_yaml of an empty file, load_config() and the config
    naslid.search() starts from are one and the same: the quick preset."""
    quick = SearchConfig.preset_config("quick").to_dict()
    assert SearchConfig().to_dict() == quick
    assert SearchConfig.from_dict({}).to_dict() == quick
    f = tmp_path / "empty.yaml"
    f.write_text("seed: 0\n")
    assert SearchConfig.from_yaml(f).to_dict() == quick
    assert load_config().to_dict() == quick
    # the algorithm configs keep their own (documented) defaults when used on their own
    from naslid.blocks.evolutionary_search import EvolutionConfig
    from naslid.split import SplitConfig

    assert SplitConfig().balanced is False and SplitConfig().repeats == 1
    assert EvolutionConfig().population == 50
