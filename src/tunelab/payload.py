"""Machine-readable results for `--json` (run, ls, show): plain dicts, ready for json.dumps."""

from __future__ import annotations

import json

RUN_FIELDS = ("id", "status", "task", "model", "method", "label", "train_size", "n_train", "n_test",
              "seed", "train_seconds", "eval_seconds", "train_tokens", "trainable_params",
              "prompt_tokens_mean", "gen_tokens_mean", "peak_rss_mb", "git_commit", "error")


def ci(value: tuple[float, float, float]) -> dict:
    return dict(zip(("mean", "lo", "hi"), value, strict=True))


def arm(a) -> dict:
    """One arm of the report (model, method, training size; seeds pooled)."""
    return {"model": a.model, "method": a.method, "label": a.label, "n_train": a.n_train,
            "seeds": len(a.runs), "run_ids": [r["id"] for r in a.runs],
            "metrics": {m: ci(v) for m, v in a.ci.items()},
            "prompt_tokens_mean": a.mean("prompt_tokens_mean"), "train_seconds": a.mean("train_seconds"),
            "eval_seconds": a.mean("eval_seconds")}


def run_summary(row: dict) -> dict:
    """A stored run's own fields (not its config or per-example predictions)."""
    return {k: row.get(k) for k in RUN_FIELDS}


def run_config(row: dict) -> dict:
    """What chose this run: a grid cell's resolved config, or a probe arm's probe and
    settings (probe runs carry no cell)."""
    cfg = json.loads(row["config"] or "{}")
    if "cell" in cfg:
        return cfg["cell"]
    return {k: cfg.get(k) for k in ("probe", "settings")}


def run_detail(row: dict, metrics: dict, predictions: list[dict]) -> dict:
    """Everything `tunelab show` knows about a run."""
    return {**run_summary(row), "config": json.loads(row["config"] or "{}"),
            "info": json.loads(row["info"] or "{}"),
            "metrics": {n: ci((m["value"], m["lo"], m["hi"])) for n, m in metrics.items()},
            "predictions": predictions}
