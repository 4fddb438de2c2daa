"""The search configuration: one dataclass per pipeline stage, presets, YAML round-trip, validation.

``SearchConfig`` is what ``naslid search`` and ``naslid.search(config)`` run. Every field is
checked by ``SearchConfig.validate()`` before any work starts (unknown names, impossible
schedules, missing files): a ``ValueError`` names the field (``train.warmup_epochs``, ...).

Presets live in ``naslid/configs/<name>.yaml`` (``quick``: minutes on a laptop CPU; ``paper``: the
released code's NB201 settings). A YAML file holds any subset of the fields; missing ones keep
their defaults (``SearchConfig.from_dict``), unknown ones are an error.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .choices import EVAL_BN_MODES, SAMPLE_METHODS, SAMPLINGS, SCORES

SPACES = ("nb201", "proxyless", "ofa")
DATASETS = ("digits", "cifar10", "cifar100", "npz", "imagefolder")
CRITERIA = ("lid", "grad", "random", "none")
SIMILARITIES = ("cosine", "euclidean", "correlation")
PARTITIONS = ("mincut", "spectral", "gmm")
EDGE_RULES = ("paper", "code", "gm")
LEAF_INITS = ("inherit", "reinit")
SEARCH_METHODS = ("evolution", "random")
PRESETS = ("quick", "cpu", "paper")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class SpaceSection:
    """Search space and its size. NB201: ``C`` channels of the first stage, ``N`` cells per stage;
    ProxylessNAS / OFA: ``width`` multiplier. ``input_size`` None: the dataset's own size.
    ``options``: further keyword options of the space's constructor, passed through unchanged
    (e.g. ProxylessNAS ``stage_widths``, OFA ``depth_choices`` / ``expand_choices`` /
    ``kernel_choices``); the space rejects unknown ones."""

    name: str = "nb201"
    C: int = 8
    N: int = 1
    width: float = 1.0
    input_size: int | None = None
    options: dict = field(default_factory=dict)


@dataclass
class DataSection:
    """Dataset and its split. ``valid_fraction`` of the training set is held out (seeded,
    class-balanced) for every search decision; the test split is never used.
    ``max_train`` / ``max_valid`` cap the number of images (CPU budgets); None: all.
    ``augment``: crop + flip on training batches; None: the dataset's default (on, except digits,
    which flipping would change)."""

    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    valid_fraction: float = 0.5
    max_train: int | None = None
    max_valid: int | None = None
    batch_size: int = 64
    augment: bool | None = None


@dataclass
class SplitSection:
    """The split step (naslid.md §2/§3): the fields of ``naslid.split.SplitConfig`` (see there)
    plus ``batch_size``, the images per LID/GM batch. ``edge_rule`` None: ``paper`` for lid,
    GM-NAS's rule (``gm``) for grad."""

    criterion: str = "lid"
    repeats: int = 1
    similarity: str = "cosine"
    partition: str = "mincut"
    n_groups: int = 2
    balanced: bool = False
    edge_rule: str | None = None
    k: int = 20
    lid_estimator: str = "naslid"
    lid_backend: str = "auto"
    bn_mode: str = "train"
    batch_size: int = 128

    def split_config(self):
        """The ``naslid.split.SplitConfig`` of this section."""
        from .split.config import SplitConfig

        d = dataclasses.asdict(self)
        d.pop("batch_size")
        return SplitConfig(**d)


@dataclass
class TrainSection:
    """Warm-up schedule and optimiser. ``warmup_epochs`` is cumulative per level (the released
    code's [20, 40, 60, 80] = 4 levels): the root trains ``warmup_epochs[0]`` epochs, a level-l
    supernet trains up to ``warmup_epochs[l]`` in total (its parent's epochs included). The number
    of levels (splits) is ``len(warmup_epochs)``. Leaves then train ``leaf_epochs`` more, from the
    parent's weights (``leaf_init: inherit``) or re-initialised (``reinit``). ``bn_shards``: each
    global batch is run as that many equal chunks with their own BatchNorm statistics (what makes
    a data-parallel run over that many ranks compute the same function; see distributed.py).
    ``sampling``: ``uniform`` (one path per batch) or ``fair`` (FairNAS: every candidate of every
    decision once per batch, m times the compute of an epoch; see training.py)."""

    warmup_epochs: list = field(default_factory=lambda: [4, 8])
    leaf_epochs: int = 4
    sampling: str = "uniform"
    leaf_init: str = "inherit"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0
    bn_shards: int = 1


@dataclass
class SearchSection:
    """Final search over the leaves. Evolution: population, generations, parents, crossover and
    mutation children per generation (mutation probability ``mutation_prob``), random newcomers.
    Random search: ``population * generations`` samples. ``bn``: ``recalibrate`` (BN statistics
    recomputed per subnet on ``bn_batches`` training batches) or ``batch`` (batch statistics).
    ``score``: fitness of a cell, ``loss`` (minus the mean cross-entropy: no ties) or ``acc``
    (accuracy %). Every cell is scored on the same fixed ``eval_images`` held-out images (the first
    ones of the validation split, class-stratified; None: all of it)."""

    method: str = "evolution"
    population: int = 50
    generations: int = 100
    parents: int = 10
    crossover: int = 20
    mutation: int = 20
    mutation_prob: float = 0.1
    newcomers: int = 10
    bn: str = "recalibrate"
    bn_batches: int = 2
    eval_batch_size: int = 256
    score: str = "loss"
    eval_images: int | None = 2000

    def evolution_config(self):
        """The ``naslid.evolution.EvolutionConfig`` of this section, validated."""
        from .evolution import EvolutionConfig

        return EvolutionConfig(population=self.population, generations=self.generations,
                               parents=self.parents, crossover=self.crossover,
                               mutation=self.mutation, mutation_prob=self.mutation_prob,
                               newcomers=self.newcomers).validate()


@dataclass
class BenchmarkSection:
    """Ground truth for ranking quality: a CSV with ``arch`` and ``*_acc`` columns (or None).
    Ranking over the top ``top_fraction`` of the benchmark and a seeded sample of ``sample_size``
    cells, one per isomorphism class: ``stratified`` over the ground truth's quantiles (default) or
    ``uniform``. The parameter count and FLOPs of the same cells are ranked beside the supernet."""

    file: str | None = None
    top_fraction: float = 0.01
    sample_size: int = 500
    sample: str = "stratified"


@dataclass
class SearchConfig:
    """Everything a search run needs. ``out`` None: ``runs/search-<UTC timestamp>``.
    ``threads``: torch intra-op CPU threads (None: torch's default); tiny networks run fastest
    with 1 (the quick preset), as thread hand-offs cost more than the work. ``plots`` /
    ``tensorboard``: write the PNG plots / TensorBoard scalars of the report."""

    space: SpaceSection = field(default_factory=SpaceSection)
    data: DataSection = field(default_factory=DataSection)
    split: SplitSection = field(default_factory=SplitSection)
    train: TrainSection = field(default_factory=TrainSection)
    search: SearchSection = field(default_factory=SearchSection)
    benchmark: BenchmarkSection = field(default_factory=BenchmarkSection)
    seed: int = 0
    device: str = "cpu"
    out: str | None = None
    resume: bool = False
    quiet: bool = False
    preset: str | None = None
    threads: int | None = None
    plots: bool = True
    tensorboard: bool = True

    # fields that do not change what a run computes (not part of its identity)
    RUN_NEUTRAL = ("out", "resume", "quiet", "preset", "threads", "plots", "tensorboard")

    # ----- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, base: "SearchConfig | None" = None) -> "SearchConfig":
        """Overlay ``d`` (nested mapping, any subset of fields) onto ``base`` (default: defaults).
        Unknown keys raise ValueError naming them."""
        cfg = copy.deepcopy(base) if base is not None else cls()
        if d is None:
            return cfg
        if not isinstance(d, Mapping):
            raise ValueError(f"config: expected a mapping of sections, got {type(d).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        for key, val in d.items():
            if key not in sections:
                raise ValueError(f"config: unknown field {key!r} (known: {', '.join(sections)})")
            cur = getattr(cfg, key)
            if dataclasses.is_dataclass(cur):
                if val is None:
                    continue
                if not isinstance(val, Mapping):
                    raise ValueError(f"config.{key}: expected a mapping, got {val!r}")
                names = {f.name for f in dataclasses.fields(cur)}
                for k2, v2 in val.items():
                    if k2 not in names:
                        raise ValueError(f"config: unknown field {key}.{k2} (known: {', '.join(sorted(names))})")
                    setattr(cur, k2, list(v2) if isinstance(v2, tuple) else v2)
            else:
                setattr(cfg, key, val)
        return cfg

    @classmethod
    def preset_config(cls, name: str) -> "SearchConfig":
        """The preset ``name`` (quick | paper) from ``naslid/configs/<name>.yaml``."""
        if name not in PRESETS:
            raise ValueError(f"config.preset: unknown preset {name!r} (choose {', '.join(PRESETS)})")
        cfg = cls.from_yaml(CONFIG_DIR / f"{name}.yaml")
        cfg.preset = name
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, base: "SearchConfig | None" = None) -> "SearchConfig":
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file {str(p)!r} does not exist")
        try:
            d = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"config file {str(p)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
        if base is None and p.parent != CONFIG_DIR:
            # a user's file overlays its own ``preset`` (default: quick)
            name = d.get("preset") if isinstance(d, Mapping) and d.get("preset") is not None else "quick"
            base = cls.preset_config(name)
        return cls.from_dict(d or {}, base=base)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save_yaml(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_yaml())

    def run_identity(self) -> dict:
        """The fields that determine a run's results (``RUN_NEUTRAL`` ones removed)."""
        d = self.to_dict()
        for k in self.RUN_NEUTRAL:
            d.pop(k, None)
        return d

    def config_hash(self) -> str:
        """Short stable hash of ``run_identity()``: identifies a run in its manifest."""
        s = json.dumps(self.run_identity(), sort_keys=True, default=str)
        return hashlib.sha256(s.encode()).hexdigest()[:16]

    # ----- derived -----------------------------------------------------------------------------
    @property
    def levels(self) -> int:
        """Number of split levels (0 for criterion ``none``: plain one-shot)."""
        return 0 if self.split.criterion == "none" else len(self.train.warmup_epochs)

    def space_options(self, num_classes: int, in_channels: int, input_size: int) -> dict:
        """Keyword options for ``naslid.spaces.get_space``."""
        opts: dict = dict(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
        if self.space.name == "nb201":
            opts.update(C=self.space.C, N=self.space.N)
        else:
            opts.update(width=self.space.width)
        extra = self.space.options or {}
        if not isinstance(extra, Mapping):
            raise ValueError(f"config.space.options: expected a mapping of keyword options, got {extra!r}")
        clash = sorted(set(extra) & set(opts))
        if clash:
            raise ValueError(f"config.space.options: {clash} are set by other fields "
                             "(space.C/N/width, data); set them there")
        opts.update({k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()})
        return opts

    # ----- validation --------------------------------------------------------------------------
    def validate(self, num_decisions: int | None = None) -> "SearchConfig":
        """Check every field; ValueError naming the field. ``num_decisions`` (the space's number
        of decisions) enables the check that there are no more levels than decisions."""
        def choice(name: str, val, options):
            if val not in options:
                raise ValueError(f"config.{name}: unknown value {val!r} (choose one of {', '.join(options)})")

        def integer(name: str, val, lo: int | None = None):
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"config.{name}: expected an integer, got {val!r}")
            if lo is not None and val < lo:
                raise ValueError(f"config.{name}: must be >= {lo}, got {val}")

        def number(name: str, val, lo: float | None = None, hi: float | None = None, lo_open=False):
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise ValueError(f"config.{name}: expected a number, got {val!r}")
            if lo is not None and (val < lo or (lo_open and val == lo)):
                raise ValueError(f"config.{name}: must be {'>' if lo_open else '>='} {lo}, got {val}")
            if hi is not None and val > hi:
                raise ValueError(f"config.{name}: must be <= {hi}, got {val}")

        s, d, sp, t, se, b = self.space, self.data, self.split, self.train, self.search, self.benchmark
        choice("space.name", s.name, SPACES)
        integer("space.C", s.C, 1)
        integer("space.N", s.N, 1)
        number("space.width", s.width, 0.0, lo_open=True)
        if s.input_size is not None:
            integer("space.input_size", s.input_size, 4)

        choice("data.dataset", d.dataset, DATASETS)
        if d.dataset in ("npz", "imagefolder") and not d.data_dir:
            raise ValueError(f"config.data.data_dir: dataset {d.dataset!r} needs --data-dir")
        if d.data_dir is not None:
            if not isinstance(d.data_dir, str):
                raise ValueError(f"config.data.data_dir: expected a path, got {d.data_dir!r}")
            if d.dataset in ("npz", "imagefolder") and not os.path.exists(d.data_dir):
                raise ValueError(f"config.data.data_dir: {d.data_dir!r} does not exist")
        if d.image_size is not None:
            integer("data.image_size", d.image_size, 4)
        number("data.valid_fraction", d.valid_fraction, 0.0, 0.9, lo_open=True)
        for name in ("max_train", "max_valid"):
            if getattr(d, name) is not None:
                integer(f"data.{name}", getattr(d, name), 10)
        integer("data.batch_size", d.batch_size, 2)

        choice("split.criterion", sp.criterion, CRITERIA)
        choice("split.similarity", sp.similarity, SIMILARITIES)
        choice("split.partition", sp.partition, PARTITIONS)
        if sp.edge_rule is not None:
            choice("split.edge_rule", sp.edge_rule, EDGE_RULES)
        integer("split.repeats", sp.repeats, 1)
        integer("split.n_groups", sp.n_groups, 2)
        integer("split.k", sp.k, 1)
        integer("split.batch_size", sp.batch_size, 2)
        try:
            sp.split_config()
        except ImportError:
            pass
        except (TypeError, ValueError) as e:
            raise ValueError(f"config.split: {e}") from None
        if sp.k + 2 > sp.batch_size:
            raise ValueError(f"config.split.k: k = {sp.k} nearest neighbours need a split batch of at least "
                             f"k + 2 samples (k must be smaller than the batch-size - 1 other samples; "
                             f"split.batch_size = {sp.batch_size})")

        w = t.warmup_epochs
        if isinstance(w, int) and not isinstance(w, bool):
            w = t.warmup_epochs = [w]
        if not isinstance(w, list) or not w:
            raise ValueError(f"config.train.warmup_epochs: expected a non-empty list of cumulative epochs, got {w!r}")
        for i, e in enumerate(w):
            integer(f"train.warmup_epochs[{i}]", e, 1)
        if any(b2 <= a for a, b2 in zip(w, w[1:])):
            raise ValueError(f"config.train.warmup_epochs: cumulative epochs must strictly increase, got {w}")
        if num_decisions is not None and self.levels > num_decisions:
            raise ValueError(f"config.train.warmup_epochs: {self.levels} levels but the {s.name} space has only "
                             f"{num_decisions} decisions to split")
        integer("train.leaf_epochs", t.leaf_epochs, 0)
        choice("train.leaf_init", t.leaf_init, LEAF_INITS)
        choice("train.sampling", t.sampling, SAMPLINGS)
        if t.leaf_init == "reinit" and t.leaf_epochs == 0:
            raise ValueError("config.train.leaf_epochs: leaf_init 'reinit' with 0 leaf epochs leaves untrained leaves")
        number("train.lr", t.lr, 0.0, lo_open=True)
        number("train.momentum", t.momentum, 0.0, 1.0)
        number("train.weight_decay", t.weight_decay, 0.0)
        if t.grad_clip is not None:
            number("train.grad_clip", t.grad_clip, 0.0, lo_open=True)
        integer("train.bn_shards", t.bn_shards, 1)
        if d.batch_size % t.bn_shards:
            raise ValueError(f"config.train.bn_shards: {t.bn_shards} shards do not divide data.batch_size "
                             f"{d.batch_size}")

        choice("search.method", se.method, SEARCH_METHODS)
        choice("search.bn", se.bn, EVAL_BN_MODES)
        choice("search.score", se.score, SCORES)
        if se.eval_images is not None:
            integer("search.eval_images", se.eval_images, 1)
        integer("search.population", se.population, 2)
        integer("search.generations", se.generations, 1)
        integer("search.parents", se.parents, 1)
        integer("search.crossover", se.crossover, 0)
        integer("search.mutation", se.mutation, 0)
        integer("search.newcomers", se.newcomers, 0)
        integer("search.bn_batches", se.bn_batches, 1)
        integer("search.eval_batch_size", se.eval_batch_size, 1)
        number("search.mutation_prob", se.mutation_prob, 0.0, 1.0)
        if se.parents > se.population:
            raise ValueError(f"config.search.parents: {se.parents} parents exceed the population {se.population}")
        if se.method == "evolution":
            try:
                se.evolution_config()
            except ValueError as e:
                raise ValueError(f"config.search: {e}") from None

        if b.file is not None:
            if not isinstance(b.file, str) or not os.path.isfile(b.file):
                raise ValueError(f"config.benchmark.file: {b.file!r} is not a file")
        number("benchmark.top_fraction", b.top_fraction, 0.0, 1.0, lo_open=True)
        integer("benchmark.sample_size", b.sample_size, 2)
        choice("benchmark.sample", b.sample, SAMPLE_METHODS)

        integer("seed", self.seed, 0)
        if not isinstance(self.device, str) or not (self.device in ("cpu", "cuda", "auto")
                                                     or self.device.startswith("cuda:")):
            raise ValueError(f"config.device: expected cpu | cuda | cuda:N | auto, got {self.device!r}")
        if self.preset is not None:
            choice("preset", self.preset, PRESETS)
        if self.threads is not None:
            integer("threads", self.threads, 1)
        return self


def load_config(preset: str | None = None, config_file: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    """Preset (default ``quick``) < YAML file < ``overrides`` (nested mapping, e.g. from the CLI)."""
    if config_file is not None:
        base = SearchConfig.from_yaml(config_file, base=SearchConfig.preset_config(preset) if preset else None)
    else:
        base = SearchConfig.preset_config(preset or "quick")
    return SearchConfig.from_dict(overrides or {}, base=base)
