"""Re-run one stored cell from its stored config and compare with what was stored.

The stored config holds the whole run config plus the cell (method, model, size, seed),
so the cell is rebuilt exactly, run into a fresh store, and compared metric by metric,
prediction by prediction and, for a trained cell, training loss by training loss (equal
scores can hide a training that went differently). Differing git commit or package versions are reported,
since they are the usual reason a result moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tunelab import TunelabError
from tunelab.core.config import ModelConfig, RunConfig, from_dict
from tunelab.core.provenance import git_commit, versions
from tunelab.core.store import Store
from tunelab.methods.stored import from_stored
from tunelab.run.grid import run_grid


@dataclass
class Comparison:
    run_id: str
    new_store: Path
    metrics: list[tuple[str, float, float]]
    """(name, stored value, rerun value)."""
    predictions_same: int
    predictions_total: int
    drift: list[str]
    """What differs in the environment: git commit, package versions."""
    losses: tuple[list | None, list | None] = (None, None)
    """Per-step training losses, stored and rerun (None for a cell that does not train)."""

    @property
    def identical(self) -> bool:
        return (all(a == b for _, a, b in self.metrics)
                and self.predictions_same == self.predictions_total
                and self.losses[0] == self.losses[1])


def cell_config(stored: dict, out_dir: Path) -> RunConfig:
    """A one-cell RunConfig from a run's stored config."""
    cell = stored.pop("cell")
    cfg = from_dict(RunConfig, stored, where="stored config")
    method = from_stored({**cell["method"], "train_sizes": [cell["train_size"]]})
    # The cell's train settings were resolved at run time: pin them as top-level ones.
    cfg.train = from_dict(type(cfg.train), cell["train"])
    method.train = {}
    cfg.methods, cfg.seeds = [method], [cell["seed"]]
    if "model" in cell:
        cfg.model, cfg.models = from_dict(ModelConfig, cell["model"]), []
    cfg.store, cfg.out_dir = str(out_dir / "rerun.db"), str(out_dir)
    cfg.executor, cfg.tracking = "local", None
    return cfg


def stop_at(n: int):
    """A stopping rule that ends scoring once n examples are scored: a cell that sequential
    evaluation stopped early is rerun on the examples it was scored on (rounds score the
    slice in order; n is one of its round ends), not on the whole slice."""
    def settle(cells: list[dict], looks: int, primary: str, margin: float) -> str | None:
        return f"the stored run was scored on {n}" if min(len(c["rows"]) for c in cells) >= n else None
    return settle


def rerun(store_path: str, run_id: str, out_dir: str | Path) -> Comparison:
    store = Store(store_path, create=False)
    old = store.run(run_id)
    if old["status"] != "done":
        raise TunelabError(f"run {old['id']}: status {old['status']}; only finished runs can be compared")
    stored = json.loads(old["config"] or "{}")
    if "cell" not in stored:  # a probe arm: its probe re-runs every arm together
        raise TunelabError(f"run {old['id']}: a probe arm ({old['method']}), not a grid cell; "
                           f"re-run its probe: tunelab probe {stored.get('probe', '')} "
                           "(settings: tunelab show --json)")
    out = Path(out_dir) / old["id"]
    cfg = cell_config(stored, out)
    n_scored = json.loads(old["info"] or "{}").get("n_scored")
    keys = run_grid(cfg, fail_fast=True, settle=None if n_scored is None else stop_at(n_scored))
    new_store = Store(cfg.store)
    new = new_store.run(keys[0])
    old_m, new_m = store.metrics(old["id"]), new_store.metrics(new["id"])
    metrics = [(n, old_m[n]["value"], new_m.get(n, {}).get("value")) for n in old_m]
    old_p, new_p = store.predictions(old["id"]), new_store.predictions(new["id"])
    same = sum(a["prediction"] == b["prediction"] for a, b in zip(old_p, new_p, strict=False))
    drift = []
    if old["git_commit"] != git_commit():
        drift.append(f"git commit {old['git_commit'][:10]} -> {git_commit()[:10]}")
    now = versions()
    for k, v in json.loads(old["versions"] or "{}").items():
        if now.get(k) != v:
            drift.append(f"{k} {v} -> {now.get(k)}")
    losses = tuple(json.loads(r["info"] or "{}").get("losses") for r in (old, new))
    return Comparison(old["id"], Path(cfg.store), metrics, same, len(old_p), drift, losses)
