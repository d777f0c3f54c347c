"""Optional experiment tracking (`tracking: mlflow`): every finished cell becomes an MLflow
run with its config as params, metrics with CI bounds, costs, and the predictions table.

The SQLite store stays the source of truth (resume, report); MLflow is a mirror for
teams that already browse their experiments there. Where it writes is MLflow's own
setting: MLFLOW_TRACKING_URI (e.g. sqlite:///mlflow.db, or a server URL).
"""

from __future__ import annotations

import json

from tunelab import TunelabError

TRACKERS = ("mlflow",)
COSTS = ("train_seconds", "eval_seconds", "train_tokens", "trainable_params",
         "prompt_tokens_mean", "gen_tokens_mean", "peak_rss_mb")


def log_cell(tracker: str, run: dict, result) -> None:
    if tracker not in TRACKERS:
        raise TunelabError(f"Unknown tracking '{tracker}'. Available: {', '.join(TRACKERS)}")
    try:
        import mlflow
    except ImportError:
        raise TunelabError("tracking 'mlflow': mlflow is not installed; "
                           "pip install 'tunelab[tracking]'") from None
    mlflow.set_experiment(f"tunelab-{run['task']}")
    cell = json.loads(run["config"])["cell"]
    with mlflow.start_run(run_name=f"{run['model']} {run['label']} n={run['n_train']} seed={run['seed']}"):
        mlflow.set_tags({"tunelab.cell": run["id"], "git_commit": run["git_commit"] or ""})
        mlflow.log_params({"model": run["model"], "method": run["method"], "train_size": run["train_size"],
                           "seed": run["seed"], **{f"train.{k}": v for k, v in cell["train"].items()}})
        metrics = {}
        for name, (m, lo, hi) in result.metrics.items():
            metrics |= {name: m, f"{name}_ci_lo": lo, f"{name}_ci_hi": hi}
        metrics |= {k: float(result.fields[k]) for k in COSTS if result.fields.get(k) is not None}
        mlflow.log_metrics(metrics)
        for step, loss in enumerate(result.fields["info"].get("losses") or []):
            mlflow.log_metric("train_loss", loss, step=step)
        mlflow.log_table({k: [r[k] for r in result.rows] for k in ("example_id", "target", "prediction")},
                         "predictions.json")
