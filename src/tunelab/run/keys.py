"""Cell keys: what a finished cell's results depend on, hashed.

A key (version 2) hashes exactly:
- the method's name, its own settings (its spec's dataclass: `k` on a lora entry is not
  one of them), its stages, its `search:` space if any, and, if it trains, its resolved
  train settings (less `save`, and less `min_budget` where that floor cannot change the
  cell's budget: `floor_binds`; a searched cell it binds is marked with its rung rule);
- the training-set size and the seed;
- the task's name and `Task.version`, a content hash of its loaded splits (the data files'
  content, the split and the test slice), of its rag corpus if any, and the task settings
  that change the prompt or the scoring (instruction, metric, classification scoring);
- distill's teacher model by its identity and its unlabelled file by content (teacher_parts);
- the model (name, dtype, remote code, backend, endpoint), and the generation settings
  that change outputs (max_new_tokens, bootstrap); nothing that only sets speed or cost.

Stores written before version 2 keyed cells by `legacy_key` (whole config dumps). Those
keys are kept reproducible here, frozen: a grid looks a cell up by its legacy key when
its key is missing, reuses it if finished, and records the mapping in the store
(store.Store.alias), so old stores keep their finished cells.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunelab.core.cache import digest
from tunelab.core.config import (
    MethodConfig,
    ModelConfig,
    RunConfig,
    TaskConfig,
    grid_models,
    method_train,
    model_identity,
    to_dict,
)
from tunelab.data.datasource import data_dir
from tunelab.train.stopping import MIN_GAIN, train_budget

KEY_VERSION = 2


def cell_key(parts: dict) -> str:
    """Stable short hash of a cell's parts (the store's run id)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def key(cfg: RunConfig, method: MethodConfig, settings, trains: bool, model: ModelConfig,
        size: int, seed: int, task: dict) -> str:
    """The version-2 key of one cell (see the module docstring for what enters it)."""
    parts = {
        "v": KEY_VERSION, "task": task, "seed": seed, "train_size": size,
        "model": model_identity(model),
        "eval": {"max_new_tokens": cfg.eval.max_new_tokens, "bootstrap": cfg.eval.bootstrap},
        "method": {"name": method.name, "settings": to_dict(settings),
                   "stages": [to_dict(s) for s in method.stages]},
    }
    for name, unset in ADDED_SETTINGS.items():  # unset, a cell keys as before the field
        if parts["method"]["settings"].get(name, unset) == unset:
            parts["method"]["settings"].pop(name, None)
    if method.search:  # a searched arm is its own cell (the space, not the setting it chose)
        parts["method"]["search"] = method.search
        # since 2026-12-03 (search.py): the deciding rung scores by the task metric on
        # validation, and keeps the default unless the leader beats it (keep_default)
        parts["method"]["decided_by"] = "validation metric, default unless beaten"
    if trains:
        t = method_train(cfg, method)
        parts["train"] = {k: v for k, v in to_dict(t).items() if k != "save"}
        if not floor_binds(method, t, size):
            del parts["train"]["min_budget"]
        elif method.search:  # search.RUNGS: shorter rungs without the floor since 2026-12-02
            parts["method"]["rungs"] = "unfloored"
        if not t.plateau_drops:  # added 2026-12-02: off, a cell trains as before it
            del parts["train"]["plateau_drops"]
        else:  # since the gain a new best needs to reset patience (stopping.MIN_GAIN)
            parts["train"]["plateau_min_gain"] = MIN_GAIN
    parts["method"].update(teacher_parts(cfg, settings))
    return cell_key(parts)


ADDED_SETTINGS = {"draw": None}
"""Method settings added after key version 2, with the value that means "as before": at
that value the key leaves them out, so stored cells keep their keys."""

FLOOR_EXACT = {"lora", "full", "prompt_tuning"}
"""Methods that train on the cell's training subset itself (more with replay, never fewer),
so whether train.min_budget raises their budget is known from the size before they run."""


def floor_binds(method: MethodConfig, train, size: int) -> bool:
    """Whether the min_budget floor can change this cell's training budget. Where it
    cannot (fixed epochs; a training set whose max_epochs budget already reaches it), the
    key leaves the field out, so cells measured before the floor existed keep their keys
    and results. Methods that train on other data (distill's teacher answers, DPO's pairs,
    stages) count as bound: their key holds it."""
    if train.epochs != "auto" or not train.min_budget:
        return False
    if method.name not in FLOOR_EXACT or method.stages:
        return True
    return train_budget(train, size) != train_budget(train, size, min_budget=0)


def teacher_parts(cfg: RunConfig, settings) -> dict:
    """distill's teacher model and unlabelled inputs by what they are (endpoint and weights
    named, file content), not by name alone: another endpoint under one name, or an edited
    file, is another cell. Empty for every other method (their keys are unchanged)."""
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


V1_DROPPED_AT_DEFAULT = {
    ModelConfig: ("backend", "base_url", "api_key_env", "concurrency", "max_retries", "timeout",
                  "price_prompt", "price_completion", "quantize"),
    MethodConfig: ("models", "search", "teacher", "teacher_model", "labelled", "unlabelled",
                    "keep_cut", "draw"),
    TaskConfig: ("scoring",)}
"""Frozen: version-1 keys left these fields out while at their defaults (fields added to
MethodConfig since, such as distill's, are listed too: a v1 key never held them)."""

V1_TRAINED = {"lora", "full", "prompt_tuning", "dpo"}
"""Frozen: the methods version-1 keys counted as training (they carry train settings)."""


def _v1(obj) -> dict:
    d, default = to_dict(obj), to_dict(type(obj)())
    for f in V1_DROPPED_AT_DEFAULT[type(obj)]:
        if d[f] == default[f]:
            del d[f]
    return d


def legacy_key(cfg: RunConfig, method: MethodConfig, model: ModelConfig, size: int, seed: int,
               scoring: str | None) -> str:
    """The version-1 key (stores written before KEY_VERSION 2): whole dataclass dumps.
    Frozen: never change it, or old stores lose their finished cells."""
    parts = {"task": _v1(cfg.task), "model": _v1(model), "eval": to_dict(cfg.eval),
             "method": _v1(method), "train": to_dict(method_train(cfg, method)),
             "train_size": size, "seed": seed}
    parts["model"].pop("device")  # added after version 1; where it ran, never identity
    parts["train"].pop("min_budget")  # added after version 1
    parts["train"].pop("plateau_drops")
    parts["eval"].pop("sequential")  # added after version 1; how many examples, not which
    parts["eval"].pop("round_size")
    if method.name not in V1_TRAINED and not method.stages:
        parts.pop("train")
    if scoring == "classification":
        parts["scoring"] = scoring
    return cell_key(parts)
