"""Is the supernet training loop at fault? One fixed NB201 cell trained two ways on the same data.

(a) ``naslid.blocks.supernet_training.train_epoch`` on the weight-sharing supernet restricted to one cell (a mask
    with a single candidate per edge, so every batch trains exactly that path), evaluated with
    ``naslid.blocks.inherited_eval.arch_metrics``;
(b) a plain torch loop (SGD, cross-entropy, the same schedule) on the stand-alone network of the same
    cell (``space.build_subnet``), evaluated with a plain loop.

Same images (the ``cpu`` preset's: CIFAR-10 cifar10-valid half, 16x16), same epochs, batch and
learning rate, same seed for the initial weights. If the loop is right, both reach the same held-out
accuracy within seed noise; the report gives both, with images per second.

    python studies/loop_check.py --epochs 3 --json /tmp/loop_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=BEST)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    a = p.parse_args(argv)
    if not (DATA / "cifar10.npz").exists():
        print("loop_check: needs cifar10.npz (`naslid data cifar10` builds it); skipped", file=sys.stderr)
        return 0
    from naslid.data import fixed_batches, load_splits, make_loader
    from naslid.blocks.inherited_eval import arch_metrics, classify
    from naslid.spaces import get_space
    from naslid.blocks.supernet_training import OptimConfig, build_optimizer, build_scheduler, make_generator, train_epoch

    data = load_splits("npz", str(DATA / "cifar10.npz"), valid_fraction=0.5, seed=a.seed, image_size=16,
                       max_valid=2000, augment=False)
    space = get_space("nb201", C=8, N=1, num_classes=10, input_size=16)
    arch = space.arch_from_string(a.arch)
    valid = fixed_batches(data, "valid", 500)
    cfg = OptimConfig(lr=a.lr)
    out = {"arch": a.arch, "epochs": a.epochs, "batch": a.batch, "lr": a.lr}

    # (a) the project's loop on the supernet, masked to the one cell
    torch.manual_seed(a.seed)
    net = space.build_supernet()
    mask = {k: torch.tensor([c == arch[k] for c in cands]) for k, cands in space.decisions.items()}
    net.set_mask(mask)
    loader = make_loader(data, "train", a.batch, seed=a.seed, drop_last=True)
    opt = build_optimizer(net, cfg)
    sched = build_scheduler(opt, cfg, epochs=a.epochs, steps_per_epoch=len(loader))
    t0 = time.perf_counter()
    for e in range(a.epochs):
        loader.set_epoch(e)
        train_epoch(space, net, mask, loader, opt, generator=make_generator(e), scheduler=sched,
                    grad_clip=cfg.grad_clip)
    out["supernet_loop_s"] = time.perf_counter() - t0
    out["supernet_loop"] = arch_metrics(space, net, arch, valid, bn="batch")
    net.eval()
    out["supernet_loop_eval_mode"] = classify(net, valid)

    # (b) a plain torch loop on the stand-alone network
    torch.manual_seed(a.seed)
    model = space.build_subnet(arch)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs * len(loader))
    t0 = time.perf_counter()
    model.train()
    for e in range(a.epochs):
        loader.set_epoch(e)
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
    out["plain_loop_s"] = time.perf_counter() - t0
    model.eval()
    out["plain_loop"] = classify(model, valid)
    n = a.epochs * len(loader) * a.batch
    out["images_per_s"] = {"supernet_loop": n / out["supernet_loop_s"], "plain_loop": n / out["plain_loop_s"]}
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
