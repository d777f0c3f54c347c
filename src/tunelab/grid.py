"""A grid is a list of independent cells (method x train size x seed); run them, resumably.

Each cell is keyed by a hash of its resolved config: a finished cell is skipped when the
same command runs again, a crashed or failed one is redone. Cells run smallest training
size first, so a partial grid already compares every method.
"""

from __future__ import annotations

import platform
import resource
import subprocess
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tunelab import TunelabError
from tunelab.config import MethodConfig, RunConfig, cell_key, method_train, to_dict
from tunelab.data import leaked, sample
from tunelab.evaluate import evaluate
from tunelab.methods import Context, get_method, is_trained
from tunelab.models import timed_load
from tunelab.prompt import template_hash
from tunelab.store import Store
from tunelab.tasks import get_task
from tunelab.ui import console

PACKAGES = ("torch", "transformers", "peft", "accelerate", "trl", "faiss-cpu",
            "sentence-transformers", "tunelab", "numpy")


@dataclass
class Cell:
    method: MethodConfig
    train_size: int
    seed: int
    key: str

    @property
    def label(self) -> str:
        return self.method.label or self.method.name


def cells(cfg: RunConfig, n_train_pool: int) -> list[Cell]:
    """All cells of the grid, smallest training size first."""
    out = []
    for order, m in enumerate(cfg.methods):
        get_method(m.name)
        sizes = [0] if m.name == "zero_shot" else (m.train_sizes or [n_train_pool])
        for size in sizes:
            size = min(size, n_train_pool)
            for seed in cfg.seeds:
                parts = {
                    "task": to_dict(cfg.task), "model": to_dict(cfg.model), "eval": to_dict(cfg.eval),
                    "method": to_dict(m), "train": to_dict(method_train(cfg, m)),
                    "train_size": size, "seed": seed,
                }
                if not is_trained(m):
                    parts.pop("train")
                out.append((size, order, seed, Cell(m, size, seed, cell_key(parts))))
    return [c for *_, c in sorted(out, key=lambda t: t[:3])]


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


def run_grid(cfg: RunConfig, fail_fast: bool = False) -> list[str]:
    """Run every unfinished cell; returns the keys of the grid's cells."""
    task = get_task(cfg.task)
    splits = task.load()
    bad = leaked(splits.train, splits.test)
    if bad and not cfg.allow_leakage:
        raise TunelabError(
            f"{bad[0].id}: input: test example also occurs in the training data "
            f"({len(bad)} leaked); fix the split or set allow_leakage: true"
        )
    store = Store(cfg.store)
    grid = cells(cfg, len(splits.train))
    todo = [c for c in grid if store.status(c.key) != "done"]
    console.print(f"[bold]{len(grid)} cells[/], {len(grid) - len(todo)} already done; "
                  f"{len(splits.test)} test examples ({splits.source})")
    if not todo:
        return [c.key for c in grid]
    model, tok, load_s = timed_load(cfg.model)
    console.print(f"model {cfg.model.name} loaded in {load_s:.1f} s")
    common = {"git_commit": git_commit(), "versions": versions(), "task": task.name,
              "model": cfg.model.name, "n_test": len(splits.test)}
    for cell in todo:
        train = sample(splits.train, cell.train_size, cell.seed) if cell.train_size else []
        run_dir = Path(cfg.out_dir) / "cells" / cell.key
        config = {**to_dict(cfg), "cell": {"method": to_dict(cell.method),
                  "train_size": cell.train_size, "seed": cell.seed,
                  "train": to_dict(method_train(cfg, cell.method)),
                  "splits": splits.source, "template_hash": template_hash(tok)}}
        store.begin(cell.key, {**common, "method": cell.method.name, "label": cell.label,
                               "train_size": cell.train_size, "n_train": len(train),
                               "seed": cell.seed, "config": config})
        try:
            _run_cell(cfg, cell, task, splits, train, model, tok, run_dir, store)
        except Exception as e:  # a failed cell must not stop the grid
            if isinstance(e, TunelabError):
                msg = str(e)
            else:
                msg = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
            store.fail(cell.key, msg)
            console.print(f"[red]cell {cell.label} n={cell.train_size} failed:[/] {msg.splitlines()[0]}")
            if fail_fast:
                raise
    return [c.key for c in grid]


def _run_cell(cfg, cell, task, splits, train, model, tok, run_dir, store) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint(stage: str, pred) -> dict:
        """Score an intermediate training stage on the same test slice."""
        r = evaluate(pred, task, splits.test, cfg.eval, label=f"eval {cell.label}: {stage}")
        return {name: list(v) for name, v in r.metrics.items()}

    ctx = Context(model, tok, task, train, cell.method, method_train(cfg, cell.method),
                  cell.seed, run_dir, validation=splits.validation, eval_cfg=cfg.eval,
                  checkpoint=checkpoint)
    pred = get_method(cell.method.name)(ctx)
    res = evaluate(pred, task, splits.test, cfg.eval, label=f"eval {cell.label} n={len(train)}")
    n = len(res.rows)
    info = {**pred.info, "prompts": res.prompts,
            "latency_s_mean": sum(r["latency_s"] for r in res.rows) / n}
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
    higher = {name: m.higher_is_better for name, m in task.metrics.items()}
    store.finish(cell.key, fields, res.metrics, higher, res.rows)
    p = task.primary
    m, lo, hi = res.metrics[p]
    console.print(f"[green]{cell.label}[/] n={len(train)} seed={cell.seed}: {p} {m:.3f} "
                  f"[{lo:.3f}, {hi:.3f}]  eval {res.seconds:.0f} s")


