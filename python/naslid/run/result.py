"""``SearchResult``: what a search run produced, and the report stage that writes it.

``write_result`` runs the report stage (TensorBoard scalars, PNG plots: ``naslid.run.report``), then
writes ``OUT/result.json`` once, last, with every stage's time and peak memory (the report's
included), and marks the run complete in its manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .checkpoint import RunFolder, atomic_write_json
from .prepare import Prepared
from .report import write_report
from .stage_meter import StageMeter


@dataclass
class SearchResult:
    """What a search run produced (also written as ``OUT/result.json``).

    best_arch             the space's string of the architecture found
    best_valid_acc        its validation accuracy (fraction) with the inherited weights, on the fixed
                          ``search.eval_images`` evaluation images (``best_valid_loss``: mean
                          cross-entropy there; the search's fitness is one of the two, ``search.score``)
    best_leaf             id of the sub-supernet that evaluated it
    best_arch_benchmark   benchmark columns of best_arch (None without a benchmark)
    split_tree            node id -> {mask, num_archs, level, parent, children, leaf, epochs,
                          split: the SplitRecord JSON (chosen decision, partition, scores, LID
                          vectors, similarity matrices), history: per-epoch loss/acc}
    ranking               {"top": {col: {n, kendall_tau, spearman_rho, ...}}, "sampled": {...}}
                          (empty without a benchmark)
    timings               stage -> wall seconds;  peak_memory_bytes: stage -> bytes;
                          extra_memory_bytes: stage -> bytes above what was in use when the stage
                          began (the split step's own memory: compare criteria by it)
    """

    best_arch: str
    best_valid_acc: float | None
    best_leaf: str | None
    best_arch_benchmark: dict | None
    split_tree: dict
    ranking: dict
    timings: dict
    peak_memory_bytes: dict
    search: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    out_dir: str = ""
    config_hash: str = ""
    best_valid_loss: float | None = None
    extra_memory_bytes: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def search_result(prep: Prepared, tree: dict, search: dict, ranking: dict, bench_row: dict | None
                  ) -> SearchResult:
    """The result of a run from its tree, the final search's outcome (``naslid.run.final_search``),
    the ranking for ``result.json`` and the best arch's benchmark row; timings come at the end."""
    return SearchResult(
        best_arch=search["best_arch"], best_valid_acc=search["best_metrics"]["acc"] / 100.0,
        best_valid_loss=search["best_metrics"]["loss"],
        best_leaf=search["best_leaf"], best_arch_benchmark=bench_row, split_tree=tree,
        ranking=ranking, timings={}, peak_memory_bytes={},
        search=search["summary"], config=prep.cfg.to_dict(), data=prep.data.summary(),
        out_dir=str(prep.out), config_hash=prep.config_hash)


def write_result(result: SearchResult, prep: Prepared, folder: RunFolder, meter: StageMeter,
                 points: dict) -> None:
    """The report stage, then ``result.json`` with ``meter``'s timings and peaks (also set on
    ``result``) and the manifest's ``complete`` status. ``points``: the ranking's plot points."""
    cfg = prep.cfg
    with meter.stage("report"):
        body = result.to_json()
        body["artifacts"] = write_report(prep.out, body, search_history=result.search.get("history"),
                                         ranking_points=points, plots=cfg.plots,
                                         tensorboard=cfg.tensorboard, write_json=False)
    # result.json is written once, last, with the report stage's own timing included
    result.timings = body["timings"] = dict(meter.timings)
    result.peak_memory_bytes = body["peak_memory_bytes"] = dict(meter.peaks)
    result.extra_memory_bytes = body["extra_memory_bytes"] = dict(meter.extra)
    atomic_write_json(prep.out / "result.json", body)
    folder.write_manifest(status="complete", best_arch=result.best_arch)
