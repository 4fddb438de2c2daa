"""Training-free scores (``naslid.scores.by_name``) of NB201 cells at the ``cpu`` protocol's network.

The baselines of the criteria study (``studies/search_quality.py report --proxies``): for each
seed, every proxy scores the study's cells on the stand-alone network the ``cpu`` preset searches
(NB201 C=8, N=1, 16x16 inputs, 10 classes), freshly initialised with that seed; NASWOT's batch is
the first 128 images of that seed's training split (the data the seed's runs train on).

``--cells sample``: the 500 stratified cells every run of the study ranks (its τ baselines).
``--cells all``: one cell per isomorphism class of the benchmark (about 6,500), for the proxy's
own search: its best-scored cell is what a user gets from the proxy in the time it took to score
them (recorded), to set beside the cell a NAS-LID run found.

    python studies/proxy_scores.py --seeds 0 1 2 3 4 --cells sample --json results/search/proxies_sample.json

Every score of ``naslid.scores.by_name`` can be asked for (``--proxies synflow naswot aznas zico jacov
lid``), plus ``lid_profile``: the whole layer-wise LID profile per cell (the LID variants of
docs/search.md are read from it offline). ``aznas`` is stored as its four terms per cell.
``--net nb201`` scores NB201's own network (C=16, N=5, 32x32) instead of the preset's; ``--net size
--size C N PX`` any other size (the cost-per-τ study of docs/search.md).

    python studies/proxy_scores.py --seeds 0 --proxies aznas zico jacov lid_profile --cells sample \
        --json results/search/free_scores/sample_c8.json

Resumable: the JSON is rewritten after every (proxy, seed); finished ones are kept on a rerun
with the same settings (other settings are refused: choose another --json).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
COLUMN = "cifar10_valid_acc"
NASWOT_BATCH = 128


def settings(args) -> dict:
    from naslid.config import SearchConfig

    cfg = SearchConfig.preset_config("cpu")
    st = {"space": "nb201", "C": cfg.space.C, "N": cfg.space.N, "image_size": cfg.data.image_size,
          "valid_fraction": cfg.data.valid_fraction, "naswot_batch": args.batch, "cells": args.cells,
          "sample_size": cfg.benchmark.sample_size, "data": Path(args.data).name,
          "benchmark": Path(args.benchmark).name}
    if args.net == "nb201":  # the key only when not the preset's network: older files keep their hash
        st.update(C=16, N=5, image_size=32, net="nb201")
    elif args.net == "size":
        C, N, px = args.size
        st.update(C=C, N=N, image_size=px, net=f"C{C}-N{N}-{px}px")
    return st


def cells_of(bench, which: str, sample_size: int) -> list[str]:
    from naslid.ranking.cell_sample import _class_of_rows, sample_stratified_archs

    if which == "sample":
        return sample_stratified_archs(bench, sample_size, seed=0)
    _, reps = _class_of_rows(bench)
    return [bench.arch_strings[r] for r in reps]


def naswot_batch(args, st: dict, seed: int):
    from naslid.data import load_splits, make_loader

    data = load_splits("npz", args.data, valid_fraction=st["valid_fraction"], seed=seed,
                       image_size=st["image_size"], augment=False, download=False)
    x, y = next(iter(make_loader(data, "train", st["naswot_batch"], seed=seed, augment=False, drop_last=True)))
    return x, y


def score(name: str, space, cells, x, y, seed: int) -> dict:
    """{arch: value} of one score (``lid_profile``: the LID of every LID layer, a list)."""
    from naslid.scores.by_name import score_cells
    from naslid.scores.proxies import fresh_subnet
    from naslid.scores.lid_profile import lid_profile

    if name == "lid_profile":
        return {a: [float(v) for v in lid_profile(fresh_subnet(space, a, seed), x, 20, copy_net=False)]
                for a in cells}
    return score_cells([name], space, cells, x=x, y=y, seed=seed)[name]


def _json_value(v):
    if isinstance(v, dict):
        return {k: _json_value(u) for k, u in v.items()}
    if isinstance(v, list):
        return [_json_value(u) for u in v]
    return v if math.isfinite(v) else None


def _best(sc: dict):
    """The best-scored cell (AZ-NAS: by its rank aggregate over these cells); None for a profile."""
    from naslid.scores.aznas import AZNAS_TERMS, rank_aggregate

    first = next(iter(sc.values()))
    if isinstance(first, list):
        return None
    if isinstance(first, dict):
        agg = rank_aggregate({t: [sc[a][t] for a in sc] for t in AZNAS_TERMS})
        return list(sc)[int(agg.argmax())]
    finite = {a: v for a, v in sc.items() if math.isfinite(v)}
    return max(finite, key=finite.get)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--proxies", nargs="+", default=["synflow", "naswot"])
    p.add_argument("--cells", choices=("sample", "all"), default="sample")
    p.add_argument("--data", default=str(DATA / "cifar10.npz"))
    p.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    p.add_argument("--json", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--net", choices=("cpu", "nb201", "size"), default="cpu",
                   help="cpu: the preset's C=8, N=1, 16x16 network; nb201: C=16, N=5, 32x32; size: --size's")
    p.add_argument("--batch", type=int, default=NASWOT_BATCH,
                   help="images in the one batch every data-dependent score sees (default 128)")
    p.add_argument("--size", type=int, nargs=3, metavar=("C", "N", "PX"),
                   help="with --net size: the network's channels C, cells per stage N and image side PX")
    args = p.parse_args(argv)
    if (args.net == "size") != (args.size is not None):
        print("proxy_scores: --size is given exactly when --net size is", file=sys.stderr)
        return 2
    if not 2 <= args.batch <= 25000:
        print(f"proxy_scores: --batch: 2 <= batch <= 25000 (the training split), got {args.batch}", file=sys.stderr)
        return 2
    if args.size is not None and (min(args.size) < 1 or args.size[2] < 8):
        print(f"proxy_scores: --size: C, N >= 1 and PX >= 8, got {args.size}", file=sys.stderr)
        return 2

    import torch

    from naslid.groundtruth.table import load_benchmark
    from naslid.run.checkpoint import atomic_write_text
    from naslid.choices import FREE_SCORES
    from naslid.spaces import get_space

    for opt, path in (("--data", args.data), ("--benchmark", args.benchmark)):
        if not Path(path).is_file():
            print(f"proxy_scores: {opt}: {path!r} does not exist (`naslid data cifar10` / `naslid data nb201` build the files)", file=sys.stderr)
            return 2
    known = list(FREE_SCORES) + ["lid_profile"]
    bad = [x for x in args.proxies if x not in known]
    if bad:
        print(f"proxy_scores: --proxies: unknown {bad} (choose from {known})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    st = settings(args)
    key = hashlib.sha256(json.dumps(st, sort_keys=True).encode()).hexdigest()[:16]
    out = Path(args.json)
    doc = json.loads(out.read_text()) if out.is_file() else None
    if doc is not None and doc.get("settings_hash") != key:
        print(f"proxy_scores: --json: {str(out)!r} holds scores of another setting ({doc.get('settings')}); "
              f"choose another --json", file=sys.stderr)
        return 2
    if doc is None:
        doc = {"settings": st, "settings_hash": key, "torch": torch.__version__, "cpu": platform.processor()
               or platform.machine(), "scores": {}, "seconds": {}, "best": {}}
    space = get_space("nb201", C=st["C"], N=st["N"], input_size=st["image_size"], num_classes=10)
    bench = load_benchmark(args.benchmark, space)
    cells = cells_of(bench, args.cells, st["sample_size"])
    acc = dict(zip(bench.arch_strings, bench.values(COLUMN)))
    for name in args.proxies:
        for seed in args.seeds:
            if str(seed) in doc["scores"].get(name, {}):
                continue
            x, y = naswot_batch(args, st, seed)
            t0 = time.perf_counter()
            sc = score(name, space, cells, x, y, seed)
            sec = time.perf_counter() - t0
            best = _best(sc)
            doc["scores"].setdefault(name, {})[str(seed)] = {a: _json_value(v) for a, v in sc.items()}
            doc["seconds"].setdefault(name, {})[str(seed)] = sec
            if best is not None:
                doc["best"].setdefault(name, {})[str(seed)] = {"arch": best, COLUMN: acc[best], "cells": len(cells)}
            atomic_write_text(out, json.dumps(doc, indent=0) + "\n")
            print(f"{name} seed {seed}: {len(cells)} cells in {sec:.0f} s; best {best} "
                  f"({acc[best] if best else float('nan'):.2f} %)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
