"""One-shot ranking probe: train one NB201 supernet on CIFAR-10 (cifar10-valid half), score
de-isomorphic cells with inherited weights on a fixed held-out set, report Kendall tau against
NB201's ``cifar10_valid_acc`` (by accuracy and by -loss) next to the parameter count's tau.

A study tool for choosing the CPU protocol (resolution, width, epochs, sampling, BN handling); the
product's own path is ``naslid search``. Writes one JSON line per run to ``--json``.

    python studies/oneshot_probe.py --epochs 20 --size 16 --C 8 --N 1 --json /tmp/probe.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--train", type=int, default=25000)
    ap.add_argument("--valid", type=int, default=2000)
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--sampling", choices=["uniform", "fair"], default="uniform")
    ap.add_argument("--bn", default="recalibrate,batch")
    ap.add_argument("--affine", type=int, default=1)
    ap.add_argument("--augment", type=int, default=0)
    ap.add_argument("--channels-last", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(ROOT / "python"))
    from naslid.groundtruth.table import load_benchmark
    from naslid.data import load_splits
    from naslid.spaces import get_space

    data = load_splits("npz", str(SHARED / "cifar10.npz"), valid_fraction=0.5, seed=a.seed,
                       max_train=a.train, max_valid=a.valid)

    def tensors(split):
        s = getattr(data, split)
        x = s.get(torch.arange(len(s))).float().div_(255)
        if a.size != x.shape[-1]:
            x = F.adaptive_avg_pool2d(x, a.size)
        m = torch.tensor(data.mean).view(1, -1, 1, 1)
        sd = torch.tensor(data.std).view(1, -1, 1, 1)
        return ((x - m) / sd).contiguous(), s.labels.long()

    xtr, ytr = tensors("train")
    xva, yva = tensors("valid")
    space = get_space("nb201", C=a.C, N=a.N, num_classes=10, input_size=a.size, affine=bool(a.affine))
    torch.manual_seed(a.seed)
    net = space.build_supernet()
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=mf)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = len(xtr) // a.batch
    total = max(1, int(round(a.epochs * steps_per_epoch)))
    per_step = 5 if a.sampling == "fair" else 1
    total = max(1, total // per_step)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    g = torch.Generator().manual_seed(a.seed)
    keys = list(space.decisions)
    ops = space.decisions[keys[0]]
    t0 = time.perf_counter()
    net.train()
    step, order, pos = 0, torch.randperm(len(xtr), generator=g), 0
    seen = 0
    while step < total:
        if pos + a.batch > len(xtr):
            order, pos = torch.randperm(len(xtr), generator=g), 0
        idx = order[pos:pos + a.batch]
        pos += a.batch
        x, y = xtr[idx], ytr[idx]
        if a.augment:
            f = torch.rand(len(x), generator=g) < 0.5
            x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)
        x = x.contiguous(memory_format=mf)
        opt.zero_grad(set_to_none=True)
        if a.sampling == "fair":
            perms = [torch.randperm(5, generator=g).tolist() for _ in keys]
            for m in range(5):
                net.set_arch({k: ops[perms[i][m]] for i, k in enumerate(keys)})
                F.cross_entropy(net(x), y).backward()
        else:
            net.set_arch(space.sample(None, g))
            F.cross_entropy(net(x), y).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        step += 1
        seen += len(x) * per_step
    t_train = time.perf_counter() - t0

    bench = load_benchmark(str(SHARED / "nb201_cifar10_valid.csv"), space)
    col = bench.acc_columns[0]
    # stratified de-isomorphic cells: one per class, spread over the truth's quantiles
    rows, seen_keys = [], set()
    for s in bench.arch_strings:
        k = space.canonical_key(space.arch_from_string(s))
        if k not in seen_keys:
            seen_keys.add(k)
            rows.append((bench.acc(s, col), s))
    rows = [r for r in rows if math.isfinite(r[0])]
    rows.sort()
    pick = np.linspace(0, len(rows) - 1, a.cells).round().astype(int)
    cells = [rows[i][1] for i in pick]
    calib = xtr[:512]
    t1 = time.perf_counter()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    truth = [bench.acc(s, col) for s in cells]
    params = [space.count_params(space.arch_from_string(s)) for s in cells]
    tau = lambda p: float(stats.kendalltau(p, truth).statistic)
    out = dict(vars(a), train_s=round(t_train, 1), img_per_s=round(seen / t_train), tau_params=tau(params))
    for bn in a.bn.split(","):
        accs, losses = [], []
        with torch.no_grad():
            for s in cells:
                net.set_arch(space.arch_from_string(s))
                if bn == "recalibrate":
                    for m in bns:
                        m.reset_running_stats()
                        m.momentum = None
                    net.train()
                    for i in range(0, len(calib), 256):
                        net(calib[i:i + 256].contiguous(memory_format=mf))
                    net.eval()
                else:
                    net.train()
                c, l = 0, 0.0
                for i in range(0, len(xva), 500):
                    lo = net(xva[i:i + 500].contiguous(memory_format=mf))
                    c += int((lo.argmax(1) == yva[i:i + 500]).sum())
                    l += float(F.cross_entropy(lo, yva[i:i + 500], reduction="sum"))
                accs.append(100.0 * c / len(xva))
                losses.append(l / len(xva))
        out[f"{bn}_tau_acc"] = tau(accs)
        out[f"{bn}_tau_negloss"] = tau([-v for v in losses])
        out[f"{bn}_mean_acc"] = float(np.mean(accs))
        out[f"{bn}_ties"] = len(accs) - len(set(accs))
    out["eval_s"] = round(time.perf_counter() - t1, 1)
    print(json.dumps(out))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")
    return out


if __name__ == "__main__":
    main()
