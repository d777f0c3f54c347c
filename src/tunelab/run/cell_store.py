"""Booking a grid's cells in the store: claimed (running), finished or failed.

The grid's shared state (Grid) lives here too, so every executor books cells the same
way and nothing else writes the store.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tunelab import TunelabError
from tunelab.backends.prompt import template_hash
from tunelab.core.config import RunConfig, to_dict
from tunelab.core.store import Store
from tunelab.core.ui import console
from tunelab.eval.predictor import stored_info as run_info
from tunelab.methods import is_trained, method_train
from tunelab.methods.stored import as_stored
from tunelab.run.cells import Cell
from tunelab.run.compute_cell import CellResult
from tunelab.tasks.base import Splits, Task


@dataclass
class Grid:
    """Everything a cell needs that is shared by the grid: task, splits, store, cells."""

    cfg: RunConfig
    task: Task
    splits: Splits
    store: Store
    cells: list[Cell]
    common: dict
    settle: Callable | None = None
    """Sequential evaluation's stopping rule (run/sequential.Settle), handed in by the
    command that runs the grid; None: every arm is scored on the whole slice."""


def sequential(grid: Grid) -> bool:
    """Whether this grid's cells are scored in rounds (local executor, a rule handed in)."""
    return grid.cfg.eval.sequential and grid.cfg.executor == "local" and grid.settle is not None


UNFINISHED = "the run ended after {n} examples, before the headline was decided"
"""Why scoring stopped, as stored for a cell between rounds of sequential evaluation
(run/sequential.save): what a run that dies there leaves."""


def complete(grid: Grid, key: str) -> bool:
    """Whether a cell is finished in the store. A cell left between rounds by a run that
    died is not: resuming scores it again until the headline is decided, as the run would
    have (left as it was, a resumed grid drew its verdict on the few examples scored before
    the crash). With `eval.sequential: false` a cell that sequential evaluation stopped
    early (fewer examples scored than the slice holds) is not either: a fixed-slice run
    scores it again on the whole slice."""
    if grid.store.status(key) != "done":
        return False
    info = run_info(grid.store.run(key))
    if info.stopped == UNFINISHED.format(n=info.n_scored):
        return False
    if sequential(grid):
        return True
    return info.n_scored is None or info.n_scored >= len(grid.splits.test)


def begin(grid: Grid, cell: Cell, tok, replace: bool = False) -> bool:
    """Mark the cell running in the store, with the exact config that reproduces it and
    what the report needs without live code (trained or not, primary metric and its
    direction). `replace`: claim it even if finished (complete() said it is not)."""
    cfg, task = grid.cfg, grid.task
    config = {**to_dict(cfg), "cell": {"method": as_stored(cell.method), "model": to_dict(cell.model),
              "train_size": cell.train_size, "seed": cell.seed,
              "train": to_dict(method_train(cfg, cell.method)),
              "splits": grid.splits.source, "primary": task.primary,
              "higher_is_better": task.all_metrics[task.primary].higher_is_better,
              "trained": is_trained(cell.method), "task_version": task.version,
              "scoring": to_dict(task.scoring) if task.scoring else None,
              "template_hash": template_hash(tok) if tok is not None else None}}
    return grid.store.begin(cell.key, {**grid.common, "model": cell.model.name, "method": cell.method.name,
                                "label": cell.label, "train_size": cell.train_size,
                                "n_train": cell.train_size, "seed": cell.seed,
                                "config": config}, replace=replace)


def record_failure(grid: Grid, cell: Cell, e: BaseException) -> None:
    if isinstance(e, TunelabError):
        msg = str(e)
    else:
        msg = f"{type(e).__name__}: {e}\n{''.join(traceback.format_exception(e, limit=3))}"
    grid.store.fail(cell.key, msg)
    console.print(f"[red]cell {cell.label} n={cell.train_size} seed={cell.seed} failed:[/] "
                  f"{msg.splitlines()[0]}")


def record(grid: Grid, cell: Cell, result: CellResult) -> None:
    """Store a finished cell (one transaction) and log it to the tracker, if any."""
    grid.store.record("cell", cell.key, result.fields, result.metrics, result.higher, result.rows)
    if grid.cfg.tracking:
        from tunelab.run.tracking import log_cell

        log_cell(grid.cfg.tracking, grid.store.run(cell.key), result)
    p = grid.task.primary
    m, lo, hi = result.metrics[p]
    console.print(f"[green]{cell.model.name} {cell.label}[/] n={cell.train_size} seed={cell.seed}: "
                  f"{p} {m:.3f} [{lo:.3f}, {hi:.3f}]  eval {result.fields['eval_seconds']:.0f} s")
