"""Machine-readable results for `--json` (run, ls, show): plain dicts, ready for json.dumps.

A run's payload carries its provenance (command, code version, machine kind, versions), so
the file `tunelab run --json > results/NAME.json` writes says how it was measured, and the
tables of README.md and docs/ are rendered from it (scripts/render_results.py)."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path

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
            "eval_seconds": a.mean("eval_seconds"), "n_scored": a.n_scored, "stopped": a.stopped}


def outlook(arms, metric: str, margin: float, target: float | None = None) -> dict:
    """The report's per-example flips (every flipped example), learning-curve forecasts
    without the plot's band, what the verdict was drawn on, and the track-record sentence
    with the row it quotes (report/track_record.py)."""
    from tunelab.decide.flips import report_flips
    from tunelab.decide.forecast import forecasts

    ahead = [{k: v for k, v in f.items() if k != "band"}
             for f in forecasts(arms, metric, target, margin)]
    from tunelab.report.track_record import quote

    return {"flips": report_flips(arms, metric, show=None), "forecast": _finite(ahead),
            "verdict": verdict(arms, metric), "track_record": quote(arms)}


def verdict(arms, metric: str) -> dict:
    """What the recommendation was drawn on: the metric (the primary, or the first that
    moves where it cannot: decisive.py) and the correction of the headline's intervals for
    picking the best arm of each side (simultaneous.py), with how many pairs it covers."""
    from tunelab.decide.decisive import deciding
    from tunelab.decide.looks import METHOD as LOOKS
    from tunelab.decide.simultaneous import METHOD
    from tunelab.decide.verdict import looks_of

    decided_on, note = deciding(arms, metric)
    pairs = sum(a.trained for a in arms) * sum(not a.trained for a in arms)
    looks = looks_of(arms)
    return {"metric": decided_on, "why_not_primary": note,
            "headline_pairs": pairs, "correction": METHOD if pairs > 1 else None,
            "looks": looks, "look_adjustment": LOOKS if looks > 1 else None}


def _finite(x):
    """inf ("never reached") as null: JSON has no infinity, and strict parsers reject it."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


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


def command_line(argv: list[str] | None = None, program: str = "tunelab") -> str:
    """The command as a user would retype it: `program` and its arguments, with absolute
    paths made relative to the current folder (or cut to their name): a result file names
    no folder of the machine it was measured on."""
    args = sys.argv[1:] if argv is None else argv
    # quoted where needed: `--a "lora n=500"` retyped stays one argument
    return " ".join([program, *(shlex.quote(_portable(a)) for a in args)])


def _portable(arg: str) -> str:
    if not arg.startswith("/"):
        return arg
    path = Path(arg)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return path.name


def provenance(argv: list[str] | None = None, program: str = "tunelab") -> dict:
    """Where a result came from: the command, the code version (release + git commit), the
    machine in words, Python and the key packages' versions.

    >>> sorted(provenance(["run", "configs/demo.yaml"]))
    ['code_version', 'command', 'machine', 'packages', 'python']
    """
    from tunelab import __version__
    from tunelab.core.provenance import git_commit, machine_kind, versions

    packages = versions()
    commit = git_commit()
    code = __version__ if commit == "unknown" else f"{__version__}+git.{commit[:12]}"
    return {"command": command_line(argv, program), "code_version": code, "machine": machine_kind(),
            "python": packages.pop("python"), "packages": packages}
