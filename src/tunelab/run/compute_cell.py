"""Compute one cell: build the method's predictor (training if it trains) and evaluate it.

Pure work on a loaded model: no store, no scheduling (run/cell_store.py and executors.py).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from tunelab import TunelabError
from tunelab.backends.prompt import template_hash
from tunelab.backends.registry import backend_of, timed_load
from tunelab.core.config import RunConfig, grid_models
from tunelab.data.readers import Example, sample
from tunelab.eval.evaluate import EvalResult, evaluate
from tunelab.eval.template_lint import check_predictor
from tunelab.methods import Context, get_method, method_train
from tunelab.run.cells import Cell
from tunelab.tasks.base import Splits, Task
from tunelab.train.loop import seed_everything


@dataclass
class CellResult:
    fields: dict
    metrics: dict
    higher: dict
    rows: list[dict]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cell_train(splits: Splits, cell: Cell) -> list[Example]:
    """The cell's training subset (seeded; nested across sizes). Its size is
    cell.train_size, so bookkeeping never needs to draw it."""
    return sample(splits.train, cell.train_size, cell.seed) if cell.train_size else []


def compute_cell(cfg: RunConfig, cell: Cell, task: Task, splits: Splits, model, tok,
                 train_only: bool = False) -> CellResult | None:
    """Build the cell's predictor (training if the method trains) and evaluate it."""
    pred = build_cell(cfg, cell, task, splits, model, tok)
    if train_only:
        return None
    res = evaluate(pred, task, splits.test, cfg.eval,
                   label=f"eval {cell.model.name} {cell.label} n={cell.train_size}")
    return cell_result(task, model, tok, pred, res)


def build_cell(cfg: RunConfig, cell: Cell, task: Task, splits: Splits, model, tok):
    """The cell's predictor (training if the method trains), checked, not yet evaluated."""
    seed_everything(cell.seed)
    train = cell_train(splits, cell)
    run_dir = Path(cfg.out_dir) / "cells" / cell.key
    run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint(stage: str, pred) -> dict:
        """Score an intermediate training stage on the same test slice."""
        r = evaluate(pred, task, splits.test, cfg.eval, label=f"eval {cell.label}: {stage}")
        return {name: list(v) for name, v in r.metrics.items()}

    def load(name: str) -> tuple:
        """Another model of the grid (distill's teacher); the cell's own is already here."""
        if name == cell.model.name:
            return model, tok
        found = [m for m in grid_models(cfg) if m.name == name]
        if not found:
            raise TunelabError(f"model '{name}' is not a model of this grid")
        return timed_load(found[0])[:2]

    ctx = Context(model, tok, task, train, cell.method, method_train(cfg, cell.method),
                  cell.seed, run_dir, validation=splits.validation, eval_cfg=cfg.eval,
                  checkpoint=checkpoint, pool=splits.train, load=load)
    pred = get_method(cell.method.name)(ctx)
    if train and pred.info.train_prompt is not None:
        check_predictor(pred, train[0], pred.info.train_prompt)
    return pred


def cell_result(task: Task, model, tok, pred, res: EvalResult) -> CellResult:
    """What the store keeps of an evaluated predictor: info, costs, metrics, rows."""
    info = pred.info
    info.update(prompts=res.prompts, template_hash=template_hash(tok) if tok is not None else None)
    n = len(res.rows)
    asked = backend_of(pred.model)
    cost = asked.cost(pred.model, sum(r["prompt_tokens"] for r in res.rows),
                      sum(r["gen_tokens"] for r in res.rows))
    if cost is not None:  # priced per token (an API); else by device time, in decide/cost.py
        info.api_cost_usd = cost
    info.latency_s_mean = sum(r["latency_s"] for r in res.rows) / n
    info.device = asked.device(pred.model)  # "api", or where the weights ran: the cost table's price
    info.n_scored = n  # test examples scored (sequential evaluation may stop short)
    fields = {
        "info": info.to_json(),
        "train_seconds": info.train_seconds or 0.0,
        "eval_seconds": res.seconds,
        "train_tokens": info.train_tokens or 0,
        "trainable_params": info.trainable_params or 0,
        # soft-prompt models run their virtual tokens in front of every prompt
        "prompt_tokens_mean": sum(r["prompt_tokens"] for r in res.rows) / n
                              + (info.virtual_tokens or 0),
        "gen_tokens_mean": sum(r["gen_tokens"] for r in res.rows) / n,
        "peak_rss_mb": peak_rss_mb(),
    }
    higher = {name: m.higher_is_better for name, m in task.all_metrics.items()}
    return CellResult(fields, res.metrics, higher, res.rows)
