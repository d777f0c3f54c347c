"""A grid is a list of independent cells (method x train size x seed x model); run them, resumably.

Each cell is keyed by a hash of what its result depends on (keys.py): a finished cell is
skipped when the same command runs again, a crashed or failed one is redone. This module
sets a grid up (task, splits, leakage check, cells, a store moved onto today's keys) and
hands the unfinished cells to an executor (executors.py); cells.py, run/compute_cell.py
and run/cell_store.py do the rest.
"""

from __future__ import annotations

import os

from tunelab import TunelabError
from tunelab.core.config import RunConfig
from tunelab.core.provenance import git_commit, versions
from tunelab.core.store import Store
from tunelab.core.ui import console
from tunelab.data.check import leakage
from tunelab.run.cell_store import Grid, complete
from tunelab.run.cells import Cell, cells, shortfalls
from tunelab.run.executors import EXECUTORS
from tunelab.run.keys import KEY_VERSION, task_identity
from tunelab.run.migrate import migrate
from tunelab.run.sequential import Settle
from tunelab.tasks import get_task


def _open(cfg: RunConfig, task, splits) -> tuple[Store, list[Cell], int]:
    """The store and the grid's cells, the store first moved onto today's cell keys
    (migrate.py: a no-op once done)."""
    scoring = task.scoring.kind if task.scoring else None
    identity = task_identity(task, splits, scoring)
    grid_cells = cells(cfg, len(splits.train), scoring, identity)
    store = Store(cfg.store)
    return store, grid_cells, migrate(store, cfg, grid_cells, scoring, identity)


def migrate_config(cfg: RunConfig) -> int:
    """`tunelab store migrate`: move the stored runs of a config's cells onto today's keys;
    how many moved."""
    task = get_task(cfg.task)
    return _open(cfg, task, task.load())[2]


def prepare(cfg: RunConfig) -> Grid:
    """Task, splits (leakage-checked), store and cells of a config, before any cell runs."""
    task = get_task(cfg.task)
    splits = task.load()
    bad = leakage(splits.train, splits.test)
    if bad and not cfg.allow_leakage:
        exact = sum(p.exact for p in bad)
        raise TunelabError(
            f"{bad[0].a.id}: input: test example also occurs in the training data "
            f"({exact} exact, {len(bad) - exact} near-duplicate leaked); fix the split or "
            "pass --allow-leakage (allow_leakage: true)"
        )
    if cfg.tracking and cfg.tracking not in ("mlflow",):
        raise TunelabError(f"Unknown tracking '{cfg.tracking}'. Available: mlflow")
    if cfg.executor not in EXECUTORS:
        raise TunelabError(f"Unknown executor '{cfg.executor}'. Available: {', '.join(EXECUTORS)}")
    common = {"git_commit": git_commit(), "versions": versions(), "task": task.name,
              "n_test": len(splits.test)}
    store, grid_cells, moved = _open(cfg, task, splits)
    if moved:
        console.print(f"migrated {moved} stored cells to key version {KEY_VERSION}")
    return Grid(cfg, task, splits, store, grid_cells, common)


def run_grid(cfg: RunConfig, fail_fast: bool = False, settle: Settle | None = None) -> list[str]:
    """Run every unfinished cell; returns the keys of the grid's cells. `settle`: the
    verdict's stopping rule for sequential evaluation (decide/sequential.rule; without
    it every arm is scored on the whole slice)."""
    grid = prepare(cfg)
    grid.settle = settle
    todo = [c for c in grid.cells if not complete(grid, c.key)]
    console.print(f"[bold]{len(grid.cells)} cells[/], {len(grid.cells) - len(todo)} already done; "
                  f"{len(grid.splits.test)} test examples ({grid.splits.source})")
    for line in shortfalls(cfg, grid.splits):
        console.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    if grid.task.scoring:
        console.print(f"scoring: {grid.task.scoring.kind}: {grid.task.scoring.why}",
                      highlight=False, soft_wrap=True)
    if todo and cfg.eval.sequential and cfg.executor != "local" and settle is not None:
        console.print(f"note: sequential evaluation is implemented in the local executor only; "
                      f"{cfg.executor} scores every arm on the whole test slice", highlight=False)
    if todo:
        EXECUTORS[cfg.executor](grid, todo, fail_fast)
    keys = [c.key for c in grid.cells]
    failed = [r for r in grid.store.runs("failed") if r["id"] in set(keys)]
    if failed:
        first = failed[0]
        what = (f"{len(failed)} of {len(keys)} cells failed; first: {first['label']} "
                f"n={first['train_size']} seed={first['seed']}: {(first['error'] or '').splitlines()[0]}")
        if len(failed) == len(keys):
            raise TunelabError(what)
        console.print(f"[yellow]warning:[/] {what} (tunelab ls --store {cfg.store})",
                      highlight=False, soft_wrap=True)
    return keys


def run_cell(cfg: RunConfig, method: str, size: int, seed: int, model: str | None = None) -> str | None:
    """One cell of a grid, also under `accelerate launch` (data-parallel training): set up
    as every grid is (prepare: leakage check, keys), then the accelerate executor."""
    grid = prepare(cfg)
    found = [c for c in grid.cells
             if c.method.name == method and c.train_size == min(size, len(grid.splits.train))
             and c.seed == seed and (model is None or c.model.name == model)]
    if len(found) != 1:
        raise TunelabError(f"{len(found)} cells of this config match method={method} size={size} "
                           f"seed={seed}{' model=' + model if model else ''}; need exactly one")
    grid.cells = found
    EXECUTORS["accelerate"](grid, found, True)
    return found[0].key if int(os.environ.get("RANK", "0")) == 0 else None
