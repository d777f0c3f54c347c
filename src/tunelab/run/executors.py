"""Executors: who computes a grid's cells, behind one interface.

An executor is `run(grid, todo, fail_fast)`: it computes the cells in `todo` and books
each one through run/cell_store.py (begin, then record or record_failure), so the store reads
the same whichever ran them. local: one after another in this process; ray: cells as
Ray tasks (run/ray_executor.py); accelerate: one cell trained data-parallel by every process of
an `accelerate launch` / torchrun, process 0 alone evaluating and booking it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tunelab import TunelabError
from tunelab.backends.registry import timed_load
from tunelab.core.store import StoreError
from tunelab.core.ui import console
from tunelab.run.cell_store import Grid, begin, complete, record, record_failure, sequential
from tunelab.run.cells import Cell
from tunelab.run.compute_cell import compute_cell
from tunelab.run.ray_executor import run_ray
from tunelab.run.sequential import run_sequential, too_big

Executor = Callable[[Grid, list[Cell], bool], None]


def _compute_and_book(grid: Grid, cell: Cell, model, tok, fail_fast: bool) -> None:
    # replace: a cell stopped early by sequential evaluation, now wanted on the whole slice
    if not begin(grid, cell, tok, replace=grid.store.status(cell.key) == "done"):
        return
    try:
        result = compute_cell(grid.cfg, cell, grid.task, grid.splits, model, tok)
    except StoreError:
        raise
    except Exception as e:  # a failed cell must not stop the grid
        record_failure(grid, cell, e)
        if fail_fast:
            raise
        return
    record(grid, cell, result)


def loader() -> Callable[[Cell], tuple]:
    """cell -> (model, tok), each model loaded once."""
    loaded = {}

    def load(cell: Cell) -> tuple:
        name = cell.model.name
        if name not in loaded:
            model, tok, load_s = timed_load(cell.model)
            console.print(f"model {name} loaded in {load_s:.1f} s")
            loaded[name] = (model, tok)
        return loaded[name]

    return load


def run_local(grid: Grid, todo: list[Cell], fail_fast: bool) -> None:
    """Cells in this process, each model loaded once: in lockstep rounds until the verdict
    is settled (eval.sequential, run/sequential.py), else one after another on the whole
    slice; also so where the rounds' trained copies of the weights would not fit in memory
    (sequential.too_big)."""
    load = loader()
    if sequential(grid):
        why = too_big(todo, load)
        if why is None:
            run_sequential(grid, todo, load, fail_fast)
            return
        console.print(f"note: {why}; each arm is scored on the whole test slice instead, one after "
                      "another (as with eval.sequential: false)", highlight=False, soft_wrap=True)
    for cell in todo:
        if complete(grid, cell.key):  # another grid on this store did it meanwhile
            continue
        _compute_and_book(grid, cell, *load(cell), fail_fast)


def run_accelerate(grid: Grid, todo: list[Cell], fail_fast: bool) -> None:
    """Under `accelerate launch` (or torchrun): every process trains its share of each
    cell; process 0 alone evaluates, saves and books it."""
    rank = int(os.environ.get("RANK", "0"))
    for cell in todo:
        model, tok, _ = timed_load(cell.model)
        if rank != 0:
            cell.method.train = {**cell.method.train, "save": False}
            compute_cell(grid.cfg, cell, grid.task, grid.splits, model, tok, train_only=True)
            continue
        try:
            _compute_and_book(grid, cell, model, tok, fail_fast=True)
        except StoreError:
            raise
        except Exception as e:
            raise TunelabError(f"cell {cell.key} failed: {str(e).splitlines()[0]}") from None


EXECUTORS: dict[str, Executor] = {"local": run_local, "ray": run_ray, "accelerate": run_accelerate}
"""The `executor:` setting (accelerate is what `tunelab cell` runs under a launcher)."""
