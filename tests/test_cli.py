"""The `naslid` CLI: bad inputs give one line and exit 2 before any work; a micro search prints
the architecture and the report location; `spaces` and `bench-memory` are wired."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from naslid.studies import peak_memory as memory
from naslid.cli import main

MICRO_ARGS = ["--image-size", "8", "--max-train", "128", "--max-valid", "64", "--warmup", "1",
              "--leaf-epochs", "1", "--set", "space.C=4", "--set", "data.batch_size=32",
              "--set", "split.batch_size=48", "--set", "split.k=8", "--set", "split.repeats=1",
              "--set", "search.population=4", "--set", "search.generations=1", "--set", "search.parents=2",
              "--set", "search.crossover=1", "--set", "search.mutation=1", "--set", "search.newcomers=1",
              "--set", "search.bn_batches=1", "--set", "threads=1", "--set", "plots=false",
              "--set", "tensorboard=false", "--quiet"]


def run_main(capsys, *args):
    rc = main(["search", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_line_error(rc, out, err, *needles):
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("naslid search: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

BAD = [
    (["--space", "darts"], ["space.name", "darts"]),
    (["--dataset", "mnist"], ["data.dataset", "mnist"]),
    (["--criterion", "entropy"], ["split.criterion"]),
    (["--partition", "kmeans"], ["split.partition"]),
    (["--similarity", "l1"], ["split.similarity"]),
    (["--edge-rule", "whatever"], ["split.edge_rule"]),
    (["--dataset", "npz", "--data-dir", "/nonexistent/c.npz"], ["data.data_dir", "/nonexistent/c.npz"]),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], ["cifar"]),
    (["--warmup", "0,2"], ["train.warmup_epochs"]),
    (["--warmup", "3,2"], ["strictly increase"]),
    (["--warmup", "1,2,3,4,5,6,7"], ["7 levels", "6 decisions"]),
    (["--leaf-epochs", "-1"], ["train.leaf_epochs"]),
    (["--benchmark", "/nonexistent.csv"], ["benchmark.file"]),
    (["--config", "/nonexistent.yaml"], ["/nonexistent.yaml"]),
    (["--set", "search.bogus=1"], ["search.bogus"]),
    (["--score", "auc"], ["search.score", "auc"]),
    (["--sampling", "greedy"], ["train.sampling", "greedy"]),
    (["--set", "benchmark.sample=quantile"], ["benchmark.sample", "quantile"]),
    (["--set", "search.eval_images=0"], ["search.eval_images"]),
    (["--device", "cuda:0"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], ["device"]),
]


@pytest.mark.parametrize("args,needles", BAD, ids=[" ".join(b[0])[:40] for b in BAD])
def test_bad_inputs_one_line_no_output(capsys, tmp_path, args, needles):
    out_dir = tmp_path / "out"
    rc, out, err = run_main(capsys, *args, "--out", str(out_dir), "--quiet")
    assert_one_line_error(rc, out, err, *needles)
    assert not out_dir.exists()  # nothing written


def test_bad_npz_and_benchmarks(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    rc, out, err = run_main(capsys, "--dataset", "npz", "--data-dir", str(bad), "--out", str(tmp_path / "o1"))
    assert_one_line_error(rc, out, err, "bad.npz")
    no_arch = write_csv(tmp_path / "noarch.csv", ["name", "x_acc"], [[ARCH, 1.0]])
    rc, out, err = run_main(capsys, "--benchmark", str(no_arch), "--out", str(tmp_path / "o2"))
    assert_one_line_error(rc, out, err, "noarch.csv", "arch")
    outside = write_csv(tmp_path / "outside.csv", ["arch", "x_acc"], [[ARCH, 1.0], ["|conv_9x9~0|+|a~0|b~1|+|c~0|d~1|e~2|", 2.0]])
    rc, out, err = run_main(capsys, "--benchmark", str(outside), "--out", str(tmp_path / "o3"))
    assert_one_line_error(rc, out, err, "outside.csv")
    for d in ("o1", "o2", "o3"):
        assert not (tmp_path / d).exists()


def test_image_size_the_dataset_cannot_honour(capsys, tmp_path):
    """npz images are 8x8: asking for 16x16 (upsampling) is refused before any run folder exists."""
    import numpy as np

    npz = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, x_train=rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8),
             y_train=np.arange(40) % 4, x_test=rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8),
             y_test=np.arange(8) % 4)
    out_dir = tmp_path / "o"
    rc, out, err = run_main(capsys, "--dataset", "npz", "--data-dir", str(npz), "--image-size", "16",
                            "--out", str(out_dir), "--quiet")
    assert_one_line_error(rc, out, err, "config.data", "image_size 16", "8x8")
    assert not out_dir.exists()


def test_benchmark_that_is_not_a_csv(capsys, tmp_path, monkeypatch):
    """A benchmark that is neither a CSV nor an official NATS-Bench / NB201 file: one line naming
    the file and the command that builds the CSV, not a traceback."""
    readme = tmp_path / "README.md"
    readme.write_text("# not a benchmark\n")
    rc, out, err = run_main(capsys, "--benchmark", str(readme), "--out", str(tmp_path / "o"))
    assert_one_line_error(rc, out, err, "README.md", "not a .csv file", "naslid data nb201")
    assert not (tmp_path / "o").exists()


def test_resume_without_run(capsys, tmp_path):
    rc, out, err = run_main(capsys, "--resume", "--out", str(tmp_path / "none"))
    assert_one_line_error(rc, out, err, "no naslid run to resume")


def test_micro_search_prints_arch_and_report(capsys, tmp_path):
    out_dir = tmp_path / "run"
    csv_file = write_csv(tmp_path / "b.csv", ["arch", "x_acc"], [[ARCH, 91.0], [ARCH.replace("3x3~2", "1x1~2"), 80.0]])
    rc, out, err = run_main(capsys, *MICRO_ARGS, "--benchmark", str(csv_file), "--out", str(tmp_path / "too-many"))
    assert_one_line_error(rc, out, err, "config.benchmark.sample_size asks for 500 cells", "choose <= 2")
    bench = ["--benchmark", str(csv_file), "--set", "benchmark.sample_size=2"]
    rc, out, err = run_main(capsys, *MICRO_ARGS, *bench, "--out", str(out_dir))
    assert rc == 0, err
    body = json.loads((out_dir / "result.json").read_text())
    assert f"best architecture: {body['best_arch']}" in out
    assert str(out_dir / "result.json") in out
    top = body["search"]["top"]
    assert top[0]["arch"] == body["best_arch"] and len(top) > 1
    assert f"#2 {top[1]['arch']} (fitness" in out and f"#{min(4, len(top))} {top[min(4, len(top)) - 1]['arch']}" in out
    assert body["config"]["train"]["warmup_epochs"] == [1]
    assert body["config"]["space"]["C"] == 4
    # the same --out again without --resume: refused, result untouched
    before = (out_dir / "result.json").read_bytes()
    rc, out, err = run_main(capsys, *MICRO_ARGS, *bench, "--out", str(out_dir))
    assert_one_line_error(rc, out, err, "already holds this run", "--resume")
    rc, out, err = run_main(capsys, *MICRO_ARGS, *bench, "--seed", "3", "--out", str(out_dir))
    assert_one_line_error(rc, out, err, "holds another run")
    assert (out_dir / "result.json").read_bytes() == before


def test_subprocess_error_is_one_line():
    r = subprocess.run([sys.executable, "-m", "naslid.cli", "search", "--criterion", "nope", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("naslid search: error:")
    assert r.stdout == ""


def test_spaces_subcommand(capsys):
    rc = main(["spaces", "nb201", "--arch", ARCH])
    out = capsys.readouterr().out
    assert rc == 0 and "edge" in out.lower()


def test_bench_memory_dispatch(monkeypatch):
    seen = {}

    def fake(argv):
        seen["argv"] = argv
        return 0

    monkeypatch.setattr(memory, "bench_memory_main", fake)
    assert main(["bench-memory", "--space", "nb201", "--batch", "2"]) == 0
    assert seen["argv"] == ["--space", "nb201", "--batch", "2"]


def test_bare_naslid_prints_help_and_writes_nothing(capsys, tmp_path, monkeypatch):
    """`naslid` alone prints the help and exits 0; no search starts and no runs/ appears."""
    import naslid.cli

    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr(naslid.cli, "cmd_search", lambda a: seen.append(a) or 0)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: naslid" in out and "search" in out and "data" in out
    assert seen == [] and list(tmp_path.iterdir()) == []


def test_version(capsys):
    import naslid

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"naslid {naslid.__version__}"


def test_choices_come_from_choices_py(capsys):
    """--help lists exactly the values of naslid.choices; every search option has a help text."""
    from naslid import choices
    from naslid.cli import build_parser

    search = build_parser()._subparsers._group_actions[0].choices["search"]
    by_flag = {a.option_strings[0]: a for a in search._actions if a.option_strings}
    for flag, values in (("--space", choices.SPACES), ("--dataset", choices.DATASETS),
                         ("--criterion", choices.CRITERIA), ("--partition", choices.PARTITIONS),
                         ("--similarity", choices.SIMILARITIES), ("--edge-rule", choices.EDGE_RULES),
                         ("--leaf-init", choices.LEAF_INITS), ("--sampling", choices.SAMPLINGS),
                         ("--search", choices.SEARCH_METHODS), ("--preset", choices.PRESETS)):
        assert tuple(by_flag[flag].choices) == tuple(values), flag
    assert [f for f, a in by_flag.items() if not a.help] == []


def test_search_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "--help"])
    assert e.value.code == 0
    assert "--criterion" in capsys.readouterr().out
