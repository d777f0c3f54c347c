"""`executor: ray`: the grid's cells as Ray tasks; the driver alone writes the store.

Ray does the scheduling (resources per cell from `resources:`, e.g. {num_cpus: 4,
num_gpus: 1}); each worker loads the task and the model itself (once per worker process)
and returns the cell's result, which the driver records exactly as the local executor
does. Same cells, same keys, same store: a grid can be started locally and finished on a
cluster, or the other way round.
"""

from __future__ import annotations

from tunelab import TunelabError
from tunelab.backends.registry import timed_load
from tunelab.core.config import MethodConfig, ModelConfig, RunConfig, from_dict, to_dict
from tunelab.core.ui import console
from tunelab.run.cell_store import Grid, begin, record, record_failure
from tunelab.run.cells import Cell
from tunelab.run.compute_cell import CellResult, compute_cell
from tunelab.tasks import get_task

_LOADED: dict[str, tuple] = {}
"""Per worker process: model name -> (model, tokenizer), so a worker loads each model once."""


def _cell_task(cfg_dict: dict, method: dict, model: dict, train_size: int, seed: int,
               key: str) -> CellResult:
    """Runs inside a Ray worker."""
    cfg = from_dict(RunConfig, cfg_dict)
    cell = Cell(from_dict(MethodConfig, method), train_size, seed, key, from_dict(ModelConfig, model))
    task = get_task(cfg.task)
    splits = task.load()
    if cell.model.name not in _LOADED:
        _LOADED[cell.model.name] = timed_load(cell.model)[:2]
    m, tok = _LOADED[cell.model.name]
    return compute_cell(cfg, cell, task, splits, m, tok)


def run_ray(grid: Grid, todo: list[Cell], fail_fast: bool) -> None:
    try:
        import ray
    except ImportError:
        raise TunelabError("executor 'ray': ray is not installed; "
                           "pip install 'tunelab[cluster]'") from None
    if not ray.is_initialized():
        ray.init(address=grid.cfg.ray_address)
    res = grid.cfg.resources
    remote = ray.remote(num_cpus=res.get("num_cpus", 1), num_gpus=res.get("num_gpus", 0),
                        max_retries=0)(_cell_task)
    cfg_dict = to_dict(grid.cfg)
    pending = {}
    for cell in todo:
        if not begin(grid, cell, None):  # done by another grid on this store
            continue
        ref = remote.remote(cfg_dict, to_dict(cell.method), to_dict(cell.model),
                            cell.train_size, cell.seed, cell.key)
        pending[ref] = cell
    console.print(f"ray: {len(pending)} cells submitted, {res} each")
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        cell = pending.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            record_failure(grid, cell, e.cause if e.cause is not None else e)
            if fail_fast:
                for r in pending:
                    ray.cancel(r)
                raise TunelabError(f"cell {cell.label} n={cell.train_size} seed={cell.seed} failed "
                                   "(--fail-fast)") from None
            continue
        record(grid, cell, result)
