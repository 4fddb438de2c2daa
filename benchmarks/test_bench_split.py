"""Split-step wall time, LID vs GM, on the same supernet, batch and decision (pytest-benchmark).

    pytest benchmarks/test_bench_split.py --benchmark-enable --benchmark-group-by=param:setting

Both criteria run through ``naslid.studies.peak_memory``'s setup (the code path of ``split_step``), so the two
timings of a setting are directly comparable; a correctness pass (vector lengths, a valid split)
runs first.
"""
from __future__ import annotations

import pytest

from naslid.studies.peak_memory import _Setup

SETTINGS = {
    # name: (space, input, batch, width, space options)
    "nb201-C16-N5-32px-b32": ("nb201", 32, 32, None, {}),
    "nb201-C8-N1-32px-b64": ("nb201", 32, 64, 0.5, {"N": 1}),
    "proxyless-w0.5-32px-b32": ("proxyless", 32, 32, 0.5, {}),
}


@pytest.fixture(scope="module", params=list(SETTINGS))
def setting(request):
    space, size, batch, width, opts = SETTINGS[request.param]
    return _Setup(space, batch, size, width, "cpu", None, opts, 0)


@pytest.mark.slow
@pytest.mark.parametrize("criterion", ["lid", "grad"])
def test_split_step_time(benchmark, setting, criterion):
    rec = setting.step(criterion, 20)  # correctness pass
    d = rec.decisions[setting.decision]
    assert rec.split and rec.chosen == setting.decision
    if criterion == "lid":
        assert d.vector_dim == len(setting.supernet.lid_layers())
    else:
        assert d.vector_dim == sum(p.numel() for p in setting.supernet.shared_parameters(exclude=setting.decision))
    benchmark.group = f"split-step {setting.space.name} {tuple(setting.x.shape)}"
    benchmark.pedantic(setting.step, args=(criterion, 20), rounds=3, iterations=1, warmup_rounds=0)
