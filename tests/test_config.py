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
    ({"data": {"dataset": "npz", "data_dir": "/nonexistent/x.npz"}}, "data.data_dir"),
    ({"split": {"criterion": "entropy"}}, "split.criterion"),
    ({"split": {"partition": "kmeans"}}, "split.partition"),
    ({"split": {"similarity": "manhattan"}}, "split.similarity"),
    ({"split": {"edge_rule": "best"}}, "split.edge_rule"),
    ({"split": {"repeats": 0}}, "split.repeats"),
    ({"split": {"k": 200, "batch_size": 128}}, "split.k"),
    ({"train": {"warmup_epochs": []}}, "train.warmup_epochs"),
    ({"train": {"warmup_epochs": [0, 2]}}, r"train.warmup_epochs\[0\]"),
    ({"train": {"warmup_epochs": [4, 4]}}, "train.warmup_epochs"),
    ({"train": {"leaf_init": "zeros"}}, "train.leaf_init"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"train": {"bn_shards": 3}}, "train.bn_shards"),
    ({"search": {"method": "bayes"}}, "search.method"),
    ({"search": {"parents": 30, "population": 20}}, "search.parents"),
    ({"search": {"bn": "frozen"}}, "search.bn"),
    ({"benchmark": {"file": "/nonexistent.csv"}}, "benchmark.file"),
    ({"device": "tpu"}, "device"),
    ({"seed": -1}, "seed"),
]


@pytest.mark.parametrize("override,field", BAD, ids=[b[1] for b in BAD])
def test_bad_values_name_the_field(override, field):
    c = SearchConfig.from_dict(override, base=SearchConfig.preset_config("quick"))
    with pytest.raises(ValueError, match=field):
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
    with pytest.raises(ValueError, match=r"config.search: EvolutionConfig: crossover needs parents >= 2"):
        cfg.validate()
    SearchConfig.from_dict({"search": {"parents": 1, "crossover": 0}}).validate()
