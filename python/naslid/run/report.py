"""The run report: ``result.json``, TensorBoard scalars and PNG plots (matplotlib figures on Agg
canvases, ``naslid.run.figures``: the process's backend is left alone).

``write_report(out_dir, result, histories)`` writes, in the run folder:

- ``result.json``  (atomically; keys: best_arch, best_arch_benchmark, split_tree, ranking, timings,
  peak_memory_bytes, ... see ``naslid.run.result.SearchResult``)
- ``tb/``          TensorBoard scalars: per node training loss / accuracy per epoch, search
  fitness per generation, ranking metrics per subset / column / predictor
- ``plots/similarity_<node>.png``  similarity matrices of every decision a split examined
- ``plots/lid_<node>.png``          LID profile (LID per layer) of every op of the chosen decision
- ``plots/split_tree.png``          the split tree with each node's mask summary
- ``plots/pred_vs_true_<column>.png``  every predictor (named supernet scores, yardsticks) against
  the benchmark on the sampled archs, one panel per predictor with τ, per column
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping

from .checkpoint import atomic_write_json

log = logging.getLogger(__name__)


def _plt():
    """``naslid.run.figures``: pyplot's subplots / close on Agg canvases, no global backend switch."""
    from . import figures

    return figures


def _short(op: str) -> str:
    return (op.replace("nor_conv_", "conv").replace("avg_pool_", "pool").replace("skip_connect", "skip")
            .replace("none", "none"))


def _panel_grid(plt, n: int, panel_size: tuple[float, float]):
    """A figure of ``n`` panels, at most 3 per row; unused axes switched off."""
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def _decision_panels(node: Mapping[str, Any], size: tuple[float, float], lid_only: bool = False):
    """(plt, fig, axes, rec, decisions, keys) with one panel per examined decision of ``node``'s
    split record, or None when there is nothing to draw."""
    rec = node.get("split") or {}
    decisions = rec.get("decisions") or {}
    if not decisions or (lid_only and rec.get("criterion") != "lid"):
        return None
    plt = _plt()
    keys = list(decisions)
    fig, axes = _panel_grid(plt, len(keys), size)
    return plt, fig, axes, rec, decisions, keys


def plot_similarity(node: Mapping[str, Any], path: Path) -> bool:
    """Heatmaps of every examined decision's similarity matrix (one panel per decision)."""
    panels = _decision_panels(node, (3.4, 3.1))
    if panels is None:
        return False
    plt, fig, axes, rec, decisions, keys = panels
    for ax, key in zip(axes.flat, keys):
        d = decisions[key]
        sim = d.get("similarity") or []
        ops = [_short(o) for o in d.get("ops", [])]
        im = ax.imshow(sim, cmap="viridis")
        ax.set_xticks(range(len(ops)), ops, rotation=60, fontsize=7)
        ax.set_yticks(range(len(ops)), ops, fontsize=7)
        chosen = " (chosen)" if key == rec.get("chosen") else ""
        ax.set_title(f"{key}{chosen}\nscore {d.get('rule_value', float('nan')):.3g}", fontsize=8)
    fig.colorbar(im, ax=list(axes.flat), fraction=0.03)
    fig.suptitle(f"node {node['id']}: {rec.get('criterion')} similarity ({rec.get('similarity')})", fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.88, bottom=0.12, top=0.86, wspace=0.55, hspace=0.75)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


def plot_lid_profiles(node: Mapping[str, Any], path: Path) -> bool:
    """LID per layer for every op of every examined decision (LID criterion only)."""
    panels = _decision_panels(node, (3.8, 2.8), lid_only=True)
    if panels is None:
        return False
    plt, fig, axes, rec, decisions, keys = panels
    for ax, key in zip(axes.flat, keys):
        d = decisions[key]
        for op, vec in zip(d.get("ops", []), d.get("vectors") or []):
            ax.plot(range(1, len(vec) + 1), vec, marker=".", label=_short(op))
        ax.set_title(key + (" (chosen)" if key == rec.get("chosen") else ""), fontsize=8)
        ax.set_xlabel("LID layer", fontsize=7)
        ax.set_ylabel("LID", fontsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"node {node['id']}: LID profiles per op", fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.1, top=0.88, wspace=0.3, hspace=0.6)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


def plot_split_tree(tree: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """The split tree: one box per node (id, archs, chosen decision and groups)."""
    plt = _plt()
    levels: dict[int, list[str]] = {}
    for nid, node in tree.items():
        levels.setdefault(nid.count("."), []).append(nid)
    depth = max(levels) + 1
    width = max(len(v) for v in levels.values())
    fig, ax = plt.subplots(figsize=(max(4.0, 2.6 * width), 1.6 * depth + 0.6))
    pos = {}
    for lv, ids in levels.items():
        ids.sort()
        for i, nid in enumerate(ids):
            pos[nid] = ((i + 0.5) / len(ids), 1.0 - (lv + 0.5) / depth)
    for nid, node in tree.items():
        for c in node.get("children", []):
            if c in pos:
                ax.plot([pos[nid][0], pos[c][0]], [pos[nid][1], pos[c][1]], color="0.6", zorder=1)
    for nid, node in tree.items():
        rec = node.get("split") or {}
        label = f"{nid}\n{node.get('num_archs', '?')} archs"
        if rec.get("split"):
            groups = " | ".join("+".join(_short(o) for o in g) for g in rec.get("groups") or [])
            label += f"\nsplit {rec.get('chosen')}\n{groups}"
        elif node.get("leaf"):
            label += "\nleaf"
        x, y = pos[nid]
        ax.text(x, y, label, ha="center", va="center", fontsize=7, zorder=2,
                bbox=dict(boxstyle="round", fc="lightyellow" if node.get("leaf") else "lightblue", ec="0.4"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title("split tree", fontsize=9)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _as_float(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def _metrics_of(ranking: Mapping[str, Any], col: str, name: str) -> Mapping[str, Any]:
    """The sampled metrics of predictor ``name`` on ``col`` (older flat results: one predictor)."""
    per = (ranking.get("sampled") or {}).get(col) or {}
    if "kendall_tau" in per:  # old shape {col: metrics}
        return per
    return per.get(name) or {}


def scatter_title(name: str, n: int, metrics: Mapping[str, Any]) -> str:
    """``name (n archs)`` plus ``τ = t [lo, hi]`` and ``P@10%`` where known."""
    title = f"{name} ({n} archs)"
    tau = metrics.get("kendall_tau")
    if isinstance(tau, (int, float)):
        title += f"\nτ = {tau:.3f}"
        ci = metrics.get("kendall_tau_ci95")
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
            title += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        p10 = metrics.get("precision_at_10")
        if isinstance(p10, (int, float)):
            title += f", P@10% = {p10:.2f}"
    return title


def plot_pred_vs_true(points: Mapping[str, Any], ranking: Mapping[str, Any], out: Path) -> list[str]:
    """Per benchmark column (the first ``*_acc`` column first), one figure
    ``pred_vs_true_<column>.png`` with one scatter panel per predictor (x: its score on the sampled
    archs, y: the column), Kendall τ with its 95 % interval in each panel's title.

    ``points``: {"predicted": {name: [values]}, "true": {column: [values]}} (a plain list as
    "predicted" is one predictor, "score"); None values are left out."""
    pred = (points or {}).get("predicted")
    if not pred:
        return []
    if not isinstance(pred, Mapping):
        pred = {"score": pred}
    plt = _plt()
    written = []
    for col, true in (points.get("true") or {}).items():
        y = [_as_float(v) for v in true]
        fig, axes = _panel_grid(plt, len(pred), (3.6, 3.3))
        for ax, (name, vals) in zip(axes.flat, pred.items()):
            x = [_as_float(v) for v in vals]
            n = sum(1 for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b))
            ax.scatter(x, y, s=6, alpha=0.6)
            ax.set_xlabel(name, fontsize=8)
            ax.set_ylabel(col, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(scatter_title(name, n, _metrics_of(ranking, col, name)), fontsize=8)
        fig.suptitle(f"predictors vs {col} (sampled archs)", fontsize=9)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.14, top=0.8, wspace=0.4, hspace=0.7)
        p = out / f"pred_vs_true_{col}.png"
        fig.savefig(p, dpi=80)
        plt.close(fig)
        written.append(p.name)
    return written


def points_from_sampled(sampled_points) -> dict:
    """``ranking["sampled_points"]`` ([[arch, {name: value}, {column: true}], ...]) as the
    ``ranking_points`` shape {"predicted": {name: [values]}, "true": {column: [values]}}."""
    pts = [p for p in sampled_points or [] if isinstance(p, (list, tuple)) and len(p) == 3]
    if not pts:
        return {}
    first_pred = pts[0][1] if isinstance(pts[0][1], Mapping) else {"score": None}
    names = list(first_pred)
    cols = list(pts[0][2]) if isinstance(pts[0][2], Mapping) else []

    def get(d, k):
        return d.get(k) if isinstance(d, Mapping) else (d if k == "score" else None)

    return {"predicted": {k: [get(p[1], k) for p in pts] for k in names},
            "true": {c: [get(p[2], c) for p in pts] for c in cols}}


def _numeric_leaves(prefix: str, obj) -> list[tuple[str, float]]:
    """(tag, value) for every int/float leaf of nested mappings (lists are skipped)."""
    if isinstance(obj, Mapping):
        return [kv for k, v in obj.items() for kv in _numeric_leaves(f"{prefix}/{k}", v)]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool) and math.isfinite(obj):
        return [(prefix, float(obj))]
    return []


def write_tensorboard(tb_dir: Path, tree: Mapping[str, Mapping[str, Any]], search_history: list,
                      ranking: Mapping[str, Any]) -> bool:
    """Scalars from the recorded histories (written once at the end, so a resumed run has no
    duplicated points)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # noqa: BLE001 - tensorboard missing or broken: report without it
        log.warning("TensorBoard scalars skipped: %s", e)
        return False
    w = SummaryWriter(log_dir=str(tb_dir))
    try:
        for nid, node in tree.items():
            for h in node.get("history", []):
                for k in ("loss", "acc"):
                    if k in h:
                        w.add_scalar(f"train/{nid}/{k}", h[k], h["epoch"])
        for h in search_history or []:
            if isinstance(h, Mapping):
                step = h.get("generation", 0)
                for k, v in h.items():
                    if k != "generation" and isinstance(v, (int, float)):
                        w.add_scalar(f"search/{k}", v, step)
        for subset, cols in (ranking or {}).items():
            if subset != "settings":  # ranking/<top|sampled>/<column>/<predictor>/<metric>
                for tag, v in _numeric_leaves(f"ranking/{subset}", cols):
                    w.add_scalar(tag, v, 0)
    finally:
        w.close()
    return True


def write_report(out_dir: str | Path, result: Mapping[str, Any], *, search_history: list | None = None,
                 ranking_points: Mapping[str, Any] | None = None, plots: bool = True,
                 tensorboard: bool = True, write_json: bool = True) -> dict:
    """Plots, TensorBoard scalars, then ``result.json`` (atomically, last; ``write_json=False``
    leaves that to the caller). Returns the list of written artefacts (relative paths) by kind.
    ``plots`` / ``tensorboard``: False skips them.

    ``ranking_points``: {"predicted": {predictor: [values]}, "true": {column: [values]}} for the
    scatter plots; None: taken from ``result["ranking"]["sampled_points"]`` when present."""
    out = Path(out_dir)
    plot_dir = out / "plots"
    if plots:
        plot_dir.mkdir(parents=True, exist_ok=True)
    tree = result.get("split_tree", {})
    written: dict[str, list[str]] = {"plots": [], "tensorboard": []}
    for nid, node in (tree.items() if plots else ()):
        if plot_similarity(node, plot_dir / f"similarity_{nid}.png"):
            written["plots"].append(f"plots/similarity_{nid}.png")
        if plot_lid_profiles(node, plot_dir / f"lid_{nid}.png"):
            written["plots"].append(f"plots/lid_{nid}.png")
    if plots:
        if tree:
            plot_split_tree(tree, plot_dir / "split_tree.png")
            written["plots"].append("plots/split_tree.png")
        ranking = result.get("ranking") or {}
        if ranking_points is None:
            ranking_points = points_from_sampled(ranking.get("sampled_points"))
        written["plots"] += [f"plots/{p}" for p in plot_pred_vs_true(ranking_points, ranking, plot_dir)]
    if tensorboard and write_tensorboard(out / "tb", tree, search_history or [], result.get("ranking") or {}):
        written["tensorboard"] = ["tb"]
    if write_json:
        final = dict(result)
        final["artifacts"] = written
        atomic_write_json(out / "result.json", final)
    return written
