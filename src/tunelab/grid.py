"""A grid is a list of independent cells (method x train size x seed x model); run them, resumably.

Each cell is keyed by a hash of its resolved config: a finished cell is skipped when the
same command runs again, a crashed or failed one is redone. Cells run smallest training
size first, so a partial grid already compares every method.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import subprocess
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from tunelab import TunelabError
from tunelab.check import leakage
from tunelab.config import (
    MethodConfig,
    ModelConfig,
    RunConfig,
    TaskConfig,
    cell_key,
    grid_models,
    method_train,
    to_dict,
)
from tunelab.data import sample
from tunelab.evaluate import evaluate
from tunelab.lint import check_predictor
from tunelab.methods import Context, get_method, is_trained
from tunelab.models import timed_load
from tunelab.prompt import template_hash
from tunelab.store import Store, StoreError
from tunelab.tasks import get_task
from tunelab.tasks.base import Splits, Task
from tunelab.ui import console

PACKAGES = ("torch", "transformers", "peft", "accelerate", "trl", "faiss-cpu",
            "sentence-transformers", "tunelab", "numpy")


@dataclass
class Cell:
    method: MethodConfig
    train_size: int
    seed: int
    key: str
    model: ModelConfig = field(default_factory=ModelConfig)

    @property
    def label(self) -> str:
        return self.method.label or self.method.name


def cells(cfg: RunConfig, n_train_pool: int, scoring: str | None = None) -> list[Cell]:
    """All cells of the grid, smallest training size first (then model, method, seed).
    `scoring`: the task's data-chosen scoring; classification (a changed prompt and metrics)
    enters the cell key, so such cells never resume from results scored the old way."""
    out = []
    for m_order, model in enumerate(grid_models(cfg)):
        for order, m in enumerate(cfg.methods):
            get_method(m.name)
            if m.models and model.name not in m.models:
                continue
            if model.backend == "openai" and is_trained(m):
                raise TunelabError(
                    f"methods.{m.name}: trains weights, but model '{model.name}' uses the openai "
                    "backend (prompting only: zero_shot, few_shot)")
            sizes = [0] if m.name == "zero_shot" else (m.train_sizes or [n_train_pool])
            for size in sizes:
                size = min(size, n_train_pool)
                for seed in cfg.seeds:
                    parts = {
                        "task": _hashed(cfg.task), "model": _hashed(model), "eval": to_dict(cfg.eval),
                        "method": _hashed(m), "train": to_dict(method_train(cfg, m)),
                        "train_size": size, "seed": seed,
                    }
                    if not is_trained(m):
                        parts.pop("train")
                    if scoring == "classification":
                        parts["scoring"] = scoring
                    out.append(((size, m_order, order, seed), Cell(m, size, seed, cell_key(parts), model)))
    names = {m.name for m in grid_models(cfg)}
    for m in cfg.methods:
        unknown = [n for n in m.models if n not in names]
        if unknown:
            raise TunelabError(f"methods.{m.name}.models: '{unknown[0]}' is not a model of this grid. "
                               f"Available: {', '.join(sorted(names))}")
    return [c for _, c in sorted(out, key=lambda t: t[0])]


LATER_FIELDS = {ModelConfig: ("backend", "base_url", "api_key_env", "concurrency", "max_retries",
                               "timeout", "price_prompt", "price_completion"),
                MethodConfig: ("models",), TaskConfig: ("scoring",)}
"""Fields added after stores existed: left out of the cell key while at their defaults, so
existing stores keep their finished cells."""


def _hashed(obj) -> dict:
    d = to_dict(obj)
    default = to_dict(type(obj)())
    for f in LATER_FIELDS[type(obj)]:
        if d[f] == default[f]:
            del d[f]
    return d


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           cwd=Path(__file__).parent, timeout=5)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Grid:
    """Everything a cell needs that is shared by the grid: task, splits, store, cells."""

    cfg: RunConfig
    task: Task
    splits: Splits
    store: Store
    cells: list[Cell]
    common: dict


def prepare(cfg: RunConfig) -> Grid:
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
    return Grid(cfg, task, splits, Store(cfg.store), cells(cfg, len(splits.train), _scoring(task)), common)


def _scoring(task: Task) -> str | None:
    return task.scoring.kind if task.scoring else None


def shortfalls(cfg: RunConfig, splits: Splits) -> list[str]:
    """One line per split that is smaller than the config asks for (the run goes on with
    what there is, but a user who asked for 50 test examples must hear they got 20)."""
    out = []
    n_test, n_train, n_val = len(splits.test), len(splits.train), len(splits.validation)
    if cfg.task.n_test > n_test:
        hint = (f"; the test split was made as split_fraction {cfg.task.split_fraction} of the "
                "file: raise it or name a test file" if "made test" in splits.source else "")
        out.append(f"task.n_test: {cfg.task.n_test} asked, but the test split has {n_test} "
                   f"examples; evaluating on {n_test}{hint}")
    for m in cfg.methods:
        if m.name == "zero_shot":
            continue
        for size in m.train_sizes:
            if size > n_train:
                out.append(f"methods.{m.label or m.name}.train_sizes: {size} asked, but the "
                           f"training split has {n_train} examples; that cell uses {n_train}")
        if m.name == "prompt_search" and m.dev_size > n_val:
            out.append(f"methods.{m.label or m.name}.dev_size: {m.dev_size} asked, but the "
                       f"validation split has {n_val} examples; searching on {n_val}")
    return out


def cell_train(grid: Grid, cell: Cell) -> list:
    return sample(grid.splits.train, cell.train_size, cell.seed) if cell.train_size else []


def begin(grid: Grid, cell: Cell, tok) -> bool:
    """Mark the cell running in the store, with the exact config that reproduces it."""
    cfg = grid.cfg
    config = {**to_dict(cfg), "cell": {"method": to_dict(cell.method), "model": to_dict(cell.model),
              "train_size": cell.train_size, "seed": cell.seed,
              "train": to_dict(method_train(cfg, cell.method)),
              "splits": grid.splits.source, "primary": grid.task.primary,
              "scoring": to_dict(grid.task.scoring) if grid.task.scoring else None,
              "template_hash": template_hash(tok) if tok is not None else None}}
    return grid.store.begin(cell.key, {**grid.common, "model": cell.model.name, "method": cell.method.name,
                                "label": cell.label, "train_size": cell.train_size,
                                "n_train": len(cell_train(grid, cell)), "seed": cell.seed,
                                "config": config})


def run_grid(cfg: RunConfig, fail_fast: bool = False) -> list[str]:
    """Run every unfinished cell; returns the keys of the grid's cells."""
    grid = prepare(cfg)
    todo = [c for c in grid.cells if grid.store.status(c.key) != "done"]
    console.print(f"[bold]{len(grid.cells)} cells[/], {len(grid.cells) - len(todo)} already done; "
                  f"{len(grid.splits.test)} test examples ({grid.splits.source})")
    for line in shortfalls(cfg, grid.splits):
        console.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    if grid.task.scoring:
        console.print(f"scoring: {grid.task.scoring.kind}: {grid.task.scoring.why}",
                      highlight=False, soft_wrap=True)
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


def run_local(grid: Grid, todo: list[Cell], fail_fast: bool) -> None:
    """Cells one after another in this process; each model is loaded once."""
    loaded = {}
    for cell in todo:
        if grid.store.status(cell.key) == "done":  # another grid on this store did it meanwhile
            continue
        name = cell.model.name
        if name not in loaded:
            model, tok, load_s = timed_load(cell.model)
            console.print(f"model {name} loaded in {load_s:.1f} s")
            loaded[name] = (model, tok)
        model, tok = loaded[name]
        if not begin(grid, cell, tok):
            continue
        try:
            result = compute_cell(grid.cfg, cell, grid.task, grid.splits, model, tok)
        except StoreError:
            raise
        except Exception as e:  # a failed cell must not stop the grid
            record_failure(grid, cell, e)
            if fail_fast:
                raise
            continue
        record(grid, cell, result)


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
    grid.store.finish(cell.key, result.fields, result.metrics, result.higher, result.rows)
    if grid.cfg.tracking:
        from tunelab.tracking import log_cell

        log_cell(grid.cfg.tracking, grid.store.run(cell.key), result)
    p = grid.task.primary
    m, lo, hi = result.metrics[p]
    console.print(f"[green]{cell.model.name} {cell.label}[/] n={cell.train_size} seed={cell.seed}: "
                  f"{p} {m:.3f} [{lo:.3f}, {hi:.3f}]  eval {result.fields['eval_seconds']:.0f} s")


@dataclass
class CellResult:
    fields: dict
    metrics: dict
    higher: dict
    rows: list[dict]


def seed_everything(seed: int) -> None:
    """Same seed, same cell: adapter init and dropout must not depend on which cells ran
    before in this process (a resumed grid runs a different sequence)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def compute_cell(cfg: RunConfig, cell: Cell, task: Task, splits: Splits, model, tok,
                 train_only: bool = False) -> CellResult | None:
    """Build the cell's predictor (training if the method trains) and evaluate it."""
    seed_everything(cell.seed)
    train = sample(splits.train, cell.train_size, cell.seed) if cell.train_size else []
    run_dir = Path(cfg.out_dir) / "cells" / cell.key
    run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint(stage: str, pred) -> dict:
        """Score an intermediate training stage on the same test slice."""
        r = evaluate(pred, task, splits.test, cfg.eval, label=f"eval {cell.label}: {stage}")
        return {name: list(v) for name, v in r.metrics.items()}

    ctx = Context(model, tok, task, train, cell.method, method_train(cfg, cell.method),
                  cell.seed, run_dir, validation=splits.validation, eval_cfg=cfg.eval,
                  checkpoint=checkpoint)
    pred = get_method(cell.method.name)(ctx)
    if train_only:
        return None
    if train and pred.info.get("train_prompt") is not None:
        check_predictor(pred, train[0], pred.info["train_prompt"])
    res = evaluate(pred, task, splits.test, cfg.eval,
                   label=f"eval {cell.model.name} {cell.label} n={len(train)}")
    info = {**pred.info, "prompts": res.prompts,
            "template_hash": template_hash(tok) if tok is not None else None}
    n = len(res.rows)
    if hasattr(model, "cost"):
        info["api_cost_usd"] = model.cost(sum(r["prompt_tokens"] for r in res.rows),
                                          sum(r["gen_tokens"] for r in res.rows))
    info["latency_s_mean"] = sum(r["latency_s"] for r in res.rows) / n
    fields = {
        "info": info,
        "train_seconds": info.get("train_seconds", 0.0),
        "eval_seconds": res.seconds,
        "train_tokens": info.get("train_tokens", 0),
        "trainable_params": info.get("trainable_params", 0),
        # soft-prompt models run their virtual tokens in front of every prompt
        "prompt_tokens_mean": sum(r["prompt_tokens"] for r in res.rows) / n
                              + info.get("virtual_tokens", 0),
        "gen_tokens_mean": sum(r["gen_tokens"] for r in res.rows) / n,
        "peak_rss_mb": peak_rss_mb(),
    }
    higher = {name: m.higher_is_better for name, m in task.all_metrics.items()}
    return CellResult(fields, res.metrics, higher, res.rows)


def run_ray(grid: Grid, todo: list[Cell], fail_fast: bool) -> None:
    from tunelab.cluster import run_ray as _run

    _run(grid, todo, fail_fast)


EXECUTORS = {"local": run_local, "ray": run_ray}


def run_cell(cfg: RunConfig, method: str, size: int, seed: int, model: str | None = None) -> str | None:
    """One cell of a grid, also under `accelerate launch` (data-parallel training): every
    process trains its share; process 0 alone evaluates, saves and writes the store."""
    rank = int(os.environ.get("RANK", "0"))
    task = get_task(cfg.task)
    splits = task.load()
    found = [c for c in cells(cfg, len(splits.train), _scoring(task))
             if c.method.name == method and c.train_size == min(size, len(splits.train))
             and c.seed == seed and (model is None or c.model.name == model)]
    if len(found) != 1:
        raise TunelabError(f"{len(found)} cells of this config match method={method} size={size} "
                           f"seed={seed}{' model=' + model if model else ''}; need exactly one")
    cell = found[0]
    m, tok, _ = timed_load(cell.model)
    if rank != 0:
        cell.method.train = {**cell.method.train, "save": False}
        compute_cell(cfg, cell, task, splits, m, tok, train_only=True)
        return None
    grid = Grid(cfg, task, splits, Store(cfg.store), [cell],
                {"git_commit": git_commit(), "versions": versions(), "task": task.name,
                 "n_test": len(splits.test)})
    begin(grid, cell, tok)
    try:
        result = compute_cell(cfg, cell, task, splits, m, tok)
    except StoreError:
        raise
    except Exception as e:
        record_failure(grid, cell, e)
        raise TunelabError(f"cell {cell.key} failed: {str(e).splitlines()[0]}") from None
    record(grid, cell, result)
    return cell.key
