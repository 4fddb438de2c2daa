"""The memory measurement of naslid.studies.peak_memory: exactness on known allocations, repeatability, errors."""
from __future__ import annotations

import json
import re

import pytest
import torch

from naslid.studies.peak_memory import bench_memory
from naslid.studies.peak_memory import bench_memory_main
from naslid.studies.peak_memory import measure_peak
from naslid.run.rss import reset_peak_rss, rss_bytes

MB = 1_000_000


def test_known_tensor_within_one_percent():
    def step():
        a = torch.empty(10 * MB // 4)      # 10 MB, freed inside the step
        a.fill_(1.0)
        del a
        return None

    m = measure_peak(step, "cpu")
    assert abs(m["peak_extra_bytes"] - 10 * MB) <= 0.01 * 10 * MB


def test_overlapping_and_sequential_allocations():
    keep = []

    def step():
        a = torch.ones(6 * MB // 4)        # 6 MB
        b = torch.ones(3 * MB // 4)        # 3 MB live together with a -> 9 MB
        del a
        c = torch.ones(4 * MB // 4)        # 3 + 4 = 7 MB < 9 MB
        keep.append(c)                     # c outlives the step: still counted once
        del b

    m = measure_peak(step, "cpu")
    assert abs(m["peak_extra_bytes"] - 9 * MB) <= 0.01 * 9 * MB
    # memory live before the step is not counted
    big = torch.ones(20 * MB // 4)
    m = measure_peak(lambda: torch.ones(2 * MB // 4).sum(), "cpu")
    assert abs(m["peak_extra_bytes"] - 2 * MB) <= 0.01 * 2 * MB
    del big


def test_rss_helpers_see_a_written_allocation():
    """``rss_bytes`` reads /proc/self/status; the peak (VmHWM) covers a 64 MB buffer written and
    freed; ``reset_peak_rss`` brings the peak back down to about the current RSS."""
    now = rss_bytes("VmRSS")
    assert now is not None and now > MB
    assert rss_bytes("VmNoSuchField") is None
    if reset_peak_rss():
        assert rss_bytes("VmHWM") <= rss_bytes("VmRSS") + 8 * MB
    blob = b"\x01" * (64 * MB)  # written, so resident
    del blob
    assert rss_bytes("VmHWM") >= now + 60 * MB


def _small(**kw):
    return bench_memory("nb201", batch=16, input_size=16, width=0.25, repeats=0, k=5,
                        space_options={"N": 1}, rss=False, **kw)


def test_lid_and_grad_repeatable_within_5_percent():
    a, b = _small(), _small()
    for crit in ("lid", "grad"):
        x, y = a[crit]["peak_extra_bytes"], b[crit]["peak_extra_bytes"]
        assert x > 0 and abs(x - y) <= 0.05 * max(x, y), (crit, x, y)
    assert a["baseline"] == b["baseline"]
    assert a["ratio"] == pytest.approx(a["lid"]["peak_extra_bytes"] / a["grad"]["peak_extra_bytes"])
    base = a["baseline"]
    assert base["optimizer_bytes"] > 0 and base["batch_bytes"] == 16 * 3 * 16 * 16 * 4 + 16 * 8
    # GM keeps at least one flattened gradient per op of the decision (float32)
    assert a["grad"]["peak_extra_bytes"] >= a["n_ops"] * a["num_shared_params"] * 4
    json.dumps(a)


def test_grad_extra_grows_with_batch_and_lid_stays_small():
    # the activations GM keeps for backward scale with the batch (measured: 2.2 MB at batch 16,
    # 6.0 MB at 64 for this supernet); LID stays below GM at both
    r16, r64 = (bench_memory("nb201", batch=b, input_size=16, width=0.25, repeats=0, k=5,
                             space_options={"N": 1}, rss=False) for b in (16, 64))
    g16, g64 = r16["grad"]["peak_extra_bytes"], r64["grad"]["peak_extra_bytes"]
    assert g64 > 2 * g16, (g16, g64)
    assert r16["ratio"] < 1.0 and r64["ratio"] < 1.0, (r16["ratio"], r64["ratio"])


def test_rss_child_measures_the_step():
    r = bench_memory("nb201", batch=8, input_size=8, width=0.25, repeats=0, k=3, space_options={"N": 1},
                     criteria=("lid",), rss=True)
    lid = r["lid"]
    assert "rss_error" not in lid, lid.get("rss_error")
    base, peak, extra = lid["rss_baseline_bytes"], lid["rss_peak_bytes"], lid["rss_extra_bytes"]
    assert base > 10 * MB  # the child's RSS after building the supernet (torch alone is more)
    assert peak >= base and extra == peak - base
    assert isinstance(lid["hwm_reset"], bool)


@pytest.mark.parametrize("kw,msg", [
    (dict(space="darts"), "space='darts'"),
    (dict(batch=0), "batch=0"),
    (dict(batch=8, k=7), "k=7 needs batch >= k + 2 = 9, got batch=8"),
    (dict(repeats=-1), "repeats=-1"),
    (dict(width=0), "width=0"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(input_size=0), "input_size=0"),
    (dict(criteria=("lid", "fisher")), "criteria"),
    (dict(probe_chunks=-1), "probe_chunks=-1"),
    (dict(probe_chunks="all"), "probe_chunks='all'"),
])
def test_bad_options(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        bench_memory(**{"input_size": 16, **kw})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="no CUDA device"):
        bench_memory(device="cuda")
    assert bench_memory_main(["--device", "cuda", "--no-rss"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_cli(tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = bench_memory_main(["--space", "nb201", "--batch", "8", "--input-size", "8", "--width", "0.25",
                            "--cells", "1", "--k", "3", "--repeats", "1", "--no-rss", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert {"lid", "grad", "ratio"} <= set(r) and r["lid"]["peak_extra_bytes"] > 0
    assert "LID/GM" in capsys.readouterr().out
    assert bench_memory_main(["--space", "proxyless", "--cells", "2"]) == 2
    with pytest.raises(SystemExit):
        bench_memory_main(["--space", "nope"])
    with pytest.raises(SystemExit):
        bench_memory_main(["--probe-chunks", "some"])


def test_low_memory_probe_lowers_the_lid_step_peak():
    """The split step's LID probe with NB201's low-memory forward (forced at this small size by an
    integer ``probe_chunks``; ``auto`` keeps the plain forward below 64 MiB): same groups, a lower
    peak. Stage-1 cell tensor: 16 x 8 x 32 x 32 floats (512 KiB)."""
    kw = dict(batch=16, input_size=32, width=0.5, repeats=0, k=5, space_options={"N": 2},
              criteria=("lid",), rss=False)
    plain, auto, low = (bench_memory("nb201", probe_chunks=c, **kw) for c in (0, "auto", 8))
    cell = 16 * 8 * 32 * 32 * 4
    assert auto["probe_chunks"] == "auto" and low["probe_chunks"] == 8
    p0, pa = plain["lid"]["peak_extra_bytes"], auto["lid"]["peak_extra_bytes"]
    assert abs(pa - p0) <= 0.05 * p0
    assert plain["lid"]["peak_extra_bytes"] >= 5 * cell, plain["lid"]["peak_extra_bytes"] / cell
    assert low["lid"]["peak_extra_bytes"] <= 3.75 * cell, low["lid"]["peak_extra_bytes"] / cell
    assert low["lid"]["chosen_groups"] == plain["lid"]["chosen_groups"]
    assert bench_memory_main(["--input-size", "30", "--no-rss"]) == 2  # NB201 needs a multiple of 4
