"""The track record: does the verdict of a shipped config agree with the verdict of a run
several times larger on the same task (its reference run: more test examples, three seeds,
training ended by validation loss)?

Pure functions from stores and stored configs to rows. bench/track_record.py writes the
rows into the report's package data (tunelab/report/track_record.json, the one source of
truth: docs/track-record.md is rendered from it, and the report quotes it from any install);
report/track_record.py turns a row into the report's sentence.

A run is on a **shipped config** when its stored settings (flat() below: the task's settings
but where its files sit, the model, seeds, methods, training and evaluation settings, the
margin) equal those of a shipped config. It is on a **shipped task** with other settings when
only its task is a shipped config's (task_key: the task's name; for the jsonl task of a
user's own file, the name and the file, so only the shipped example file matches). Any
other run is on the user's own data.
"""

from __future__ import annotations

import json

from tunelab.core.config import EvalConfig, TaskConfig, TrainConfig, to_dict
from tunelab.core.store import Store
from tunelab.decide.arms import Arm, load_arms, primary_metric, stored_margin
from tunelab.decide.decisive import deciding
from tunelab.decide.verdict import best, headline_comparison

VERDICT = {"better": "fine-tune", "worse": "prompt", "equivalent": "within margin",
           "undecided": "undecided"}
"""A headline comparison's kind -> the verdict it gives (verdict.headline's advice)."""

SECTIONS = {"task": TaskConfig, "train": TrainConfig, "eval": EvalConfig}
MODEL_KEYS = ("name", "dtype", "quantize", "backend")
IGNORED = {"task.data_dir", "train.save", "eval.batch_size", "eval.bootstrap"}
"""Settings that say where the data sits, whether weights are written to disk, how fast
evaluation runs, or how many resamples an interval takes: not what the experiment is."""


def flat(cfg: dict) -> dict[str, str]:
    """A stored run config (the whole RunConfig, as the store keeps it) as the flat settings
    that make the experiment, each value as JSON. A field the stored config lacks (it
    predates the field) reads as its default, and one the code no longer has is left out,
    so an older run of a shipped config still matches it."""
    out = {}
    for part, cls in SECTIONS.items():
        stored = cfg.get(part) or {}
        for k, default in to_dict(cls()).items():
            if f"{part}.{k}" not in IGNORED:
                out[f"{part}.{k}"] = json.dumps(stored.get(k, default), sort_keys=True, default=str)
    for k in MODEL_KEYS:
        out[f"model.{k}"] = json.dumps((cfg.get("model") or {}).get(k), default=str)
    out["models"] = json.dumps([m.get("name") for m in cfg.get("models") or []])
    out["seeds"] = json.dumps(cfg.get("seeds", [0]))
    methods = cfg.get("methods") or []
    out["methods.count"] = json.dumps(len(methods))
    for i, m in enumerate(methods):
        out |= {f"methods[{i}].{k}": json.dumps(v, sort_keys=True, default=str) for k, v in own(m).items()}
    out["report.margin"] = json.dumps((cfg.get("report") or {}).get("margin", 2.0))
    return out


def own(method: dict) -> dict:
    """A stored method entry's settings in one flat dict, whether it keeps a method's own
    settings beside the common keys or under `settings` (how a config stores them differs
    between versions of tunelab; the values compared are the same).

    >>> own({"name": "few_shot", "settings": {"k": 5}}) == own({"name": "few_shot", "k": 5})
    True
    """
    return {**{k: v for k, v in method.items() if k != "settings"}, **(method.get("settings") or {})}


def task_key(cfg: dict) -> str:
    """Which task a stored config ran: its name, and for the jsonl task (anyone's own file)
    the training file too.

    >>> task_key({"task": {"name": "viggo", "n_test": 100}})
    'viggo'
    >>> task_key({"task": {"name": "jsonl", "train": "./examples/viggo_acts.jsonl"}})
    'jsonl:examples/viggo_acts.jsonl'
    """
    task = cfg.get("task") or {}
    name = task.get("name", "viggo")
    if name != "jsonl":
        return name
    return f"jsonl:{(task.get('train') or '').removeprefix('./')}"


def differences(run: dict[str, str], shipped: dict[str, str]) -> list[str]:
    """`key value (shipped: value)` for each setting both flat configs hold with different
    values. A setting only one of them holds is not compared: a method entry written by
    another version of tunelab may hold its settings' defaults, or only those given.

    >>> differences({"task.n_test": "200", "seeds": "[0]", "methods[0].k": "5"},
    ...             {"task.n_test": "100", "seeds": "[0]"})
    ['task.n_test 200 (shipped: 100)']
    """
    return [f"{k} {run[k]} (shipped: {shipped[k]})" for k in sorted(set(run) & set(shipped))
            if run[k] != shipped[k]]


def side(arms: list[Arm]) -> dict:
    """The headline of one store's recommendation: which side wins (VERDICT), the lead of
    the best fine-tuned over the best prompting arm in points with its 95% CI (simultaneous
    where several pairs could be picked, as the report prints it), the test examples it
    rests on, seeds, cells and their wall time (train + eval seconds, summed)."""
    runs = [r for a in arms for r in a.runs]
    out = {"cells": len(runs), "seeds": max(len(a.runs) for a in arms),
           "wall_s": round(sum((r["train_seconds"] or 0) + (r["eval_seconds"] or 0) for r in runs), 1)}
    metric, note = deciding(arms, primary_metric(arms))
    tuned, prompted = [a for a in arms if a.trained], [a for a in arms if not a.trained]
    if metric is None or not (tuned and prompted):
        return {**out, "verdict": "none", "why": note or "no fine-tuned or no prompting arm"}
    c = headline_comparison(tuned, prompted, metric, stored_margin(arms))
    bt = best(tuned, metric)
    # as verdict.headline: a verdict against fine-tuning on an arm that did not converge or
    # collapsed is not a reliable one; the row carries why
    caveat = (bt.convergence or bt.collapsed) if c.kind != "better" else None
    # points to one decimal, as every report prints them: rounding to two here and to one
    # when rendered turned a report's +45.9 (45.9499) into the row's +46.0
    pts = {k: round(100 * getattr(c, k), 1) for k in ("d", "lo", "hi", "lo90", "hi90")}
    return {**out, "verdict": VERDICT[c.kind], "kind": c.kind, "metric": metric,
            "tuned": c.a, "prompted": c.b, "lead": pts["d"], "lo": pts["lo"], "hi": pts["hi"],
            "ci": c.ci95, "lo90": pts["lo90"], "hi90": pts["hi90"], "margin": c.margin, "n_test": c.n,
            "caveat": f"{bt.name}: {caveat}" if caveat else None}


def store_side(path) -> tuple[dict, dict]:
    """(side of the store's arms, the flat config of its first finished run)."""
    arms = load_arms(Store(path, create=False))
    if not arms:
        return {"verdict": "none", "why": "no finished runs", "cells": 0}, {}
    return side(arms), flat(json.loads(arms[0].runs[0]["config"] or "{}"))


def row(task: str, title: str, config: str, reference_config: str, fingerprint: dict[str, str],
        shipped: dict | None, reference: dict | None, reason: str | None = None,
        expected: int | None = None) -> dict:
    """One task's row: both sides (None where that run is not in the repository's stores),
    and whether they agree. `expected`: the reference run's cells when finished; fewer
    finished cells read as not finished, never as a verdict. `reason`: the lead's note on
    a disagreement (configs/reference/notes.yaml)."""
    if reference is None:
        status = "reference not run yet"
    elif expected and reference["cells"] < expected:
        status = f"reference run not finished ({reference['cells']} of {expected} cells)"
    elif reference["verdict"] == "none":
        status = f"reference run has no verdict ({reference['why']})"
    elif shipped is None:
        status = "shipped run not run yet"
    elif shipped["verdict"] == "none":
        status = f"shipped run has no verdict ({shipped['why']})"
    else:
        status = "agreed" if shipped["verdict"] == reference["verdict"] else "disagreed"
    settled = status in ("agreed", "disagreed")
    return {"task": task, "title": title, "config": config, "reference_config": reference_config,
            "fingerprint": fingerprint, "status": status, "agreed": status == "agreed" if settled else None,
            "shipped": shipped, "reference": reference if settled else None,
            "reason": reason if status == "disagreed" else None}


def agreement(rows: list[dict]) -> tuple[int, int, list[str]]:
    """(tasks whose shipped verdict agreed with their reference run, tasks compared at all,
    the titles of those compared)."""
    compared = [r for r in rows if r["agreed"] is not None]
    return sum(r["agreed"] for r in compared), len(compared), [r["title"] for r in compared]


def match(configs: list[dict], rows: list[dict]) -> tuple[dict | None, list[str]]:
    """(the row of the shipped task these stored run configs ran, the settings in which
    they differ from its shipped config: none for the shipped config itself), or (None, [])
    for a task no row holds (the user's own data)."""
    keys = {task_key(c) for c in configs}
    found = [r for r in rows if task_key_of(r) in keys]
    if len(keys) != 1 or not found:
        return None, []
    runs = [flat(c) for c in configs]
    scored = [(sorted({d for f in runs for d in differences(f, r["fingerprint"])}), r) for r in found]
    diffs, r = min(scored, key=lambda x: len(x[0]))
    return r, diffs


def task_key_of(r: dict) -> str:
    """A row's task key, from its fingerprint (flat values are JSON)."""
    fp = r["fingerprint"]
    return task_key({"task": {"name": json.loads(fp["task.name"]), "train": json.loads(fp["task.train"])}})
