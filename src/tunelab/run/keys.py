"""Cell keys: what a finished cell's results depend on, hashed (the store's run id).

A key hashes exactly:
- the method's name, its own settings (its spec's dataclass: `k` on a lora entry is not
  one of them), its stages, its `search:` space if any, and, if it trains, its resolved
  train settings (less `save`, and less `min_budget` where that floor cannot change the
  cell's budget: `floor_binds`);
- the training-set size and the seed;
- the task's name and `Task.version`, a content hash of its loaded splits (the data files'
  content, the split and the test slice), of its rag corpus if any, and the task settings
  that change the prompt or the scoring (instruction, metric, classification scoring);
- distill's teacher model by its identity and its unlabelled file by content (teacher_parts);
- the model (name, dtype, remote code, backend, endpoint, quantization), and the generation
  settings that change outputs (max_new_tokens, bootstrap); nothing that only sets speed or cost.

Stores written with older keys are moved onto this one by run/migrate.py (on open, or
`tunelab store migrate`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tunelab.core.cache import digest
from tunelab.core.config import (
    MethodConfig,
    ModelConfig,
    RunConfig,
    grid_models,
    model_identity,
    to_dict,
)
from tunelab.data.datasource import data_dir
from tunelab.methods import get_spec, method_train
from tunelab.train.stopping import train_budget

KEY_VERSION = 3


def task_identity(task, splits, scoring: str | None) -> dict:
    """The task as it enters a key: name, version, content of its data."""
    parts = {"name": task.name, "version": task.version,
             "data": digest([[(e.id, e.input, e.target, e.meta) for e in part]
                             for part in (splits.train, splits.validation, splits.test)]),
             "instruction": task.cfg.instruction, "metric": task.cfg.metric}
    if task.cfg.corpus:
        parts["corpus"] = corpus_hash(task.path(task.cfg.corpus))
    if scoring in ("classification", "long_text"):  # scorings that change metrics or prompt
        parts["scoring"] = scoring
    return parts


def corpus_hash(path: Path) -> str:
    """Content hash of a corpus file or folder (names and bytes of every file)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def task_part(cfg: RunConfig, scoring: str | None, task: dict | None = None) -> dict:
    """The task as a cell's key holds it: its identity (task_identity; default: its name
    only) and a scoring chosen from the data that changes the prompt or the metrics."""
    task = dict(task or {"name": cfg.task.name})
    if scoring in ("classification", "long_text"):  # as task_identity
        task["scoring"] = scoring
    return task


def key(cfg: RunConfig, method: MethodConfig, settings, trains: bool, model: ModelConfig,
        size: int, seed: int, task: dict) -> str:
    """The key of one cell (see the module docstring for what enters it)."""
    parts = {
        "v": KEY_VERSION, "task": task, "seed": seed, "train_size": size,
        "model": model_identity(model),
        "eval": {"max_new_tokens": cfg.eval.max_new_tokens, "bootstrap": cfg.eval.bootstrap},
        "method": {"name": method.name, "settings": to_dict(settings),
                   "stages": [to_dict(s) for s in method.stages]},
    }
    if method.search:  # a searched arm is its own cell (the space, not the setting it chose)
        parts["method"]["search"] = method.search
    if trains:
        t = method_train(cfg, method)
        parts["train"] = {k: v for k, v in to_dict(t).items() if k != "save"}
        if not floor_binds(method, t, size):
            del parts["train"]["min_budget"]
    parts["method"].update(teacher_parts(cfg, settings))
    return digest(parts, 16)


def floor_binds(method: MethodConfig, train, size: int) -> bool:
    """Whether the min_budget floor can change this cell's training budget. Where it
    cannot (fixed epochs; a training set whose max_epochs budget already reaches it), the
    cell trains the same with or without it, so its key leaves the field out. Methods that
    train on other data (distill's teacher answers, DPO's pairs, stages) count as bound:
    their key holds it."""
    if train.epochs != "auto" or not train.min_budget:
        return False
    if not get_spec(method.name).floor_exact or method.stages:  # MethodSpec.floor_exact
        return True
    return train_budget(train, size) != train_budget(train, size, min_budget=0)


def teacher_parts(cfg: RunConfig, settings) -> dict:
    """distill's teacher model and unlabelled inputs by what they are (endpoint and weights
    named, file content), not by name alone: another endpoint under one name, or an edited
    file, is another cell. Empty for every other method."""
    out = {}
    name = getattr(settings, "teacher_model", None)
    if name:
        found = [m for m in grid_models(cfg) if m.name == name]
        out["teacher_model"] = model_identity(found[0]) if found else name
    path = getattr(settings, "unlabelled", None)
    if path:
        p = Path(path)
        out["unlabelled"] = corpus_hash(p if p.is_absolute() or p.exists() else data_dir() / p)
    return out
