"""Older cell keys, frozen, and the one step that moves a store onto today's key (keys.py).

Stores written before key version 3 hold their runs under a version-1 key (whole config
dumps) or a version-2 key (what changes a result, with the exceptions that kept earlier
cells' keys). `migrate` recomputes both for each cell of a config and gives a finished run
found under one of them the cell's current key, once, in one transaction; from then on the
store reads as if written today. Nothing here may change: a stored key is a fact about the
code that wrote it, so the fields and defaults of that code are written out below as
literals instead of read off today's dataclasses, which keep changing.
"""

from __future__ import annotations

import copy
import dataclasses
import json

from tunelab.core.cache import digest
from tunelab.core.config import RunConfig, to_dict
from tunelab.core.store import Store
from tunelab.methods import is_trained, method_train
from tunelab.run.cells import Cell
from tunelab.run.keys import corpus_hash, task_part
from tunelab.train.stopping import train_budget

COMMON = ("name", "train_sizes", "label", "train", "models", "stages", "search")
"""Method entry keys every method takes (the rest were its own settings)."""

V1_METHOD = {
    "name": "zero_shot", "train_sizes": [0], "k": 5, "draw": None, "prompt": None, "label": None,
    "train": {}, "models": [], "stages": [], "chunk_size": 800, "chunk_overlap": 150,
    "budget": 12, "dev_size": 20, "beta": 0.1, "virtual_tokens": 20, "teacher": "dynamic_few_shot",
    "teacher_model": None, "labelled": 100, "unlabelled": None, "keep_cut": False, "search": {}}
"""The flat method entry (every method's settings on one class) whose dump a v1 key holds,
field -> default."""

V1_MODEL = {
    "name": "smollm2-135m", "dtype": "float32", "trust_remote_code": False, "backend": "hf",
    "base_url": None, "api_key_env": "OPENAI_API_KEY", "concurrency": 4, "max_retries": 5,
    "timeout": 60.0, "price_prompt": 0.0, "price_completion": 0.0, "quantize": "none"}

V1_TASK = {
    "name": "viggo", "data_dir": None, "train": None, "validation": None, "test": None,
    "format": "auto", "scoring": "auto", "metric": None, "instruction": None, "n_test": 100,
    "split_seed": 0, "split_fraction": 0.1, "corpus": None}

V1_EVAL = {"batch_size": 16, "max_new_tokens": None, "bootstrap": 1000}

STAGE = {"kind": "sft", "data": None, "n": 0, "train": {}, "label": None}
"""A training stage as v1 and v2 keys dump it."""

TRAIN = {
    "epochs": "auto", "min_steps": 0, "max_epochs": 8.0, "min_budget": 256, "max_steps": 0,
    "max_seconds": 0.0, "eval_every": 0, "patience": 3, "val_size": 64, "lr": None,
    "schedule": "cosine", "plateau_drops": 0, "batch_size": 8, "grad_accum": 1, "max_length": 256,
    "micro_tokens": 640, "warmup_ratio": 0.05, "weight_decay": 0.0, "lora_r": 16, "lora_alpha": 32,
    "lora_dropout": 0.0, "target_modules": "all-linear", "save": True, "precision": "fp32",
    "fsdp": False}
"""Resolved training settings as v1 and v2 keys dump them (v1 less min_budget and
plateau_drops, v2 less save)."""

V1_DROPPED_AT_DEFAULT = {
    "model": ("backend", "base_url", "api_key_env", "concurrency", "max_retries", "timeout",
              "price_prompt", "price_completion", "quantize"),
    "method": ("models", "search", "teacher", "teacher_model", "labelled", "unlabelled",
               "keep_cut", "draw"),
    "task": ("scoring",)}
"""v1 keys left these fields out while at their defaults."""

V1_TRAINED = {"lora", "full", "prompt_tuning", "dpo"}
"""The methods v1 keys counted as training (they carry train settings)."""

V2_SETTINGS = {
    "zero_shot": {"prompt": None},
    "few_shot": {"prompt": None, "k": 5, "draw": None},
    "dynamic_few_shot": {"prompt": None, "k": 5},
    "rag": {"prompt": None, "k": 5, "chunk_size": 800, "chunk_overlap": 150},
    "prompt_search": {"prompt": None, "k": 5, "budget": 12, "dev_size": 20},
    "prompt_tuning": {"prompt": None, "virtual_tokens": 20},
    "lora": {"prompt": None},
    "full": {"prompt": None},
    "dpo": {"prompt": None, "beta": 0.1},
    "distill": {"prompt": None, "k": 5, "teacher": "dynamic_few_shot", "teacher_model": None,
                "labelled": 100, "unlabelled": None, "keep_cut": False}}
"""Each method's own settings in a v2 key; a method not named here has no v2 key."""

V2_ADDED_SETTINGS = {"draw": None}
"""v2 keys left these settings out at this value."""

V2_MODEL_IDENTITY = ("name", "dtype", "trust_remote_code", "backend", "base_url", "quantize")
"""The model in a v2 key (quantize only when not "none")."""

V2_FLOOR_EXACT = {"lora", "full", "prompt_tuning"}
V2_MIN_GAIN = 0.01
"""The plateau gain v2 keys of cells with plateau_drops hold."""


def own_settings(method) -> dict:
    """The one adapter to the method entry: its common keys and its own settings, flat. The
    settings are a `settings` object where the entry has one, else its own fields."""
    settings = getattr(method, "settings", None)
    if settings is None:
        own = {n: getattr(method, n) for n in V1_METHOD if n not in COMMON and hasattr(method, n)}
    else:
        own = to_dict(settings) if dataclasses.is_dataclass(settings) else dict(settings)
    return copy.deepcopy({**own, **{n: getattr(method, n) for n in COMMON}})


def _frozen(values: dict, fields: dict, dropped_at_default: tuple = ()) -> dict:
    d = {f: copy.deepcopy(values.get(f, default)) for f, default in fields.items()}
    for f in dropped_at_default:
        if d[f] == fields[f]:
            del d[f]
    return d


def _stages(method) -> list[dict]:
    return [_frozen(to_dict(s), STAGE) for s in method.stages]


def v1_key(cfg: RunConfig, method, train, model, size: int, seed: int, scoring: str | None) -> str:
    """The version-1 key: whole dumps of task, model, eval, method and training settings."""
    m = _frozen(own_settings(method), V1_METHOD, V1_DROPPED_AT_DEFAULT["method"])
    m["stages"] = _stages(method)
    parts = {"task": _frozen(to_dict(cfg.task), V1_TASK, V1_DROPPED_AT_DEFAULT["task"]),
             "model": _frozen(to_dict(model), V1_MODEL, V1_DROPPED_AT_DEFAULT["model"]),
             "eval": _frozen(to_dict(cfg.eval), V1_EVAL), "method": m,
             "train": _frozen(to_dict(train), {k: v for k, v in TRAIN.items()
                                               if k not in ("min_budget", "plateau_drops")}),
             "train_size": size, "seed": seed}
    if method.name not in V1_TRAINED and not method.stages:
        parts.pop("train")
    if scoring == "classification":
        parts["scoring"] = scoring
    return digest(parts, 16)


def _v2_model(model) -> dict:
    d = to_dict(model)
    return {k: d[k] for k in V2_MODEL_IDENTITY if not (k == "quantize" and d[k] == "none")}


def _v2_floor_binds(method, train, size: int) -> bool:
    if train.epochs != "auto" or not train.min_budget:
        return False
    if method.name not in V2_FLOOR_EXACT or method.stages:
        return True
    return train_budget(train, size) != train_budget(train, size, min_budget=0)


def _v2_teacher(cfg: RunConfig, settings: dict) -> dict:
    from pathlib import Path

    from tunelab.data.datasource import data_dir

    out = {}
    if settings.get("teacher_model"):
        found = [m for m in (cfg.models or [cfg.model]) if m.name == settings["teacher_model"]]
        out["teacher_model"] = _v2_model(found[0]) if found else settings["teacher_model"]
    if settings.get("unlabelled"):
        p = Path(settings["unlabelled"])
        out["unlabelled"] = corpus_hash(p if p.is_absolute() or p.exists() else data_dir() / p)
    return out


def v2_key(cfg: RunConfig, method, trains: bool, train, model, size: int, seed: int,
           task: dict) -> str | None:
    """The version-2 key (task: the task as keys.task_part gives it)."""
    if method.name not in V2_SETTINGS:
        return None
    settings = _frozen(own_settings(method), V2_SETTINGS[method.name])
    for name, unset in V2_ADDED_SETTINGS.items():
        if settings.get(name, unset) == unset:
            settings.pop(name, None)
    parts = {"v": 2, "task": task, "seed": seed, "train_size": size, "model": _v2_model(model),
             "eval": {"max_new_tokens": cfg.eval.max_new_tokens, "bootstrap": cfg.eval.bootstrap},
             "method": {"name": method.name, "settings": settings, "stages": _stages(method)}}
    if method.search:
        parts["method"]["search"] = method.search
        parts["method"]["decided_by"] = "validation metric, default unless beaten"
    if trains:
        parts["train"] = _frozen(to_dict(train), {k: v for k, v in TRAIN.items() if k != "save"})
        if not _v2_floor_binds(method, train, size):
            del parts["train"]["min_budget"]
        elif method.search:
            parts["method"]["rungs"] = "unfloored"
        if not train.plateau_drops:
            del parts["train"]["plateau_drops"]
        else:
            parts["train"]["plateau_min_gain"] = V2_MIN_GAIN
    parts["method"].update(_v2_teacher(cfg, settings))
    return digest(parts, 16)


def old_keys(cfg: RunConfig, cell: Cell, scoring: str | None, task: dict) -> list[str]:
    """The cell's v2 and v1 keys (v2 first: it names the cell more exactly); `task`: the
    task's identity (keys.task_identity), as run/cells.py takes it."""
    m = cell.method
    train = method_train(cfg, m)
    v2 = v2_key(cfg, m, is_trained(m), train, cell.model, cell.train_size, cell.seed,
                task_part(cfg, scoring, task))
    v1 = v1_key(cfg, m, train, cell.model, cell.train_size, cell.seed, scoring)
    return [k for k in (v2, v1) if k]


EXPORT = "export:"
"""Id (and method) prefix of a stored export of a cell (ship/verify.py): `export:<format>:<run id>`."""


def _exports(store: Store, renames: dict[str, str]) -> tuple[dict[str, str], dict[str, dict]]:
    """The stored exports of renamed runs, renamed with them; their info and config name
    the run they came from, so those move too."""
    ids, fields = {}, {}
    for r in store.runs():
        info = json.loads(r["info"] or "{}")
        src = info.get("export_of")
        if not r["id"].startswith(EXPORT) or src not in renames:
            continue
        new = r["id"][: len(r["id"]) - len(src)] + renames[src]
        if store.status(new) == "done":
            continue
        config = json.loads(r["config"] or "{}")
        config.setdefault("export", {})["of"] = renames[src]
        ids[r["id"]] = new
        fields[new] = {"info": {**info, "export_of": renames[src]}, "config": config}
    return ids, fields


def migrate(store: Store, cfg: RunConfig, cells: list[Cell], scoring: str | None,
            task: dict) -> int:
    """Give every finished run stored under a cell's v1 or v2 key (or under a run an older
    grid recorded as that key's alias) the cell's current key, where that key is not done
    yet; one transaction. Returns how many cells were moved."""
    aliases = store.aliases()
    renames: dict[str, str] = {}
    for c in cells:
        if store.status(c.key) == "done":
            continue
        olds = old_keys(cfg, c, scoring, task)
        for old in [*olds, *(aliases[k] for k in olds if k in aliases)]:
            if old not in renames and store.status(old) == "done":
                renames[old] = c.key
                break
    if not renames:
        return 0
    export_ids, fields = _exports(store, renames)
    store.rename({**renames, **export_ids}, fields)
    return len(renames)
