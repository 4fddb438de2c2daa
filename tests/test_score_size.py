"""studies/score_size.py: AZ-NAS at several network sizes swapped into the end-to-end runs' combination."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))
import score_size  # noqa: E402

from naslid.scores.aznas import AZNAS_TERMS  # noqa: E402

FREE = ROOT / "results" / "search" / "free_scores"


def _fake_files(tmp_path: Path, n: int = 40):
    """A run (loss + naswot + aznas) and two AZ-NAS files over the same n cells: one whose four terms
    follow the truth exactly, one random."""
    g = np.random.default_rng(1)
    cells = [f"c{i}" for i in range(n)]
    truth = g.permutation(n).astype(float)
    run = {"config": {"search": {"score": "loss+naswot+aznas"}},
           "ranking": {"sampled_points": [[c, {"neg_loss": float(g.normal()), "naswot": float(t + 3 * g.normal()),
                                               "aznas": 0.0}, {"cifar10_valid_acc": float(t)}]
                                          for c, t in zip(cells, truth)]}}
    (tmp_path / "run.json").write_text(json.dumps(run))

    def az(values):
        return {"scores": {"aznas": {"0": {c: {t: float(v) for t in AZNAS_TERMS} for c, v in zip(cells, values)}}},
                "seconds": {"aznas": {"0": 1.5}}}

    (tmp_path / "good.json").write_text(json.dumps(az(truth)))
    (tmp_path / "rand.json").write_text(json.dumps(az(g.normal(size=n))))
    return truth


def test_a_perfect_aznas_ranks_exactly_and_lifts_the_combination(tmp_path):
    _fake_files(tmp_path)
    doc = score_size.study([tmp_path / "run.json"], [("rand", tmp_path / "rand.json"), ("good", tmp_path / "good.json")], "0")
    rand, good = doc["sizes"]
    assert good["alone"]["aznas"]["tau"] == pytest.approx(1.0) and good["alone"]["aznas"]["p10"] == 1.0
    assert abs(rand["alone"]["aznas"]["tau"]) < 0.4
    assert good["all_tau"] > rand["all_tau"] + 0.1 and good["free_tau"] > good["all_tau"]
    assert good["delta_tau_vs_first"]["mean"] == pytest.approx(good["all_tau"] - rand["all_tau"])
    assert good["alone"]["aznas"]["seconds_per_500"] == 1.5 and "delta_tau_vs_first" not in rand
    # the combination is the mean of the three signals' quantiles: recomputed by hand
    pts = json.loads((tmp_path / "run.json").read_text())["ranking"]["sampled_points"]
    truth = np.array([p[2]["cifar10_valid_acc"] for p in pts])
    q = [stats.rankdata(v) / (len(v) + 1) for v in (np.array([p[1]["neg_loss"] for p in pts]),
                                                    np.array([p[1]["naswot"] for p in pts]), truth)]
    assert good["all_tau"] == pytest.approx(stats.kendalltau(np.mean(q, axis=0), truth).statistic)


def test_a_run_without_aznas_is_refused(tmp_path):
    _fake_files(tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    run["config"]["search"]["score"] = "loss+naswot"
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit, match=r"does not score \['aznas'\]"):
        score_size.study([tmp_path / "run.json"], [("good", tmp_path / "good.json")], "0")
    assert score_size.main(["--runs", str(tmp_path / "run.json"), "--sizes", "nolabel", "--json",
                            str(tmp_path / "o.json")]) == 2
    run["config"]["search"]["score"] = "loss+naswot+aznas+jacov"
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit, match="good.json holds no jacov at init seed 0"):
        score_size.study([tmp_path / "run.json"], [("good", tmp_path / "good.json")], "0", ("aznas", "jacov"))


@pytest.mark.parametrize("name", ["score_size.json", "score_size_jacov.json", "score_size_both.json",
                                  "score_size_all.json"])
def test_committed_size_study_recomputes_from_its_raw_files(name):
    doc = json.loads((FREE / name).read_text())
    sizes = [(r["size"], score_size.RUN if r["file"] == "run" else FREE / r["file"]) for r in doc["sizes"]]
    again = score_size.study([FREE / r for r in doc["runs"]], sizes, str(doc["init_seed"]), tuple(doc["swap"]))
    _assert_close(json.loads(json.dumps(again)), doc)


def _assert_close(a, b, where="doc"):
    """Nested dicts / lists equal, floats within 1e-9 relative."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), where
        for k in b:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9), where
    else:
        assert a == b, where
