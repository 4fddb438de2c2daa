"""``prepare(config) -> Prepared``: every input check of a run, before anything is written.

Validates the config, checks that the files it names exist and that the output folder may be used
(``RunFolder.check``: cheap, so a refused folder costs no data load), loads the data, builds the
space, re-validates the config against the space, checks the batch sizes against the data, reads
the benchmark and, with ``warm_start``, the adopted root checkpoint. Every bad input is a
``naslid.errors.InputError`` (a ValueError; TypeError for a config that is not a ``SearchConfig``)
naming the field or file.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..groundtruth.table import Benchmark, load_benchmark
from .checkpoint import RunFolder, default_run_dir
from ..config import DATASETS_FROM_DIR, SearchConfig
from ..data import DataSplits, load_splits
from ..errors import InputError, input_errors
from ..ranking import check_sample_request
from ..spaces import get_space
from ..spaces.base import SearchSpace
from .warm_start import load_warm_start


@dataclass
class Prepared:
    """A run's validated inputs."""

    cfg: SearchConfig
    data: DataSplits
    space: SearchSpace
    benchmark: Benchmark | None
    out: Path
    config_hash: str
    warm_state: dict | None = None   # the root checkpoint adopted from ``cfg.warm_start``
    threads: int = 1                 # intra-op CPU threads the run uses (part of its identity)


def check_paths(cfg: SearchConfig) -> None:
    """The files a run reads exist (``SearchConfig.validate`` does not look at the file system):
    ``data.data_dir`` of a dataset read from it, ``benchmark.file``. ValueError naming the field."""
    d = cfg.data
    if d.dataset in DATASETS_FROM_DIR and not os.path.exists(d.data_dir):
        raise InputError(f"config.data.data_dir: {d.data_dir!r} does not exist")
    if cfg.benchmark.file is not None and not os.path.isfile(cfg.benchmark.file):
        raise InputError(f"config.benchmark.file: {cfg.benchmark.file!r} is not a file")


def _load_data(cfg: SearchConfig) -> DataSplits:
    """The data splits of ``cfg.data``, with square images."""
    d = cfg.data
    try:
        data = load_splits(d.dataset, d.data_dir, valid_fraction=d.valid_fraction, seed=cfg.seed,
                           max_train=d.max_train, max_valid=d.max_valid, image_size=d.image_size,
                           augment=d.augment, download=True)
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"config.data: {e}") from None
    except OSError as e:
        raise InputError(f"config.data: cannot read dataset {d.dataset!r}: {e}") from None
    _, h, w = data.image_shape
    if h != w:
        raise InputError(f"config.data: images must be square, got {h}x{w}")
    return data


def _build_space(cfg: SearchConfig, data: DataSplits) -> SearchSpace:
    """The space of ``cfg.space`` for the data's classes, channels and image size."""
    c, h, _ = data.image_shape
    input_size = cfg.space.input_size or h
    if input_size != h:
        raise InputError(f"config.space.input_size: {input_size} differs from the data's image size {h}")
    try:
        return get_space(cfg.space.name, **cfg.space_options(data.num_classes, c, input_size))
    except (TypeError, ValueError) as e:
        raise InputError(f"config.space: {e}") from None


def check_lid_k(cfg: SearchConfig) -> None:
    """``split.k`` suits the LID estimator (the ops' own bound, ``naslid_ext``'s ``min_k``; here
    and not in ``SearchConfig.validate``, which stays free of torch), so a bad k fails before the
    warm-up instead of at the first split."""
    from naslid_ext._lid_math import min_k

    sp = cfg.split
    if sp.criterion == "lid" and cfg.levels and sp.k < min_k(sp.lid_estimator):
        raise InputError(f"config.split.k: k = {sp.k} is too small for split.lid_estimator "
                         f"{sp.lid_estimator!r}, which needs k >= {min_k(sp.lid_estimator)}")


def _check_groups(cfg: SearchConfig, space: SearchSpace) -> None:
    """A split into ``split.n_groups`` groups needs a decision with that many candidates."""
    most = max(len(v) for v in space.decisions.values())
    if cfg.levels and cfg.split.n_groups > most:
        raise InputError(f"config.split.n_groups: {cfg.split.n_groups} groups, but no decision of the "
                         f"{cfg.space.name} space has more than {most} candidates to split")


def _check_sizes(cfg: SearchConfig, data: DataSplits) -> None:
    """A training batch and the split's batches fit in the training split."""
    n_train = len(data.train)
    if n_train < cfg.data.batch_size:
        raise InputError(f"config.data.batch_size: {cfg.data.batch_size} exceeds the {n_train} training images")
    sp = cfg.split
    if cfg.levels and n_train < sp.batch_size * sp.repeats:
        raise InputError(f"config.split: {sp.repeats} repeats x batch {sp.batch_size} need "
                         f"{sp.repeats * sp.batch_size} training images, the split has {n_train}")


def _check_reference(cfg: SearchConfig, space: SearchSpace) -> None:
    """A combined ``search.score``'s reference sample fits in the space's isomorphism classes."""
    from ..scores.combination import count_classes
    from ..scores.spec import is_pure_supernet, parse_signals

    if is_pure_supernet(parse_signals(cfg.search.score)):
        return
    n = count_classes(space)
    if cfg.search.reference_size > n:
        raise InputError(f"config.search.reference_size: {cfg.search.reference_size} reference cells asked for, "
                         f"but the {space.name} space has only {n} distinct cells")


def _load_benchmark(cfg: SearchConfig, space: SearchSpace) -> Benchmark | None:
    """The benchmark of ``cfg.benchmark.file`` (None without one), checked against the ranking
    sample the config asks for."""
    b = cfg.benchmark
    if not b.file:
        return None
    try:
        bench = load_benchmark(b.file, space)
    except (FileNotFoundError, KeyError, TypeError) as e:
        raise InputError(f"config.benchmark.file: {e}") from None
    except ValueError as e:
        raise InputError(f"config.benchmark.file {b.file!r}: {e}") from None
    try:
        check_sample_request(bench, b.sample_size, b.sample)
    except ValueError as e:
        raise InputError(f"config.{e}") from None
    return bench


def prepare(config: SearchConfig, device: torch.device | None = None) -> Prepared:
    """Validate everything a run needs (see the module docstring); ``config`` is not modified
    (``Prepared.cfg`` is a validated copy, ``out`` filled in with the default run folder)."""
    if not isinstance(config, SearchConfig):
        raise TypeError(f"run_search: config must be a SearchConfig, got {type(config).__name__}")
    cfg = copy.deepcopy(config)
    with input_errors():
        cfg.validate()
    check_lid_k(cfg)
    check_paths(cfg)
    if cfg.out is None:
        cfg.out = default_run_dir()
    out = Path(cfg.out)
    # the output folder first: cheap, and a refused folder must not cost a data load
    threads = cfg.threads if cfg.threads is not None else torch.get_num_threads()
    RunFolder.check(out, cfg.config_hash(), cfg.resume, threads)
    data = _load_data(cfg)
    space = _build_space(cfg, data)
    with input_errors():
        cfg.validate(num_decisions=len(space.decisions))
    _check_sizes(cfg, data)
    _check_groups(cfg, space)
    _check_reference(cfg, space)
    bench = _load_benchmark(cfg, space)
    warm = load_warm_start(cfg, threads) if cfg.warm_start is not None else None
    return Prepared(cfg, data, space, bench, out, cfg.config_hash(), warm, threads)
