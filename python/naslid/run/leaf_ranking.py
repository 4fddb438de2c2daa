"""The ranking stage (rank 0, with a benchmark): how well the leaves rank cells, in the run's terms.

``rank_against_benchmark`` scores the benchmark's top cells and a seeded sample of cells with the
evaluator (by accuracy and by minus the loss; with a combined ``search.score`` also by every
training-free signal and by the combination, ``combined``, on the same cells; the parameter count and FLOPs of the same cells are
ranked beside them: ``naslid.ranking.ranking_report``) and looks up the best arch's row;
checkpointed. ``ranking_for_result`` and ``plot_points`` reshape the report for ``result.json``
and for the report's predicted-against-true plots.
"""
from __future__ import annotations

from ..groundtruth.table import Benchmark
from ..blocks.combined_eval import CombinedEvaluator
from ..blocks.inherited_eval import SubnetEvaluator
from ..ranking import best_arch_benchmark, ranking_report
from .context import RunContext


def rank_against_benchmark(run: RunContext, benchmark: Benchmark, evaluator: SubnetEvaluator | CombinedEvaluator,
                           best_arch: str) -> dict:
    """{"report": ``ranking_report``'s dict (with points), "best": the benchmark row of
    ``best_arch`` or None}; computed once and checkpointed."""
    saved = run.store.ranking()
    if saved is not None:
        return saved
    b = run.cfg.benchmark
    with run.meter.stage("ranking"):
        n_top = max(2, int(b.top_fraction * len(benchmark)))
        bar = run.progress.bar(total=n_top * len(benchmark.acc_columns) + b.sample_size, desc="ranking",
                               leave=False)

        def predict(arch):
            if bar is not None:
                bar.update(1)
            m = evaluator.metrics(arch)
            out = {"acc": m["acc"], "neg_loss": -m["loss"]}
            if hasattr(evaluator, "signals"):  # a combined score: every signal and the combination
                sig = evaluator.signals(arch)
                # loss / acc are there already, params / flops are the report's own yardsticks
                out.update({s: v for s, v in sig["values"].items() if s not in ("loss", "acc", "params", "flops")})
                out["combined"] = sig["fitness"]
            return out

        try:
            rep = ranking_report(benchmark, predict, top_fraction=b.top_fraction, sample_size=b.sample_size,
                                 sample=b.sample, seed=0, include_points=True)
        finally:
            if bar is not None:
                bar.close()
        saved = {"report": rep, "best": best_arch_benchmark(benchmark, best_arch)}
    run.store.save_ranking(saved)
    run.save_meter()
    return saved


def ranking_for_result(report: dict) -> dict:
    """``result.json``'s ``ranking``: per column and predictor metrics over the top cells
    (``top``) and the sample (``sampled``), the settings, and the sample's points
    ``[[arch, {predictor: value}, {column: truth}], ...]`` (``sampled_points``)."""
    return {"top": report["top"]["columns"], "sampled": report["sample"]["columns"],
            "settings": {"top_fraction": report["top"]["fraction"], "top_by": report["top"]["by"],
                         "sample_size": report["sample"]["size_requested"], "sample_n": report["sample"]["n"],
                         "sample_method": report["sample"]["method"], "sample_seed": report["sample"]["seed"]},
            "sampled_points": report.get("points", {}).get("sample", [])}


def plot_points(report: dict, acc_columns: list[str]) -> dict:
    """The sample's values for the plots: {"predicted": {predictor: [...]}, "true": {column: [...]}}."""
    pts = report.get("points", {}).get("sample", [])
    names = list(pts[0][1]) if pts else []
    return {"predicted": {n: [p[1][n] for p in pts] for n in names},
            "true": {c: [p[2][c] for p in pts] for c in acc_columns}}
