"""LID profiles of the study's 500 cells with *inherited* supernet weights (not a fresh network).

Loads one node checkpoint of a ``cpu``-preset run folder (``ckpt/node-<id>.pt``: the root after the
warm-up, ``r``, or a leaf), activates each cell's path (``supernet.set_arch``) and records the LID of
every LID layer (``FeatureTap(reduce="lid", k=20)``, BatchNorm on the batch's statistics as in the
split step) on the seed's first 128 training images (the batch ``proxy_scores.py`` uses). Writes
``{"settings", "seconds", "scores": {"lid_profile_inherited": {seed: {arch: [L values]}}}}``, the
layout ``combined_table.py`` reads for profiles.

    python studies/supernet_lid.py --run runs/cpu-s0 --node r --seed 0 --json runs/supernet_lid_r.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    from proxy_scores import DATA, cells_of, naswot_batch, settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a cpu-preset run folder")
    ap.add_argument("--node", default="r", help="node id of the checkpoint (r: the warmed-up root)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N cells (a quick check)")
    ap.add_argument("--data", default=str(DATA / "cifar10.npz"))
    ap.add_argument("--benchmark", default=str(DATA / "nb201_cifar10_valid.csv"))
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    import torch

    from naslid.groundtruth.table import load_benchmark
    from naslid.spaces import get_space
    from naslid.spaces.taps import FeatureTap

    ck = Path(args.run) / "ckpt" / f"node-{args.node}.pt"
    if not ck.is_file():
        print(f"supernet_lid: --run/--node: {str(ck)!r} does not exist", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    args.cells, args.net = "sample", "cpu"
    st = settings(args)
    space = get_space("nb201", C=st["C"], N=st["N"], input_size=st["image_size"], num_classes=10)
    cells = cells_of(load_benchmark(args.benchmark, space), "sample", st["sample_size"])[:args.limit]
    state = torch.load(ck, map_location="cpu", weights_only=False)["state"]
    net = space.build_supernet()
    net.load_state_dict(state["model"])
    x, _ = naswot_batch(args, st, args.seed)
    out, t0 = {}, time.perf_counter()
    for a in cells:
        net.set_arch(space.arch_from_string(a))
        net.train()
        with torch.no_grad(), FeatureTap(net, reduce="lid", k=20) as tap:
            net(x)
        out[a] = [float(v) for v in tap.lid_vector()]
    sec = time.perf_counter() - t0
    doc = {"settings": {**st, "run": Path(args.run).name, "node": args.node, "epoch": state.get("epoch")},
           "seconds": {"lid_profile_inherited": {str(args.seed): sec}},
           "scores": {"lid_profile_inherited": {str(args.seed): out}}}
    Path(args.json).write_text(json.dumps(doc) + "\n")
    print(f"{len(cells)} cells in {sec:.0f} s (node {args.node}, epoch {state.get('epoch')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
