"""Peak memory and wall time of one split step: NAS-LID (criterion lid) against GM-NAS (grad).

``bench_memory(...)`` builds one supernet of a space, its SGD optimizer state and one data batch
(the *baseline*), then runs ``naslid.split.split_step`` restricted to one decision (all its ops, one
repeat: the code path the search runs) once per criterion and measures the memory the step itself
adds on top of the baseline:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the allocated
  bytes before the step.
- CPU: the peak of live tensor bytes from the CPU allocator's own allocation/free stream
  (``torch.profiler`` with ``profile_memory=True``: every c10 allocation and free, in order; the
  running sum's maximum). Allocations outside the c10 allocator (e.g. a BLAS library's private
  buffers) are not seen: the second figure covers them.
- Second figure: process peak RSS in a fresh subprocess per criterion (``VmHWM`` reset through
  ``/proc/self/clear_refs`` after the baseline is built, when the kernel allows it; else the
  peak since start), minus the RSS after the baseline.

Wall time: the median of ``repeats`` unprofiled runs of the step (the profiled run is timed too).

CLI: ``python -m naslid.studies.peak_memory --space nb201 --batch 32 --input-size 224 --json out.json``
(``naslid bench-memory`` once the orchestrator wires ``bench_memory_main``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import torch

from ..choices import SPACES
from ..errors import InputError
from ..run.rss import reset_peak_rss, rss_bytes

PAPER_SAVED_PERCENT = 86.0  # NAS-LID paper: LID saves up to 86 % of GM's GPU memory (NB201, 32x3x224x224)
DEVICES = ("cpu", "cuda")
CRITERIA = ("lid", "grad")


# ----------------------------------------------------------------------------------------- measuring
def _cpu_peak(fn: Callable[[], Any]) -> tuple[int, float, Any]:
    # kineto logs a GPU-count "ERROR" on machines without a GPU; keep the user's setting if any
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        out = fn()
    seconds = time.perf_counter() - t0
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events = [e for e in events if str(e.device_type()).endswith("CPU")]
    events.sort(key=lambda e: e.start_ns())  # stable: same-time events keep the recorded order
    live = peak = 0
    for e in events:
        live += int(e.nbytes())
        peak = max(peak, live)
    return peak, seconds, out


def _cuda_peak(fn: Callable[[], Any], device: torch.device) -> tuple[int, float, Any]:
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return max(0, torch.cuda.max_memory_allocated(device) - base), seconds, out


def measure_peak(fn: Callable[[], Any], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Run ``fn()`` once; return ``{"peak_extra_bytes", "seconds", "method", "result"}``: the peak of
    tensor memory ``fn`` allocated on ``device`` above what was live when it started (memory ``fn``
    frees before returning counts while it was live)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("measure_peak: device cuda requested but torch.cuda.is_available() is False")
        peak, seconds, out = _cuda_peak(fn, device)
        method = "torch.cuda.max_memory_allocated after reset_peak_memory_stats"
    elif device.type == "cpu":
        peak, seconds, out = _cpu_peak(fn)
        method = "torch.profiler profile_memory: CPU allocator alloc/free stream, max running sum"
    else:
        raise ValueError(f"measure_peak: device {device} is not one of {list(DEVICES)}")
    return {"peak_extra_bytes": int(peak), "seconds": seconds, "method": method, "result": out}


# ----------------------------------------------------------------------------------------- setup
def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        key = (t.untyped_storage().data_ptr(), t.device)
        if key in seen:
            continue
        seen.add(key)
        total += t.untyped_storage().nbytes()
    return total


def _check_options(space: str, batch: int, input_size: int, width, repeats: int, device: str, k: int,
                   probe_chunks: int | str = "auto") -> None:
    fn = "bench_memory"
    if not isinstance(space, str) or space not in SPACES:
        raise InputError(f"{fn}: space={space!r} is not one of {list(SPACES)}")
    checks = [("batch", batch, 2), ("input_size", input_size, 1), ("repeats", repeats, 0), ("k", k, 1)]
    if probe_chunks != "auto":
        checks.append(("probe_chunks", probe_chunks, 0))
    for name, v, lo in checks:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{fn}: {name}={v!r} must be an integer >= {lo}")
    if k > batch - 2:
        raise InputError(f"{fn}: k={k} needs batch >= k + 2 = {k + 2}, got batch={batch} (LID: k must be "
                         "smaller than the batch - 1 neighbour candidates of each sample)")
    if width is not None and (isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0):
        raise InputError(f"{fn}: width={width!r} must be a positive number or None (the space's default)")
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise InputError(f"{fn}: device={device!r} is not one of {list(DEVICES)}")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{fn}: device={device!r} but no CUDA device is available")


class _Setup:
    """Space, supernet, SGD optimizer with its momentum state, one batch, the decision to split."""

    def __init__(self, space: str, batch: int, input_size: int, width, device: str, decision: str | None,
                 space_options: dict | None, seed: int):
        from naslid.spaces import get_space

        opts = dict(space_options or {})
        opts["input_size"] = input_size
        if width is not None:
            opts["width"] = float(width)
        self.device = torch.device(device)
        try:
            self.space = get_space(space, **opts)
        except (TypeError, ValueError) as e:  # the space's own checks of its options
            raise InputError(f"bench_memory: space_options: {e}") from e
        torch.manual_seed(seed)
        self.supernet = self.space.build_supernet().to(self.device)
        self.optimizer = torch.optim.SGD(self.supernet.parameters(), lr=0.025, momentum=0.9, nesterov=True,
                                         weight_decay=5e-4)
        for p in self.supernet.parameters():  # the state one training step leaves, without running one
            self.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
        g = torch.Generator().manual_seed(seed)
        num_classes = getattr(self.space, "num_classes", 10)
        in_ch = getattr(self.space, "in_channels", 3)
        self.x = torch.randn(batch, in_ch, input_size, input_size, generator=g).to(self.device)
        self.y = torch.randint(num_classes, (batch,), generator=g).to(self.device)
        decs = self.space.decisions
        if decision is None:
            most = max(len(v) for v in decs.values())
            decision = next(k for k, v in decs.items() if len(v) == most)
        elif decision not in decs:
            raise InputError(f"bench_memory: decision={decision!r} is not a decision of {space} "
                             f"(first ones: {list(decs)[:6]})")
        self.decision = decision
        self.seed = seed

    def baseline(self) -> dict[str, int]:
        model = _tensor_bytes(list(self.supernet.parameters()) + list(self.supernet.buffers()))
        optim = _tensor_bytes(t for st in self.optimizer.state.values() for t in st.values()
                              if isinstance(t, torch.Tensor))
        data = _tensor_bytes([self.x, self.y])
        out = {"model_bytes": model, "optimizer_bytes": optim, "batch_bytes": data,
               "total_bytes": model + optim + data}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            out["cuda_allocated_bytes"] = int(torch.cuda.memory_allocated(self.device))
        return out

    def step(self, criterion: str, k: int, progress: bool = False, probe_chunks: int | str = "auto"):
        """One split step of ``self.decision`` through ``naslid.split.split_step``."""
        from naslid.split import SplitConfig, split_step

        cfg = SplitConfig(criterion=criterion, repeats=1, k=k, probe_chunks=probe_chunks)
        return split_step(self.space, self.supernet, self.space.full_mask(), [(self.x, self.y)], cfg,
                          generator=torch.Generator().manual_seed(self.seed), device=self.device,
                          decisions=[self.decision], progress=progress)


# ----------------------------------------------------------------------------------------- RSS child
def _rss_child(spec: dict) -> dict:
    setup = _Setup(spec["space"], spec["batch"], spec["input_size"], spec["width"], "cpu", spec["decision"],
                   spec["space_options"], spec["seed"])
    base = rss_bytes("VmRSS")
    reset = reset_peak_rss()
    setup.step(spec["criterion"], spec["k"], probe_chunks=spec.get("probe_chunks", "auto"))
    peak = rss_bytes("VmHWM")
    return {"rss_baseline_bytes": base, "rss_peak_bytes": peak, "hwm_reset": reset,
            "rss_extra_bytes": None if base is None or peak is None else max(0, peak - base)}


def _rss_in_subprocess(spec: dict, timeout: float | None) -> dict:
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "naslid.studies.peak_memory", "--_rss-child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"rss_error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        return {"rss_error": f"child exited {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------- the bench
def bench_memory(space: str = "nb201", batch: int = 32, input_size: int = 224, width: float | None = None,
                 repeats: int = 3, device: str = "cpu", *, decision: str | None = None, k: int = 20,
                 space_options: dict | None = None, criteria: Sequence[str] = CRITERIA, rss: bool = True,
                 rss_timeout: float | None = 3600, seed: int = 0, progress: bool = False,
                 probe_chunks: int | str = "auto") -> dict[str, Any]:
    """Peak memory and wall time of one split step of one decision, per criterion (lid, grad).

    space / space_options / width / input_size  the supernet (``get_space(space, input_size=...,
        width=..., **space_options)``); width None keeps the space's default
    batch      images in the batch (B, 3, input_size, input_size); k <= batch - 2
    repeats    unprofiled timed runs per criterion (0: time only the profiled run)
    device     cpu | cuda;  decision: the decision split (default: the first with the most ops)
    probe_chunks  the LID probe's batch chunks (``SplitConfig.probe_chunks``: "auto", or an int;
               0: the plain forward)
    rss        also measure peak RSS in a fresh subprocess per criterion (CPU only)
    Returns a JSON-ready dict: ``lid`` / ``grad`` -> {peak_extra_bytes, peak_total_bytes, seconds,
    seconds_profiled, ...}, ``baseline``, ``ratio`` (LID / GM peak extra), ``ratio_total``,
    ``saved_percent``, ``saved_percent_total``, ``paper_saved_percent``, settings.
    """
    _check_options(space, batch, input_size, width, repeats, device, k, probe_chunks)
    bad = [c for c in criteria if c not in CRITERIA]
    if bad or not criteria:
        raise InputError(f"bench_memory: criteria {list(criteria)} must be a non-empty subset of {list(CRITERIA)}")
    setup = _Setup(space, batch, input_size, width, device, decision, space_options, seed)
    base = setup.baseline()
    out: dict[str, Any] = {
        "space": space, "space_options": {**(space_options or {}), "width": width}, "batch": batch,
        "input_size": input_size, "device": str(setup.device), "decision": setup.decision,
        "n_ops": len(setup.space.decisions[setup.decision]), "k": k, "repeats": repeats, "seed": seed,
        "num_lid_layers": len(setup.supernet.lid_layers()), "probe_chunks": probe_chunks,
        "num_shared_params": sum(p.numel() for p in setup.supernet.shared_parameters(exclude=setup.decision)),
        "baseline": base, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "paper_saved_percent": PAPER_SAVED_PERCENT,
    }
    for crit in criteria:
        m = measure_peak(lambda: setup.step(crit, k, progress, probe_chunks), setup.device)
        rec = m.pop("result")
        times = []
        for _ in range(repeats):
            if setup.device.type == "cuda":
                torch.cuda.synchronize(setup.device)
            t0 = time.perf_counter()
            setup.step(crit, k, probe_chunks=probe_chunks)
            if setup.device.type == "cuda":
                torch.cuda.synchronize(setup.device)
            times.append(time.perf_counter() - t0)
        res = {"peak_extra_bytes": m["peak_extra_bytes"],
               "peak_total_bytes": m["peak_extra_bytes"] + base.get("cuda_allocated_bytes", base["total_bytes"]),
               "seconds": statistics.median(times) if times else m["seconds"], "seconds_all": times,
               "seconds_profiled": m["seconds"], "method": m["method"],
               "vector_dim": rec.decisions[setup.decision].vector_dim, "chosen_groups": rec.groups}
        if rss and setup.device.type == "cpu":
            res.update(_rss_in_subprocess({"space": space, "batch": batch, "input_size": input_size,
                                           "width": width, "decision": setup.decision,
                                           "space_options": space_options or {}, "seed": seed,
                                           "criterion": crit, "k": k, "probe_chunks": probe_chunks},
                                          rss_timeout))
        out[crit] = res
    if "lid" in out and "grad" in out:
        lid, gm = out["lid"], out["grad"]
        out["ratio"] = lid["peak_extra_bytes"] / gm["peak_extra_bytes"] if gm["peak_extra_bytes"] else None
        out["ratio_total"] = lid["peak_total_bytes"] / gm["peak_total_bytes"]
        out["saved_percent"] = None if out["ratio"] is None else 100.0 * (1.0 - out["ratio"])
        out["saved_percent_total"] = 100.0 * (1.0 - out["ratio_total"])
        out["time_ratio"] = lid["seconds"] / gm["seconds"] if gm["seconds"] else None
        if lid.get("rss_extra_bytes") and gm.get("rss_extra_bytes"):
            out["rss_ratio"] = lid["rss_extra_bytes"] / gm["rss_extra_bytes"]
    return out


# ----------------------------------------------------------------------------------------- CLI
def _mib(b) -> str:
    return "-" if b is None else f"{b / 2**20:,.1f}"


def format_summary(r: dict) -> str:
    """A short human-readable table of one ``bench_memory`` result."""
    lines = [f"split step of {r['space']} decision {r['decision']} ({r['n_ops']} ops), batch {r['batch']}, "
             f"input {r['input_size']}, device {r['device']}; baseline {_mib(r['baseline']['total_bytes'])} MiB "
             f"(model {_mib(r['baseline']['model_bytes'])}, optimizer {_mib(r['baseline']['optimizer_bytes'])}, "
             f"batch {_mib(r['baseline']['batch_bytes'])})",
             f"{'criterion':<10}{'peak extra MiB':>16}{'peak total MiB':>16}{'RSS extra MiB':>15}{'seconds':>10}"]
    for c in CRITERIA:
        if c in r:
            x = r[c]
            lines.append(f"{c:<10}{_mib(x['peak_extra_bytes']):>16}{_mib(x['peak_total_bytes']):>16}"
                         f"{_mib(x.get('rss_extra_bytes')):>15}{x['seconds']:>10.2f}")
    if r.get("ratio") is not None:
        lines.append(f"LID/GM peak extra = {r['ratio']:.3f} (saved {r['saved_percent']:.1f} %; total incl. baseline: "
                     f"saved {r['saved_percent_total']:.1f} %; paper: saved {PAPER_SAVED_PERCENT:.0f} %)")
    return "\n".join(lines)


def _chunks_arg(v: str) -> int | str:
    if v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {v!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="naslid bench-memory",
                                description="Peak memory and time of one split step: LID vs gradient matching.")
    p.add_argument("--space", default="nb201", choices=SPACES, help="search space whose supernet is split (default nb201)")
    p.add_argument("--batch", type=int, default=32, help="images in the split batch (default 32)")
    p.add_argument("--input-size", type=int, default=224, help="image side in pixels (default 224, the paper's setting)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's)")
    p.add_argument("--repeats", type=int, default=3, help="unprofiled timed runs per criterion")
    p.add_argument("--device", default="cpu", choices=DEVICES, help="where the step runs (default cpu)")
    p.add_argument("--decision", default=None, help="decision key to split (default: first with most ops)")
    p.add_argument("--k", type=int, default=20, help="neighbours of the LID estimate (default 20)")
    p.add_argument("--cells", type=int, default=None, help="NB201 only: cells per stage N (default 5)")
    p.add_argument("--probe-chunks", type=_chunks_arg, default="auto",
                   help="LID probe: batch chunks of NB201's low-memory forward (0: the plain forward; "
                        "default auto: 8 for cell tensors of 64 MiB or more)")
    p.add_argument("--no-rss", action="store_true", help="skip the fresh-subprocess peak RSS figure")
    p.add_argument("--json", default=None, metavar="FILE", help="write the result as JSON")
    p.add_argument("--progress", action="store_true", help="show progress bars on stderr")
    p.add_argument("--_rss-child", dest="rss_child", default=None, help=argparse.SUPPRESS)
    return p


def bench_memory_main(argv: list[str] | None = None) -> int:
    """Entry point of ``naslid bench-memory``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.rss_child is not None:
        torch.set_grad_enabled(True)
        print(json.dumps(_rss_child(json.loads(args.rss_child))))
        return 0
    opts = {}
    if args.cells is not None:
        if args.space != "nb201":
            print("naslid bench-memory: --cells applies to --space nb201 only", file=sys.stderr)
            return 2
        opts["N"] = args.cells
    try:
        r = bench_memory(args.space, args.batch, args.input_size, args.width, args.repeats, args.device,
                         decision=args.decision, k=args.k, space_options=opts, rss=not args.no_rss,
                         progress=args.progress, probe_chunks=args.probe_chunks)
    except InputError as e:  # only bad input: a bug keeps its traceback (exit status 1)
        print(f"naslid bench-memory: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(format_summary(r))
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(r, f, indent=2)
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(bench_memory_main())
