"""Sequential evaluation in the local executor: every pending cell scored in lockstep
rounds, until the comparison the recommendation needs is decided.

Each pending cell is built (trained if it trains; trained cells hold their own copy of
the weights, so predictors coexist) and scored on the first `eval.round_size` examples of
the test slice (its seeded order, the same for every arm). Then after each round the
verdict's rule (Grid.settle: decide/sequential.rule) checks the headline with intervals
adjusted for the planned looks (decide/looks.py), and the next round is scored only if it
is not decided and the slice is not used up. Every cell is stored after every round with
how many examples it was scored on and why it stopped (info: n_scored, stopped, looks),
so a run that dies keeps what it scored; resuming it builds and scores such a cell again
(cell_store.complete). Cells already finished in the store take part with the examples
they were scored on, as stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tunelab.core.store import StoreError
from tunelab.core.ui import console
from tunelab.eval.evaluate import EvalResult, evaluate, joined
from tunelab.methods import is_trained
from tunelab.run.cell_store import UNFINISHED, Grid, begin, complete, record, record_failure
from tunelab.run.cells import Cell
from tunelab.run.compute_cell import CellResult, build_cell, cell_result
from tunelab.run.rounds import planned_looks, round_ends

Loader = Callable[[Cell], tuple]
"""A cell -> (model, tok) of its model, loaded once per grid."""
Settle = Callable[[list[dict], int, str, float], "str | None"]
"""(cells as scored so far, planned looks, primary metric, margin) -> why scoring may stop,
or None. The verdict's rule (decide/sequential.rule) sits above this layer: the command
that runs the grid hands it in (Grid.settle)."""


FIT = 0.5
"""Lockstep rounds hold every trained cell's copy of the weights at once: they run only if
those copies take at most this share of the memory free on the model's device (the rest is
for the base weights, training and generation)."""


def free_bytes(model) -> int:
    """Memory free on the device the model's weights are on (CUDA: the card's; else RAM)."""
    import psutil
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def too_big(todo: list[Cell], load: Loader) -> str | None:
    """Why lockstep rounds would not fit in memory (a sentence), or None where they fit.
    Each trained cell keeps its own copy of its model's weights until the last round
    (methods/finetune.py copies them), so ten trained arms of a 1B model need ten copies."""
    trained = [c for c in todo if is_trained(c.method)]
    if len(trained) < 2:  # one copy at a time either way
        return None
    need, free = 0, None
    for c in trained:
        model = load(c)[0]
        need += sum(p.numel() * p.element_size() for p in model.parameters())
        free = free_bytes(model) if free is None else free
    if need <= FIT * free:
        return None
    return (f"sequential evaluation would hold {len(trained)} trained copies of the weights at once "
            f"({need / 2**30:.1f} GiB), more than {FIT:.0%} of the {free / 2**30:.1f} GiB free")


@dataclass
class Live:
    """A cell whose predictor is built and being scored round by round."""

    cell: Cell
    pred: object
    model: object
    tok: object
    parts: list[EvalResult] = field(default_factory=list)


def as_scored(cell: Cell, rows: list[dict]) -> dict:
    """What decide/sequential.interim_arms reads of a cell."""
    return {"model": cell.model.name, "label": cell.label, "method": cell.method.name,
            "n_train": cell.train_size, "trained": is_trained(cell.method), "rows": rows}


def _fail(grid: Grid, cell: Cell, e: Exception, fail_fast: bool) -> None:
    if isinstance(e, StoreError):
        raise e
    record_failure(grid, cell, e)  # a failed cell must not stop the grid
    if fail_fast:
        raise e


def build_all(grid: Grid, todo: list[Cell], load: Loader, fail_fast: bool, first: int) -> list[Live]:
    """Claim, build and score the first round (`first` examples) of every pending cell,
    storing each as soon as it has (failures booked, the rest returned): a run that dies
    while the next cell trains keeps the cells already trained."""
    live = []
    for cell in todo:
        if complete(grid, cell.key):  # another grid on this store did it meanwhile
            continue
        model, tok = load(cell)
        if not begin(grid, cell, tok, replace=grid.store.status(cell.key) == "done"):
            continue
        try:
            pred = build_cell(grid.cfg, cell, grid.task, grid.splits, model, tok)
        except Exception as e:
            _fail(grid, cell, e, fail_fast)
            continue
        live += save(grid, score_round(grid, [Live(cell, pred, model, tok)], 0, first, fail_fast))
    return live


def score_round(grid: Grid, live: list[Live], start: int, end: int, fail_fast: bool) -> list[Live]:
    """Examples start..end of the slice for every live cell; the cells still live after."""
    kept = []
    for lv in live:
        c = lv.cell
        try:
            lv.parts.append(evaluate(lv.pred, grid.task, grid.splits.test[start:end], grid.cfg.eval,
                                     label=f"eval {c.model.name} {c.label} n={c.train_size} "
                                           f"[{start}:{end}]", start=start))
        except Exception as e:
            _fail(grid, c, e, fail_fast)
            continue
        kept.append(lv)
    return kept


def result(grid: Grid, lv: Live, why: str) -> CellResult:
    """A live cell's result over the rounds it was scored on, with its count and reason."""
    res = cell_result(grid.task, lv.model, lv.tok, lv.pred, joined(lv.parts, grid.task, grid.cfg.eval))
    size = grid.cfg.eval.round_size
    res.fields["info"].update(n_scored=len(res.rows), stopped=why, round_size=size,
                              looks=planned_looks(len(grid.splits.test), size))
    return res


def save(grid: Grid, live: list[Live]) -> list[Live]:
    """Store every live cell as scored so far, its reason saying the run did not finish:
    what a run that dies before the next round leaves. Its intervals hold there too (a
    stop for any reason is covered by the look adjustment); the last round overwrites it."""
    for lv in live:
        n = sum(len(p.rows) for p in lv.parts)
        res = result(grid, lv, UNFINISHED.format(n=n))
        grid.store.finish(lv.cell.key, res.fields, res.metrics, res.higher, res.rows)
    return live


def stored(grid: Grid, skip: set[str]) -> list[dict]:
    """The grid's cells already finished in the store, as scored (all their stored rows)."""
    return [as_scored(c, grid.store.predictions(c.key)) for c in grid.cells
            if c.key not in skip and grid.store.status(c.key) == "done"]


def look(grid: Grid, done: list[dict], live: list[Live]) -> str | None:
    """The verdict's rule on every cell as scored so far: why to stop, or None."""
    looks = planned_looks(len(grid.splits.test), grid.cfg.eval.round_size)
    if looks == 1 or not live:  # one look: scored in full, nothing to stop early
        return None
    now = [as_scored(lv.cell, [r for p in lv.parts for r in p.rows]) for lv in live]
    return grid.settle(done + now, looks, grid.task.primary, grid.cfg.report.margin)


def run_sequential(grid: Grid, todo: list[Cell], load: Loader, fail_fast: bool) -> None:
    """Build every pending cell, score them in rounds until the headline is decided or the
    slice is used up, then store each with its count and reason."""
    n_test = len(grid.splits.test)
    ends = round_ends(n_test, grid.cfg.eval.round_size)
    live = build_all(grid, todo, load, fail_fast, ends[0])
    if not live:
        return
    done = stored(grid, {lv.cell.key for lv in live})
    why, start = look(grid, done, live), ends[0]
    for end in ends[1:]:
        if why is not None:
            break
        live = save(grid, score_round(grid, live, start, end, fail_fast))
        start = end
        why = look(grid, done, live)
    why = why or "test slice used up"
    if start < n_test:
        console.print(f"[bold]sequential evaluation:[/] {why}; {n_test - start} of {n_test} test "
                      "examples per arm left unscored")
    for lv in live:
        record(grid, lv.cell, result(grid, lv, why))
