"""The final search over the leaves (rank 0): the evaluator and the evolutionary or random search.

``build_evaluator`` gives a ``naslid.blocks.inherited_eval.SubnetEvaluator`` over the leaves' weights: an arch
is evaluated with the leaf whose mask contains it, on the same fixed ``search.eval_images``
validation images for every run, seed and criterion (a class-stratified subset drawn with a fixed
seed), its BatchNorm statistics recalibrated on ``search.bn_batches`` training batches drawn with
(seed, "calib") (``search.bn: recalibrate``) or taken from the batch (``batch``).
``run_final_search`` searches the union of the leaves' masks with a generator seeded by
(seed, "search") and checkpoints the outcome.

``search.score`` a combination (``"loss+naswot+synflow"``, ``naslid.scores.combination``): the
evaluator is a ``naslid.blocks.combined_eval.CombinedEvaluator`` over the same leaves, its reference
sample of ``search.reference_size`` de-isomorphic cells drawn with (seed, "reference"), the
training-free scores on stand-alone networks initialised with the run's seed and on 128 training
images drawn with (seed, "free"). A single ``loss`` / ``acc`` is the pure-supernet protocol.
"""
from __future__ import annotations

import dataclasses

import torch

from ..blocks.combined_eval import CombinedEvaluator
from ..scores.combination import draw_reference, free_signals, is_pure_supernet, parse_signals
from ..data import DataSplits, fixed_batches, stratified_take
from ..blocks.inherited_eval import SubnetEvaluator
from ..blocks.evolutionary_search import best_first, evolutionary_search, random_search
from .context import RunContext


#: seed of the draw of the evaluation images: every run, seed and criterion scores the same images
EVAL_SELECTION_SEED = 0


def evaluation_data(data: DataSplits, eval_images: int | None) -> DataSplits:
    """``data`` with its validation split cut to a class-stratified ``eval_images`` subset drawn
    with ``EVAL_SELECTION_SEED`` (unchanged when None or not smaller than the split). The one
    definition of the images a cell is scored on (the search, the ranking, ``naslid.studies.standalone``)."""
    if eval_images is None or eval_images >= len(data.valid):
        return data
    taken, _ = stratified_take(data.valid.labels, eval_images,
                               torch.Generator().manual_seed(EVAL_SELECTION_SEED))
    return dataclasses.replace(data, valid=data.valid.subset(taken))


def build_evaluator(run: RunContext, tree: dict, leaves: list[str]) -> SubnetEvaluator | CombinedEvaluator:
    """A ``SubnetEvaluator`` over the weights of ``leaves`` (node ids of ``tree``), wrapped in a
    ``CombinedEvaluator`` when ``search.score`` is a combination; see the module docstring."""
    se = run.cfg.search
    nets = [(run.node_mask(tree[nid]), run.supernet_from(run.store.node_or_parent(tree[nid])))
            for nid in leaves]
    valid = fixed_batches(evaluation_data(run.data, se.eval_images), "valid", se.eval_batch_size,
                          device=run.device)
    calib = fixed_batches(run.data, "train", se.eval_batch_size, num_batches=se.bn_batches,
                          seed=run.seed("calib"), device=run.device) if se.bn == "recalibrate" else None
    signals = parse_signals(se.score)
    base = SubnetEvaluator(run.space, nets, valid, bn=se.bn, calib_batches=calib, device=run.device,
                           score=signals[0] if is_pure_supernet(signals) else "loss")
    if is_pure_supernet(signals):
        return base
    x = y = None
    free_space = None
    if free_signals(signals):
        (x, y), = fixed_batches(run.data, "train", se.free_batch, num_batches=1, seed=run.seed("free"),
                                device=run.device)
        if se.free_cells is not None and se.free_cells != run.space.N:
            free_space = run.space.with_cells(se.free_cells)
    reference = draw_reference(run.space, se.reference_size,
                               torch.Generator().manual_seed(run.seed("reference")))
    with run.meter.stage("reference"):
        return CombinedEvaluator(base, signals, reference, x=x, y=y, seed=run.cfg.seed,
                                 progress=run.progress.bars, free_space=free_space)


#: how many of the best-scored cells ``result.json`` lists (``search.top``)
TOP_CELLS = 10


def top_scored(evaluated: dict, n: int) -> list[dict]:
    """The n best-scored of the evaluated cells, best first (ties: the earlier evaluated first):
    [{"arch": string, "fitness"}]. The found cell is the first; the others are what a user with
    time to train a few cells stand-alone would train next."""
    return [{"arch": e["arch"], "fitness": e["fitness"]} for e in best_first(evaluated.values())[:n]]


def run_final_search(run: RunContext, evaluator: SubnetEvaluator, leaves: list[str]) -> dict:
    """The search over the leaves (checkpointed; a saved outcome is returned as it is):
    {best_arch (string), best_fitness, best_metrics ({"acc": %, "loss"}), score, best_leaf,
    summary (``EvolutionResult.to_dict``), evaluated (canonical key -> {"arch", "fitness"})}."""
    saved = run.store.search()
    if saved is not None:
        return saved
    se, space = run.cfg.search, run.space
    gen = torch.Generator().manual_seed(run.seed("search"))
    with run.meter.stage("search"):
        if se.method == "evolution":
            r = evolutionary_search(space, evaluator.masks, evaluator, generator=gen,
                                    progress=run.progress.bars, config=se)
        else:
            r = random_search(space, evaluator.masks, evaluator, num_samples=se.population * se.generations,
                              generator=gen, max_tries=se.max_tries, progress=run.progress.bars)
        res = {"best_arch": space.arch_to_string(r.best_arch), "best_fitness": r.best_fitness,
               "best_metrics": evaluator.metrics(r.best_arch), "score": se.score,
               "best_leaf": leaves[evaluator.leaf_index(r.best_arch)],
               "summary": r.to_dict(space), "evaluated": dict(r.evaluated)}
        res["summary"]["top"] = top_scored(r.evaluated, TOP_CELLS)
        if isinstance(evaluator, CombinedEvaluator):
            res["summary"]["best_signals"] = evaluator.signals(r.best_arch)
            for t in res["summary"]["top"]:
                t["quantiles"] = evaluator.signals(space.arch_from_string(t["arch"]))["quantiles"]
            res["summary"]["reference_size"] = len(evaluator.reference)
            res["summary"]["free_score_seconds"] = evaluator.free_seconds
    run.store.save_search(res)
    run.save_meter()
    return res
