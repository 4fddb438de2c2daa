"""Speed of the LID ops against what a user would write instead, each implementation in its own process.

Every (case, implementation) pair runs in a fresh Python process (thread pools of MKL, OpenMP and
faiss slow each other down when they share one), with the same threads (``--threads``, default all
cores), on the same BN+ReLU-like float32 features: warm-up, then the median of ``--repeats`` timed
calls. The report names the CPU and its instruction sets, measures the sgemm rate, and gives ratios
measured in this one run.

Implementations (all: per-point MLE LID with k = 20 neighbours, self excluded, mean per layer):
  ext          the public function with its default arguments (``check_finite=True``, backend "auto",
               the strip kernel measured at first use): ``naslid_ext.lid_profile(layers, 20)`` for the
               NB201 profiles, ``naslid_ext.lid(x, 20)`` for a single set
  ext_raw      the raw op ``torch.ops.naslid.lid_profile`` (no argument checks): ext / ext_raw is what
               the public function's checks cost
  ext_blas     ext with the symmetric strips forced to the BLAS (``NASLID_CPU_SYRK=blas``)
  ext_fma      ext with the strips forced to the best FMA micro-kernel torch's CPU capability allows
               (``NASLID_CPU_SYRK=avx512`` or ``avx2``): the choice the build made before measuring
  ext_knn      ``naslid_ext.knn(x, 20)`` -> ``naslid_ext.lid_mle`` per layer (default arguments)
  ext_layers   ``naslid_ext.lid`` once per layer, as the search's split step calls it (FeatureTap)
  torch        plain torch as a user would write it: ``mm`` -> in-place ``sq_j - 2 g`` -> ``topk(k+1)``
               -> LID (float32, default matmul precision)
  faiss        ``faiss.knn`` (k + 1, self dropped) -> LID
  full_gemm    one ``X Xᵀ`` per layer (``torch.mm``), nothing else
Floors: ``sym_floor`` = half of the full Gram product's FLOPs (N² D per layer) at the sgemm rate
measured on a large square product; ext / sym_floor is how far ext is from the arithmetic floor.

Interleaved (``--interleaved-rounds``, default 20; 0 skips it): one more process per case calls ext,
ext_raw, ext_knn, torch and full_gemm in turn, round after round, so that all see the same machine
state; the order changes from round to round so that over 20 rounds each implementation runs right
after each other one equally often (``round_order``); the table gives per-round ratios (median, and
min–max over the rounds).

    python benchmarks/ops_speed.py --json /tmp/ops_speed.json --markdown /tmp/ops_speed.md \\
        [--readme docs/ops_benchmarks.md]  # rewrites the table between the BEGIN/END ops-speed markers
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

K = 20
NB201_DIMS = [16 * 32 * 32] * 5 + [32 * 16 * 16] * 6 + [64 * 8 * 8] * 6
CASES = ["nb201_N128", "nb201_N256", "nb201_N512", "nb201_N1024", "set_4096x512", "set_10000x128"]
IMPLS = ["ext", "ext_raw", "ext_blas", "ext_fma", "ext_knn", "ext_layers", "torch", "faiss", "full_gemm"]
INTERLEAVED = ["ext", "ext_raw", "ext_knn", "torch", "full_gemm"]
# environment switches that change the instruction sets used (recorded in the report when set)
ISA_SWITCHES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE",
                "NASLID_CPU_SYRK")
MARK_BEGIN, MARK_END = "<!-- BEGIN ops-speed -->", "<!-- END ops-speed -->"


# ----- worker side ------------------------------------------------------------------------------
def _features(n: int, d: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 12, generator=g)
    h = z @ torch.randn(12, d, generator=g) + 0.3 * torch.randn(n, d, generator=g)
    h = (h - h.mean(0)) / h.std(0)
    return torch.relu_(h).contiguous()


def case_layers(case: str):
    if case.startswith("nb201_N"):
        n = int(case[len("nb201_N"):])
        return [_features(n, d, s) for s, d in enumerate(NB201_DIMS)]
    n, d = (int(v) for v in case.split("_")[1].split("x"))
    return [_features(n, d, 99)]


def _lid_from_sq(sq):
    """NAS-LID estimator from sorted squared distances (N, k) (float32, vectorised)."""
    return -sq.shape[1] / (0.5 * (sq / sq[:, -1:]).log().sum(1))


def make_impl(name: str):
    import torch

    if name in ("ext", "ext_blas", "ext_fma"):
        import naslid_ext

        def public(layers):
            if len(layers) == 1:  # a single set: naslid_ext.lid
                return naslid_ext.lid(layers[0], K).unsqueeze(0)
            return naslid_ext.lid_profile(layers, K)
        return public
    if name == "ext_raw":
        import naslid_ext._C  # noqa: F401  (registers torch.ops.naslid)

        return lambda layers: torch.ops.naslid.lid_profile(layers, K, "naslid").mean(1)
    if name == "ext_knn":
        import naslid_ext

        return lambda layers: torch.stack([naslid_ext.lid_mle(naslid_ext.knn(x, K)[0]).mean() for x in layers])
    if name == "ext_layers":
        import naslid_ext

        return lambda layers: torch.stack([naslid_ext.lid(f, K, check_finite=False) for f in layers])
    if name == "torch":
        def plain(layers):
            out = []
            for x in layers:
                sq = (x * x).sum(1)
                g = torch.mm(x, x.t())
                g.mul_(-2.0).add_(sq.view(1, -1))             # sq_j - 2 g: row ranking of d_ij
                vals, _ = torch.topk(g, K + 1, dim=1, largest=False)
                d = (vals[:, 1:] + sq.view(-1, 1)).clamp_min_(0.0)  # drop self, add sq_i
                out.append(_lid_from_sq(d).mean())
            return torch.stack(out)
        return plain
    if name == "faiss":
        import faiss
        import numpy as np

        def run(layers):
            out = []
            for x in layers:
                a = np.ascontiguousarray(x.numpy())
                dist, _ = faiss.knn(a, a, K + 1)
                out.append(_lid_from_sq(torch.from_numpy(dist[:, 1:]).clamp_min(0.0)).mean())
            return torch.stack(out)
        return run
    if name == "full_gemm":
        return lambda layers: [torch.mm(x, x.t()) for x in layers]
    raise ValueError(f"unknown implementation {name!r}")


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timed(fn, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (warm it up first)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def worker(impl: str, case: str, repeats: int, threads: int) -> dict:
    if impl == "ext_blas":  # read once by the extension: set before it loads
        os.environ["NASLID_CPU_SYRK"] = "blas"
    import torch

    if impl == "ext_fma":  # the best FMA kernel torch's CPU capability allows (AVX2 under its emulation)
        cap = torch.backends.cpu.get_cpu_capability()
        os.environ["NASLID_CPU_SYRK"] = "avx512" if cap.startswith("AVX512") else "avx2"

    torch.set_num_threads(threads)
    if impl == "faiss":  # only its own worker loads faiss (and its OpenMP and OpenBLAS)
        import faiss

        faiss.omp_set_num_threads(threads)
    layers = case_layers(case)
    fn = make_impl(impl)
    base = rss_kb("VmRSS")
    if os.access("/proc/self/clear_refs", os.W_OK):  # reset the RSS high-water mark (Linux)
        Path("/proc/self/clear_refs").write_text("5")
    fn(layers)  # warm-up (and the peak-memory pass)
    peak = rss_kb("VmHWM") - base
    fn(layers)
    times = timed(lambda: fn(layers), repeats)
    row = {"impl": impl, "case": case, "ms": 1e3 * statistics.median(times), "ms_all": [1e3 * t for t in times],
           "peak_extra_mb": peak / 1024.0, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if impl.startswith("ext"):
        import naslid_ext

        cpu = naslid_ext.build_info()["cpu"]
        chosen = "/".join(sorted({c["kernel"] for c in cpu.get("choices", [])}))
        row["sym_kernel"] = (cpu.get("fma_kernel_cap") if cpu.get("mode") == "forced" else chosen) or "blas"
        row["kernel_mode"] = cpu.get("mode")
        row["kernel_choices"] = cpu.get("choices", [])
    return row


def interleaved_worker(case: str, rounds: int, threads: int) -> dict:
    """Every implementation of INTERLEAVED once per round, in turn, in this one process."""
    import torch

    torch.set_num_threads(threads)
    layers = case_layers(case)
    fns = {i: make_impl(i) for i in INTERLEAVED}
    for f in fns.values():  # warm-up (and the kernel measurement at first use)
        f(layers)
    ms = {i: [] for i in INTERLEAVED}
    for r in range(rounds):
        for i in round_order(INTERLEAVED, r):
            ms[i].append(1e3 * timed(lambda: fns[i](layers), 1)[0])
    return {"case": case, "rounds": rounds, "ms": ms}


def round_order(names: list[str], r: int) -> list[str]:
    """Round r's order of the interleaved implementations: balanced for what runs just before each.

    The state a call finds (caches, the thread pool awake or asleep) depends on the call before it:
    right after the big matmuls of ``full_gemm`` a call of ext costs about 0.5 ms more at N = 128
    than right after itself. A rotation of one fixed order would give each implementation the
    same predecessor in most rounds; here round r steps through the names with stride
    1 + (r // n) % (n - 1), starting at r % n (n = 5 is prime, so every stride visits all), and
    over n (n - 1) = 20 rounds each implementation follows each other one equally often (within
    a round; the first of a round follows the last of the round before)."""
    n = len(names)
    stride = 1 + (r // n) % (n - 1)
    return [names[(r + j * stride) % n] for j in range(n)]


def sgemm_rate(threads: int) -> float:
    """GFLOP/s of torch.mm on a 2048² float32 product at "highest" precision."""
    import torch

    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("highest")
    a = torch.randn(2048, 2048)
    for _ in range(2):
        torch.mm(a, a)
    return 2 * 2048 ** 3 / statistics.median(timed(lambda: torch.mm(a, a), 5)) / 1e9


# ----- driver side ------------------------------------------------------------------------------
def cpu_info() -> dict:
    flags, model = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    return {"model": model, "isa": isa, "cores": os.cpu_count()}


def sub(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def flops_sym(case: str) -> float:
    """N² D per layer summed: half the FLOPs (2 N² D) of the full Gram products."""
    if case.startswith("nb201_N"):
        n = int(case[len("nb201_N"):])
        return sum(float(n) * n * d for d in NB201_DIMS)
    n, d = (int(v) for v in case.split("_")[1].split("x"))
    return float(n) * n * d


def table(rows: list[dict], rate: float) -> str:
    by = {(r["case"], r["impl"]): r for r in rows}
    lines = ["| case | ext ms | ext_raw ms | ext_blas ms | ext_fma ms | ext_knn ms | ext_layers ms | torch ms | "
             "faiss ms | full X·Xᵀ ms | symmetric floor ms | ext vs torch | ext vs best other | "
             "ext_blas / ext | ext / ext_raw | ext / sym. floor | kernel chosen |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in dict.fromkeys(r["case"] for r in rows):
        ms = {i: by[(c, i)]["ms"] for i in IMPLS if (c, i) in by}
        floor = flops_sym(c) / (rate * 1e9) * 1e3
        others = [ms[i] for i in ("torch", "faiss") if i in ms]
        e = ms.get("ext")
        f = lambda i: f"{ms[i]:.1f}" if i in ms else "–"  # noqa: E731
        r = lambda a, b: f"{a / b:.2f}x" if a is not None and b else "–"  # noqa: E731
        kern = by[(c, "ext")].get("sym_kernel", "–") if (c, "ext") in by else "–"
        lines.append(f"| {c} | {f('ext')} | {f('ext_raw')} | {f('ext_blas')} | {f('ext_fma')} | {f('ext_knn')} | "
                     f"{f('ext_layers')} | {f('torch')} | {f('faiss')} | {f('full_gemm')} | {floor:.1f} | "
                     f"{r(ms.get('torch'), e)} | {r(min(others) if others else None, e)} | "
                     f"{r(ms.get('ext_blas'), e)} | {r(e, ms.get('ext_raw'))} | {r(e, floor)} | {kern} |")
    return "\n".join(lines)


def interleaved_table(runs: list[dict]) -> str:
    """Per-round ratios of the interleaved runs: median [min–max] over the rounds."""
    def stat(v):
        return f"{statistics.median(v):.2f}x [{min(v):.2f}–{max(v):.2f}]"

    lines = ["| case | ext ms | ext_raw ms | ext_knn ms | torch ms | full X·Xᵀ ms | ext vs torch | "
             "ext_knn vs torch | ext / ext_raw |", "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        ms = run["ms"]
        med = {i: statistics.median(v) for i, v in ms.items()}
        vs_torch = [t / e for t, e in zip(ms["torch"], ms["ext"])]
        knn_torch = [t / e for t, e in zip(ms["torch"], ms["ext_knn"])]
        over_raw = [e / r for e, r in zip(ms["ext"], ms["ext_raw"])]
        lines.append(f"| {run['case']} | {med['ext']:.1f} | {med['ext_raw']:.1f} | {med['ext_knn']:.1f} | "
                     f"{med['torch']:.1f} | {med['full_gemm']:.1f} | {stat(vs_torch)} | {stat(knn_torch)} | "
                     f"{stat(over_raw)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    p.add_argument("--interleaved-worker", metavar="CASE", help=argparse.SUPPRESS)
    p.add_argument("--interleaved-rounds", type=int, default=20)
    p.add_argument("--sgemm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cases", nargs="+", default=CASES)
    p.add_argument("--impls", nargs="+", default=IMPLS)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--readme", help="rewrite the table between the ops-speed markers of this file")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.repeats, a.threads)))
        return 0
    if a.interleaved_worker:
        print(json.dumps(interleaved_worker(a.interleaved_worker, a.interleaved_rounds, a.threads)))
        return 0
    if a.sgemm:
        print(json.dumps({"gflops": sgemm_rate(a.threads)}))
        return 0
    info = cpu_info()
    rate = sub(["--sgemm", "--threads", str(a.threads)])["gflops"]
    rows = []
    for c in a.cases:
        for i in a.impls:
            if i == "ext_layers" and not c.startswith("nb201"):
                continue
            rows.append(sub(["--worker", i, c, "--repeats", str(a.repeats), "--threads", str(a.threads)]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    inter = []
    if a.interleaved_rounds > 0:
        for c in a.cases:
            inter.append(sub(["--interleaved-worker", c, "--interleaved-rounds", str(a.interleaved_rounds),
                              "--threads", str(a.threads)]))
            print(json.dumps(inter[-1]), file=sys.stderr, flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    caps = sorted({r["torch_cpu_capability"] for r in rows})
    kern = sorted({r["sym_kernel"] for r in rows if r["impl"] == "ext"})
    modes = sorted({str(r.get("kernel_mode")) for r in rows if r["impl"] == "ext"})
    forced = [f"{v}={os.environ[v]}" for v in ISA_SWITCHES if v in os.environ]
    head = (f"CPU: {info['model']}, {a.threads} threads of {info['cores']} cores, instruction sets "
            f"{', '.join(info['isa']) or 'unknown'}; measured sgemm {rate:.0f} GFLOP/s (2048² torch.mm). "
            f"torch CPU capability {'/'.join(caps)}, ext's symmetric kernel {'/'.join(kern) or '–'} "
            f"({'/'.join(modes)})"
            + (f", set by {' '.join(forced)}" if forced else "") + ". "
            f"Run of {stamp}, each implementation in its own process, median of {a.repeats}.")
    md = head + "\n\n" + table(rows, rate)
    if inter:
        md += (f"\n\nInterleaved in one process per case ({a.interleaved_rounds} rounds; per-round ratios, "
               "median [min–max]):\n\n" + interleaved_table(inter))
    mem = [r for r in rows if r["case"] == "set_10000x128"]
    if mem:
        md += "\n\nPeak extra RSS at (10000, 128): " + ", ".join(f"{r['impl']} {r['peak_extra_mb']:.1f} MB" for r in mem)
    print(md)
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": info, "sgemm_gflops": rate, "threads": a.threads,
                                            "isa_switches": forced,
                                            "when": stamp, "rows": rows, "interleaved": inter}, indent=1))
    if a.markdown:
        Path(a.markdown).write_text(md + "\n")
    if a.readme:
        text = Path(a.readme).read_text()
        if MARK_BEGIN not in text or MARK_END not in text:
            raise SystemExit(f"{a.readme}: no {MARK_BEGIN} ... {MARK_END} markers")
        pre, rest = text.split(MARK_BEGIN, 1)
        _, post = rest.split(MARK_END, 1)
        Path(a.readme).write_text(pre + MARK_BEGIN + "\n" + md + "\n" + MARK_END + post)
    return 0


if __name__ == "__main__":
    sys.exit(main())
