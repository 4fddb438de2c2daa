"""The search configuration: one dataclass per pipeline stage, presets, YAML round-trip, validation.

``SearchConfig`` is what ``naslid search`` and ``naslid.search(config)`` run. Each field is declared
once, in the class that owns it: the ``split`` section is a ``naslid.split.SplitConfig`` (plus the
split batch size), the ``search`` section a ``naslid.blocks.evolutionary_search.EvolutionConfig`` (plus the
evaluation settings). ``SearchConfig.validate()`` checks every field before any work starts
(unknown names, impossible schedules): an ``InputError`` (``naslid.errors``, a ValueError) names the
field (``config.train.warmup_epochs``, ...). It neither changes the config nor looks at the file
system: whether ``data.data_dir`` and ``benchmark.file`` exist is checked when a run is prepared
(``naslid.run.prepare.prepare``).

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

from .choices import (DATASETS, EVAL_BN_MODES, FREE_LID_K, FREE_NET_DEFAULTS, FREE_SCORE_SPACES,
                      LEAF_INITS, PRESETS, SAMPLE_METHODS, SAMPLINGS, SCORES, SEARCH_METHODS, SPACES)
from .errors import InputError
from .blocks.evolution_settings import EvolutionConfig
from .split.config import SplitConfig
from .validation import choice, integer, number

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: datasets read from ``data.data_dir`` (the others download into it)
DATASETS_FROM_DIR = ("npz", "imagefolder")


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

    def validate(self, where: str = "config.space") -> "SpaceSection":
        choice(f"{where}.name", self.name, SPACES)
        integer(f"{where}.C", self.C, 1)
        integer(f"{where}.N", self.N, 1)
        number(f"{where}.width", self.width, 0.0, lo_open=True)
        if self.input_size is not None:
            integer(f"{where}.input_size", self.input_size, 4)
        return self


@dataclass
class DataSection:
    """Dataset and its split. ``valid_fraction`` of the training set is held out (seeded,
    class-balanced) for every search decision; the test split is never used.
    ``max_train`` / ``max_valid`` cap the number of images (CPU budgets); None: all.
    ``augment``: crop + flip on training batches; None: the dataset's default (on, except digits,
    which flipping would change)."""

    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = 8
    valid_fraction: float = 0.5
    max_train: int | None = None
    max_valid: int | None = None
    batch_size: int = 32
    augment: bool | None = None

    def validate(self, where: str = "config.data") -> "DataSection":
        choice(f"{where}.dataset", self.dataset, DATASETS)
        if self.dataset in DATASETS_FROM_DIR and not self.data_dir:
            raise InputError(f"{where}.data_dir: dataset {self.dataset!r} needs --data-dir")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise InputError(f"{where}.data_dir: expected a path, got {self.data_dir!r}")
        if self.image_size is not None:
            integer(f"{where}.image_size", self.image_size, 4)
        number(f"{where}.valid_fraction", self.valid_fraction, 0.0, 0.9, lo_open=True)
        for name in ("max_train", "max_valid"):
            if getattr(self, name) is not None:
                integer(f"{where}.{name}", getattr(self, name), 10)
        integer(f"{where}.batch_size", self.batch_size, 2)
        return self


@dataclass
class SplitSection(SplitConfig):
    """The split step (docs/split.md): every option of ``naslid.split.SplitConfig`` (declared and
    checked there; the section *is* the ``SplitConfig`` the pipeline passes to ``split_step``) plus
    ``batch_size``, the images per LID / GM batch (``repeats`` such batches per op vector; LID needs
    ``k + 2 <= batch_size``). ``edge_rule`` None: ``paper`` for lid, GM-NAS's rule (``gm``) for grad."""

    batch_size: int = 128
    # the quick preset's values (the plain SplitConfig keeps 1 repeat and unbalanced groups)
    repeats: int = 2
    balanced: bool = True

    def validate(self, where: str = "config.split") -> "SplitSection":
        super().validate(where)
        integer(f"{where}.batch_size", self.batch_size, 2)
        if self.k + 2 > self.batch_size:
            raise InputError(f"{where}.k: k = {self.k} nearest neighbours need a split batch of at least "
                             f"k + 2 samples (k must be smaller than the batch-size - 1 other samples; "
                             f"split.batch_size = {self.batch_size})")
        return self


@dataclass
class TrainSection:
    """Warm-up schedule and optimiser. ``warmup_epochs`` is cumulative per level (the released
    code's [20, 40, 60, 80] = 4 levels): the root trains ``warmup_epochs[0]`` epochs, a level-l
    supernet trains up to ``warmup_epochs[l]`` in total (its parent's epochs included). The number
    of levels (splits) is ``len(warmup_epochs)``; a single int read from YAML / a dict / ``--set``
    means one level (``SearchConfig.from_dict`` turns it into a list). Leaves then train
    ``leaf_epochs`` more, from the parent's weights (``leaf_init: inherit``) or re-initialised
    (``reinit``). ``bn_shards``: each global batch is run as that many equal chunks with their own
    BatchNorm statistics (what makes a data-parallel run over that many ranks compute the same
    function; see distributed.py). ``sampling``: ``uniform`` (one path per batch) or ``fair``
    (FairNAS: every candidate of every decision once per batch, m times the compute of an epoch;
    see training.py)."""

    warmup_epochs: list = field(default_factory=lambda: [8, 16])
    leaf_epochs: int = 8
    sampling: str = "uniform"
    leaf_init: str = "inherit"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0
    bn_shards: int = 1

    def validate(self, where: str = "config.train") -> "TrainSection":
        w = self.warmup_epochs
        if not isinstance(w, list) or not w:
            raise InputError(f"{where}.warmup_epochs: expected a non-empty list of cumulative epochs, got {w!r}")
        for i, e in enumerate(w):
            integer(f"{where}.warmup_epochs[{i}]", e, 1)
        if any(b <= a for a, b in zip(w, w[1:])):
            raise InputError(f"{where}.warmup_epochs: cumulative epochs must strictly increase, got {w}")
        integer(f"{where}.leaf_epochs", self.leaf_epochs, 0)
        choice(f"{where}.leaf_init", self.leaf_init, LEAF_INITS)
        choice(f"{where}.sampling", self.sampling, SAMPLINGS)
        if self.leaf_init == "reinit" and self.leaf_epochs == 0:
            raise InputError(f"{where}.leaf_epochs: leaf_init 'reinit' with 0 leaf epochs leaves untrained leaves")
        number(f"{where}.lr", self.lr, 0.0, lo_open=True)
        number(f"{where}.momentum", self.momentum, 0.0, 1.0)
        number(f"{where}.weight_decay", self.weight_decay, 0.0)
        if self.grad_clip is not None:
            number(f"{where}.grad_clip", self.grad_clip, 0.0, lo_open=True)
        integer(f"{where}.bn_shards", self.bn_shards, 1)
        return self


@dataclass
class SearchSection(EvolutionConfig):
    """Final search over the leaves. Evolution: the fields of ``naslid.blocks.evolutionary_search.EvolutionConfig``
    (declared and checked there; the section *is* the ``EvolutionConfig`` the pipeline passes to
    ``evolutionary_search``): population, generations, parents, crossover and mutation children per
    generation (mutation probability ``mutation_prob``), random newcomers, ``max_tries``.
    ``method``: ``evolution`` or ``random`` (``population * generations`` uniform samples).
    ``bn``: ``recalibrate`` (BN statistics recomputed per subnet on ``bn_batches`` training batches
    of ``eval_batch_size`` images) or ``batch`` (batch statistics). ``score``: fitness of a cell,
    ``loss`` (minus the mean cross-entropy: no ties) or ``acc`` (accuracy %) — the pure-supernet
    protocol — or a ``+``-joined combination of those and training-free scores
    (``"loss+naswot+synflow+aznas+jacov+lid"``; ``naslid.scores.combination``): the mean of the signals'
    quantiles against a reference sample of ``reference_size`` de-isomorphic cells drawn once per
    run with the run's seed (unused by a single ``loss`` / ``acc``). Every cell is scored
    on the same fixed ``eval_images`` held-out images (the first ones of the validation split,
    class-stratified; None: all of it), in batches of ``eval_batch_size``. The training-free scores
    see one fixed batch of ``free_batch`` training images, on each cell's fresh stand-alone network
    with ``free_cells`` cells per stage (NB201 only; None: the searched network's ``space.N``):
    ``free_cells: 5, free_batch: 32`` scores them on NB201's depth (docs/search.md)."""

    # the quick preset's values (the plain EvolutionConfig keeps its own defaults)
    population: int = 20
    generations: int = 8
    parents: int = 5
    crossover: int = 8
    mutation: int = 8
    newcomers: int = 4
    method: str = "evolution"
    bn: str = "recalibrate"
    bn_batches: int = 2
    eval_batch_size: int = 256
    score: str = "loss"
    eval_images: int | None = 2000
    reference_size: int = 256
    free_cells: int | None = None
    free_batch: int = 128

    def validate(self, where: str = "config.search") -> "SearchSection":
        from .scores.spec import parse_signals

        choice(f"{where}.method", self.method, SEARCH_METHODS)
        choice(f"{where}.bn", self.bn, EVAL_BN_MODES)
        parse_signals(self.score, f"{where}.score")
        integer(f"{where}.reference_size", self.reference_size, 2)
        if self.free_cells is not None:
            integer(f"{where}.free_cells", self.free_cells, 1)
        integer(f"{where}.free_batch", self.free_batch, 2)
        if "lid" in parse_signals(self.score) and self.free_batch < FREE_LID_K + 2:
            raise InputError(f"{where}.free_batch: the lid score takes k = {FREE_LID_K} neighbours among the "
                             f"batch's images, so it needs free_batch >= {FREE_LID_K + 2}, got {self.free_batch}")
        if self.eval_images is not None:
            integer(f"{where}.eval_images", self.eval_images, 1)
        integer(f"{where}.bn_batches", self.bn_batches, 1)
        integer(f"{where}.eval_batch_size", self.eval_batch_size, 1)
        super().validate(where)
        if self.method == "random" and self.generations < 1:
            raise InputError(f"{where}.generations: method random draws population x generations samples; "
                             f"needs generations >= 1, got {self.generations}")
        return self


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

    def validate(self, where: str = "config.benchmark") -> "BenchmarkSection":
        if self.file is not None and not isinstance(self.file, str):
            raise InputError(f"{where}.file: expected a path, got {self.file!r}")
        number(f"{where}.top_fraction", self.top_fraction, 0.0, 1.0, lo_open=True)
        integer(f"{where}.sample_size", self.sample_size, 2)
        choice(f"{where}.sample", self.sample, SAMPLE_METHODS)
        return self


@dataclass
class SearchConfig:
    """Everything a search run needs. ``out`` None: ``runs/search-<UTC timestamp>``.
    ``threads``: torch intra-op CPU threads (None: torch's count when the run starts); tiny
    networks run fastest with 1 (the default, the quick preset's), as thread hand-offs cost more
    than the work. Results depend on it (MKL / oneDNN sums): a resume or warm start with another
    count is refused. The field defaults are the quick preset's, so ``SearchConfig()``,
    ``from_dict``, ``from_yaml`` and ``naslid.search()`` start from the same values. ``plots`` /
    ``tensorboard``: write the PNG plots / TensorBoard scalars of the report. ``warm_start``: a
    run folder whose root warm-up (``train.warmup_epochs[0]`` epochs) this run adopts instead of
    training its own; the two runs must agree on everything the warm-up depends on (space, data,
    seed, optimiser, sampling), so runs that differ only from the first split on (criteria,
    leaf epochs) share one warm-up (``naslid.run.warm_start``)."""

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
    preset: str | None = "quick"
    threads: int | None = 1
    plots: bool = True
    tensorboard: bool = True
    warm_start: str | None = None

    # fields that do not change what a run computes (not part of its identity); ``warm_start``
    # adopts a warm-up that this run would compute itself (``naslid.run.warm_start`` checks that)
    RUN_NEUTRAL = ("out", "resume", "quiet", "preset", "threads", "plots", "tensorboard", "warm_start")

    # ----- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, base: "SearchConfig | None" = None) -> "SearchConfig":
        """Overlay ``d`` (nested mapping, any subset of fields) onto ``base`` (default: defaults).
        Unknown keys raise InputError naming them."""
        cfg = copy.deepcopy(base) if base is not None else cls()
        if d is None:
            return cfg
        if not isinstance(d, Mapping):
            raise InputError(f"config: expected a mapping of sections, got {type(d).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        for key, val in d.items():
            if key not in sections:
                raise InputError(f"config: unknown field {key!r} (known: {', '.join(sections)})")
            cur = getattr(cfg, key)
            if dataclasses.is_dataclass(cur):
                if val is None:
                    continue
                if not isinstance(val, Mapping):
                    raise InputError(f"config.{key}: expected a mapping, got {val!r}")
                names = {f.name for f in dataclasses.fields(cur)}
                for k2, v2 in val.items():
                    if k2 not in names:
                        raise InputError(f"config: unknown field {key}.{k2} (known: {', '.join(sorted(names))})")
                    setattr(cur, k2, _normalised(key, k2, v2))
            else:
                setattr(cfg, key, val)
        return cfg

    @classmethod
    def preset_config(cls, name: str) -> "SearchConfig":
        """The preset ``name`` (quick | paper) from ``naslid/configs/<name>.yaml``."""
        if name not in PRESETS:
            raise InputError(f"config.preset: unknown preset {name!r} (choose {', '.join(PRESETS)})")
        cfg = cls.from_yaml(CONFIG_DIR / f"{name}.yaml")
        cfg.preset = name
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, base: "SearchConfig | None" = None) -> "SearchConfig":
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config file {str(p)!r} does not exist")
        try:
            d = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise InputError(f"config file {str(p)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
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
        """The fields that determine a run's results (``RUN_NEUTRAL`` ones removed; so is
        ``search.reference_size``, ``free_cells`` and ``free_batch`` when ``search.score`` is a single
        supernet signal, which does not use them, and the last two at their defaults: pure-supernet
        runs keep the identity they had before combinations existed, and combined runs theirs from
        before the free scores' network could be chosen; ``split.probe_chunks`` at ``auto``, which
        probes as before the option on every input under 64 MiB per cell tensor)."""
        d = self.to_dict()
        for k in self.RUN_NEUTRAL:
            d.pop(k, None)
        pure = isinstance(self.search.score, str) and self.search.score in SCORES
        if pure:
            d["search"].pop("reference_size", None)
        for k, default in FREE_NET_DEFAULTS.items():  # runs from before these fields keep their identity
            if pure or d["search"].get(k) == default:
                d["search"].pop(k, None)
        if d["split"].get("probe_chunks") == "auto":  # as before the option: the plain forward below 64 MiB
            d["split"].pop("probe_chunks")
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
            raise InputError(f"config.space.options: expected a mapping of keyword options, got {extra!r}")
        clash = sorted(set(extra) & set(opts))
        if clash:
            raise InputError(f"config.space.options: {clash} are set by other fields "
                             "(space.C/N/width, data); set them there")
        opts.update({k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()})
        return opts

    # ----- validation --------------------------------------------------------------------------
    def validate(self, num_decisions: int | None = None) -> "SearchConfig":
        """Check every field; InputError naming the field. Each section checks its own fields
        (``SpaceSection.validate``, ..., ``SplitConfig.validate``, ``EvolutionConfig.validate``);
        this adds the rules across sections and the top-level fields. ``num_decisions`` (the
        space's number of decisions) enables the check that there are no more levels than
        decisions. Changes nothing and reads no file (see ``naslid.run.prepare.prepare``)."""
        for name in ("space", "data", "split", "train", "search", "benchmark"):
            getattr(self, name).validate(f"config.{name}")
        from .scores.spec import parse_signals

        if self.search.free_cells is not None and self.space.name != "nb201":
            raise InputError(f"config.search.free_cells: only NB201 has cells per stage; the {self.space.name} "
                             f"space's free scores run on its own network (leave free_cells null)")
        for sig in parse_signals(self.search.score):
            ok = FREE_SCORE_SPACES.get(sig)
            if ok is not None and self.space.name not in ok:
                raise InputError(f"config.search.score: score {sig!r} cannot rate space {self.space.name!r} "
                                 f"(it supports {list(ok)}); drop it from {self.search.score!r}")
        if num_decisions is not None and self.levels > num_decisions:
            raise InputError(f"config.train.warmup_epochs: {self.levels} levels but the {self.space.name} space "
                             f"has only {num_decisions} decisions to split")
        if self.data.batch_size % self.train.bn_shards:
            raise InputError(f"config.train.bn_shards: {self.train.bn_shards} shards do not divide "
                             f"data.batch_size {self.data.batch_size}")
        integer("config.seed", self.seed, 0)
        if not isinstance(self.device, str) or not (self.device in ("cpu", "cuda", "auto")
                                                     or self.device.startswith("cuda:")):
            raise InputError(f"config.device: expected cpu | cuda | cuda:N | auto, got {self.device!r}")
        if self.preset is not None:
            choice("config.preset", self.preset, PRESETS)
        if self.threads is not None:
            integer("config.threads", self.threads, 1)
        if self.warm_start is not None and (not isinstance(self.warm_start, str) or not self.warm_start):
            raise InputError(f"config.warm_start: expected the path of a run folder, got {self.warm_start!r}")
        return self


def _normalised(section: str, name: str, value):
    """A value as read (YAML, a dict, ``--set``) in the form the field holds: tuples become lists,
    and a single int ``train.warmup_epochs`` the one-level schedule ``[int]``."""
    if isinstance(value, tuple):
        return list(value)
    if (section, name) == ("train", "warmup_epochs") and isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def load_config(preset: str | None = None, config_file: str | None = None,
                overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    """Preset (default ``quick``) < YAML file < ``overrides`` (nested mapping, e.g. from the CLI)."""
    if config_file is not None:
        base = SearchConfig.from_yaml(config_file, base=SearchConfig.preset_config(preset) if preset else None)
    else:
        base = SearchConfig.preset_config(preset or "quick")
    return SearchConfig.from_dict(overrides or {}, base=base)
