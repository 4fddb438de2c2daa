"""``RunStore``: the checkpoints of one search run, by what they hold (names and IO in one place).

Checkpoints (``OUT/ckpt/<name>.pt`` of a ``naslid.run.checkpoint.RunFolder``)::

    node-<id>            a node's training state, rewritten at the end of every epoch:
                         {stage, epoch (in the stage), epochs_total, model, optimizer, scheduler,
                          generator_at_epoch_start, rng, history}
    split-<id>-L<level>  {"record": the node's SplitRecord JSON at that level}
    search               the final search's outcome (``naslid.run.final_search``)
    ranking              {"report": ranking_report(...), "best": benchmark row of the best arch}
    progress             {"timings", "peaks", "extra"}: the stage meter, so a resumed run keeps counting

These names and layouts are those of every earlier version, so older run folders resume.
"""
from __future__ import annotations

from .checkpoint import RunFolder
from .stage_meter import StageMeter

SEARCH = "search"
RANKING = "ranking"
PROGRESS = "progress"


def node_checkpoint(node_id: str) -> str:
    """Checkpoint name of node ``node_id``'s training state."""
    return f"node-{node_id}"


def split_checkpoint(node_id: str, level: int) -> str:
    """Checkpoint name of node ``node_id``'s split record at ``level``."""
    return f"split-{node_id}-L{level}"


class RunStore:
    """Typed access to a ``RunFolder``'s checkpoints (see the module docstring). ``load``-like
    methods return None for a checkpoint not written yet; CheckpointError for a corrupt or foreign
    one."""

    def __init__(self, folder: RunFolder):
        self.folder = folder

    # ----- nodes -----------------------------------------------------------------------------------
    def node(self, node_id: str) -> dict | None:
        return self.folder.load(node_checkpoint(node_id))

    def save_node(self, node_id: str, state: dict) -> None:
        self.folder.save(node_checkpoint(node_id), state)

    def has_node(self, node_id: str) -> bool:
        return self.folder.exists(node_checkpoint(node_id))

    def node_or_parent(self, node: dict) -> dict | None:
        """The state of ``node`` (a record with ``id`` and ``parent``), or its parent's when the
        node has none yet (a child before its first epoch, a leaf trained no further); None for
        a root without one."""
        state = self.node(node["id"])
        if state is not None or not node["parent"]:
            return state
        return self.node(node["parent"])

    # ----- splits ----------------------------------------------------------------------------------
    def split_record(self, node_id: str, level: int) -> dict | None:
        saved = self.folder.load(split_checkpoint(node_id, level))
        return None if saved is None else saved["record"]

    def save_split_record(self, node_id: str, level: int, record: dict) -> None:
        self.folder.save(split_checkpoint(node_id, level), {"record": record})

    # ----- final search, ranking -------------------------------------------------------------------
    def search(self) -> dict | None:
        return self.folder.load(SEARCH)

    def save_search(self, outcome: dict) -> None:
        self.folder.save(SEARCH, outcome)

    def ranking(self) -> dict | None:
        return self.folder.load(RANKING)

    def save_ranking(self, saved: dict) -> None:
        self.folder.save(RANKING, saved)

    # ----- stage meter -----------------------------------------------------------------------------
    def meter(self, device) -> StageMeter:
        """A ``StageMeter`` continuing the saved timings and peaks (fresh when none are saved)."""
        saved = self.folder.load(PROGRESS) or {}
        return StageMeter(device, saved.get("timings"), saved.get("peaks"), saved.get("extra"))

    def save_meter(self, meter: StageMeter) -> None:
        self.folder.save(PROGRESS, {"timings": meter.timings, "peaks": meter.peaks, "extra": meter.extra})
