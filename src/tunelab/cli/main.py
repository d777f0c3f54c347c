"""tunelab command line: thin wrappers that parse, call one function, and print.

One grammar: every command that reads a results store takes `--store` (found as
tunelab.cli.store says when not given); `-o/--out` is the path a command writes (a folder
where it writes several files, a file where it writes one; each option's help says which);
`--json` prints the results as JSON on stdout; results go to stdout, progress and logs to
stderr. Exit codes: 0 done, 1 done but something failed (a cell, a check, a reproduction),
2 could not run (bad input: one line on stderr)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.table import Table

from tunelab import TunelabError, __version__
from tunelab.cli.data import data_app
from tunelab.cli.output import print_json, run_json, table
from tunelab.cli.probe import probe_app
from tunelab.cli.store import pick_store, report_dir, store_app
from tunelab.core.ui import console, out, quiet_third_party, say
from tunelab.core.ui import fail as _fail

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  help="Should I fine-tune, prompt, or retrieve? Measured, with error bars.")

STORE_HELP = ("Results store (default: the `store:` of the one config in this folder, else the "
              "most recent *.db under runs/; a line on stderr says which).")
JSON_HELP = "Print the results as JSON on stdout."


def _store_opt():
    return typer.Option(None, "--store", help=STORE_HELP)


def _json_opt(help: str = JSON_HELP):
    return typer.Option(False, "--json", help=help)


def _version(value: bool) -> None:
    if value:
        print(f"tunelab {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show third-party progress bars, "
                                 "logs and deprecation warnings (transformers, datasets, hub)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    quiet_third_party(verbose)


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML run config (see configs/)."),
    store: str = typer.Option(None, "--store", help="Results store (overrides the config's `store:`)."),
    fail_fast: bool = typer.Option(False, help="Stop at the first failed cell."),
    out_dir: str = typer.Option(None, "-o", "--out", help="Folder to write the report into "
                                "(default: <out_dir>/report of the config)."),
    report_dir_old: str = typer.Option(None, "--report-dir", hidden=True, help="Old name of --out."),
    allow_leakage: bool = typer.Option(False, "--allow-leakage",
                                       help="Run even if test inputs (near-)duplicate training inputs."),
    as_json: bool = _json_opt(),
):
    """Run every cell of a config (finished cells are skipped), then write the report.
    Results (table, recommendation, report path) go to stdout; progress and logs to stderr.
    Exits 1 when a cell failed (after running the others), 2 when the run could not start."""
    from tunelab.core.store import Store
    from tunelab.decide.sequential import rule
    from tunelab.methods import load_config
    from tunelab.report import build as report
    from tunelab.run.grid import run_grid

    t0 = time.perf_counter()
    try:
        cfg = load_config(config)
        if store:
            cfg.store = store
        cfg.allow_leakage = cfg.allow_leakage or allow_leakage
        keys = run_grid(cfg, fail_fast=fail_fast, settle=rule)
        if cfg.export.verify:
            from tunelab.ship.verify import ship_best

            ship_best(cfg, keys)
        db = Store(cfg.store)
        arms = report.load_arms(db, set(keys))
        if not as_json:
            table(arms, cfg.report.margin)
        md, html = report.build(cfg.store, out_dir or report_dir_old or Path(cfg.out_dir) / "report",
                                set(keys), cfg.report.margin, cfg.report.target, cfg.cost)
        failed = [r for r in db.runs("failed") if r["id"] in set(keys)]
    except TunelabError as e:
        _fail(e)
    if as_json:
        print_json({**run_json(arms, md, html, cfg.report.margin, cfg.report.target),
                    "cells": len(keys), "failed": [r["id"] for r in failed]})
    else:
        out.print(f"report: {html} (and {md})", highlight=False, soft_wrap=True)
    console.print(f"wall time: {time.perf_counter() - t0:.0f} s")
    if failed:
        console.print(f"[red]{len(failed)} of {len(keys)} cells failed[/] (the report has the others; "
                      f"errors: tunelab ls --store {cfg.store}); exit 1", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def init(
    data: Path = typer.Argument(..., help="Your data: .jsonl, .json or .csv (prompt/completion, "
                                "OpenAI messages, alpaca or text/label records)."),
    config: Path = typer.Option(None, "-o", "--out", help="File: the config to write "
                                "(default: <file stem>.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
    as_json: bool = _json_opt(),
):
    """Look at your data file (format, size, labels or free text) and write a runnable,
    commented config for it, with splits and methods that fit; prints what it found."""
    from tunelab.data.init_config import write_config
    from tunelab.methods import default_lrs

    config = config or Path(f"{data.stem}.yaml")
    try:
        profile = write_config(data, config, default_lrs(), force)
    except TunelabError as e:
        _fail(e)
    if as_json:
        print_json({"config": str(config), "found": profile.lines()})
        return
    for line in profile.lines():
        say(line)
    out.print(f"wrote {config}; run it with: tunelab run {config}", highlight=False, soft_wrap=True)


@app.command("report")
def report_cmd(
    store_arg: str = typer.Argument(None, hidden=True, metavar="[STORE]",
                                    help="Deprecated: the store as an argument; use --store."),
    store: str = _store_opt(),
    out_dir: str = typer.Option(None, "-o", "--out", help="Folder to write report.md and report.html "
                                "into (default: where `tunelab run` wrote: the runs' out_dir/report, "
                                "else report/ beside the store)."),
    margin: float = typer.Option(None, help="Equivalence margin in points (default: the "
                                 "runs' report.margin, else 2)."),
    target: float = typer.Option(None, help="Score (0-1) the forecast says how many more examples "
                                 "would reach (default: the runs' report.target, else the best "
                                 "arm's upper 95% bound)."),
    prices: Path = typer.Option(None, "--prices", help="A run config whose `cost` block prices the "
                                "cost table (default: the block stored with the runs, if any)."),
    as_json: bool = _json_opt(),
):
    """Write report.md and a self-contained report.html from a results store; print the
    results and the recommendation."""
    from tunelab.core.config import ReportConfig
    from tunelab.core.store import Store
    from tunelab.report import build as report

    try:
        if store_arg:
            console.print("note: `tunelab report STORE` is deprecated; use `tunelab report --store STORE`")
        store = pick_store(store or store_arg)
        try:  # checked as the config keys are
            ReportConfig(2.0 if margin is None else margin, target)
        except TunelabError as e:
            raise TunelabError(f"--{e}") from None
        cost = None
        if prices:  # the method registry (and so torch) only when a config must be read
            from tunelab.methods import load_config

            cost = load_config(prices).cost
        md, html = report.build(store, out_dir or report_dir(store), margin=margin, target=target,
                                prices=cost)
        arms = report.load_arms(Store(store, create=False))
        margin = report.stored_margin(arms) if margin is None else margin
    except TunelabError as e:
        _fail(e)
    if as_json:
        print_json(run_json(arms, md, html, margin, report.stored_target(arms) if target is None else target))
        return
    table(arms, margin)
    out.print(f"wrote {md} and {html}", highlight=False, soft_wrap=True)


@app.command("ls")
def ls_cmd(store: str = _store_opt(), as_json: bool = _json_opt("Print the runs as JSON on stdout.")):
    """List stored runs with their status (failed ones with their error)."""
    from tunelab.core.store import Store
    from tunelab.report import json_results as payload

    try:
        rows = Store(pick_store(store), create=False).runs()
    except TunelabError as e:
        _fail(e)
    if as_json:
        print_json([payload.run_summary(r) for r in rows])
        return
    t = Table()
    for col in ["id", "status", "task", "model", "method", "n train", "seed", "error"]:
        t.add_column(col)
    for r in rows:
        err = (r["error"] or "").splitlines()[0] if r["error"] else ""
        t.add_row(r["id"][:12], r["status"], r["task"], r["model"], r["label"],
                  str(r["n_train"]), str(r["seed"]), err)
    out.print(t)


@app.command()
def show(run_id: str = typer.Argument(..., help="Run id (or a unique prefix), from `tunelab ls`."),
         store: str = _store_opt(),
         as_json: bool = _json_opt("Print the run (config, metrics, every prediction) as JSON on stdout.")):
    """Show one run: config, metrics with CIs, costs, and a few predictions."""
    from tunelab.core.store import Store
    from tunelab.report import json_results as payload

    try:
        s = Store(pick_store(store), create=False)
        r = s.run(run_id)
        metrics, preds = s.metrics(r["id"]), s.predictions(r["id"])
    except TunelabError as e:
        _fail(e)
    if as_json:
        print_json(payload.run_detail(r, metrics, preds))
        return
    out.print(f"[bold]{r['id']}[/] {r['status']}: {r['task']} / {r['model']} / {r['label']} "
              f"n={r['n_train']} seed={r['seed']}")
    for name, m in metrics.items():
        out.print(f"  {name}: {m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]")
    for k in ["train_seconds", "eval_seconds", "train_tokens", "trainable_params",
              "prompt_tokens_mean", "gen_tokens_mean", "peak_rss_mb", "git_commit"]:
        out.print(f"  {k}: {r[k]}")
    if r["error"]:
        out.print(f"  error: {r['error']}")
    for p in preds[:3]:
        out.print(f"  > {p['input'][:80]!r}\n    ref  {p['target']!r}\n    pred {p['prediction']!r}")
    out.print(f"  config: {json.dumps(payload.run_config(r))}")


@app.command("cell")
def cell_cmd(
    config: Path = typer.Argument(..., help="YAML run config."),
    method: str = typer.Option(..., help="Method name of the cell."),
    size: int = typer.Option(..., help="Training-set size of the cell."),
    seed: int = typer.Option(0, help="Seed of the cell."),
    model: str = typer.Option(None, help="Model of the cell (if the grid has several)."),
    store: str = typer.Option(None, "--store", help="Results store (overrides the config's `store:`)."),
    as_json: bool = _json_opt("Print the cell's key and stored metrics as JSON on stdout."),
):
    """Run one cell. Under `accelerate launch` its training is data-parallel (DDP).
    Exits 1 when the cell failed."""
    from tunelab.core.store import Store
    from tunelab.methods import load_config
    from tunelab.report import json_results as payload
    from tunelab.run.grid import run_cell

    try:
        cfg = load_config(config)
        if store:
            cfg.store = store
        key = run_cell(cfg, method, size, seed, model)
        db = Store(cfg.store) if key else None
        row, metrics = (db.run(key), db.metrics(key)) if db else (None, {})
    except TunelabError as e:
        _fail(e)
    if not key:  # a non-zero rank of a data-parallel run: rank 0 reports
        return
    if as_json:
        print_json({"id": key, "status": row["status"], "store": cfg.store, "error": row["error"],
                    "metrics": {n: payload.ci((m["value"], m["lo"], m["hi"])) for n, m in metrics.items()}})
    else:
        say(f"cell {key} {row['status']}" + "".join(f"; {n} {m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"
                                                     for n, m in metrics.items()))
    if row["status"] != "done":
        raise typer.Exit(1)


@app.command("rerun")
def rerun_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix), from `tunelab ls`."),
    store: str = _store_opt(),
    out_dir: str = typer.Option("runs/rerun", "-o", "--out", help="Folder for the re-run's own store."),
    as_json: bool = _json_opt(),
):
    """Re-run a stored run from its stored config and compare metrics and predictions.
    Exits 1 when it is not reproduced exactly."""
    from tunelab.run.rerun import rerun

    try:
        c = rerun(pick_store(store), run_id, out_dir)
    except TunelabError as e:
        _fail(e)
    if as_json:
        print_json({"run_id": c.run_id, "identical": c.identical, "new_store": str(c.new_store),
                    "metrics": [{"name": n, "stored": a, "rerun": b} for n, a, b in c.metrics],
                    "predictions_same": c.predictions_same, "predictions_total": c.predictions_total,
                    "losses_same": None if c.losses[0] is None else c.losses[0] == c.losses[1],
                    "drift": c.drift})
    else:
        _print_rerun(c)
    if not c.identical:
        raise typer.Exit(1)


def _print_rerun(c) -> None:
    for name, old, new in c.metrics:
        mark = "same" if old == new else "DIFFERS"
        out.print(f"  {name}: stored {old:.4f}  rerun {new:.4f}  {mark}")
    out.print(f"  predictions identical: {c.predictions_same}/{c.predictions_total}")
    if c.losses[0] is not None:
        same = "identical" if c.losses[0] == c.losses[1] else "DIFFER"
        out.print(f"  training losses ({len(c.losses[0])} steps): {same}")
    for d in c.drift:
        out.print(f"  environment changed: {d}")
    out.print(f"{c.run_id}: {'reproduced exactly' if c.identical else 'NOT reproduced'} "
              f"(rerun stored in {c.new_store})")


@app.command("export")
def export_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix) of a trained cell."),
    store: str = _store_opt(),
    fmt: str = typer.Option("adapter", "--format", help="adapter (PEFT folder), merged "
                            "(safetensors + tokenizer + chat template) or gguf."),
    dest: Path = typer.Option(..., "-o", "--out", help="Folder to write the export into."),
    gguf_type: str = typer.Option("f16", "--gguf-type", help="GGUF tensor type: f32, f16 or q8_0."),
    verify: bool = typer.Option(False, "--verify", help="Load the export back, re-score it on the "
                                "cell's test slice and store it (the report's 'as shipped' row)."),
    as_json: bool = _json_opt(),
):
    """Export a trained cell (template-linted first); with --verify, re-score what ships."""
    from tunelab.ship.verify import export_and_verify

    try:
        path, v = export_and_verify(pick_store(store), run_id, fmt, dest, gguf_type, verify)
    except TunelabError as e:
        _fail(e)
    if as_json:
        from tunelab.report import json_results as payload

        print_json({"path": str(path), "format": fmt, "verified": None if v is None else {
            "run_id": v.key, "same": v.same, "n": v.n, "near_ties": v.near_ties, "as_trained": v.stored,
            "as_shipped": {n: payload.ci(m) for n, m in v.metrics.items()}}})
        return
    say(f"wrote {path}")
    if v is not None:
        for name, (m, lo, hi) in v.metrics.items():
            say(f"  {name}: as trained {v.stored.get(name, float('nan')):.4f}  as shipped {m:.4f} "
                f"[{lo:.4f}, {hi:.4f}]")
        say(f"  predictions identical to the stored ones: {v.same}/{v.n} (stored as run {v.key})")
        if v.same < v.n:
            from tunelab.report.shipped_section import near_ties

            say(f"  {near_ties(v.n - v.same, v.near_ties)}")


@app.command()
def tasks(name: str = typer.Argument(None, help="Show one task in full."),
          as_json: bool = _json_opt("Print the task list (or the one task) as JSON on stdout.")):
    """List the tasks tunelab ships (one line each), or show one: instruction, prompt,
    metrics, how its splits are made, and its config keys with what they do."""
    from tunelab.cli.tasks import show_task, task_json, task_list

    try:
        if as_json:
            print_json(task_json(name))
        elif name is None:
            task_list()
        else:
            show_task(name)
    except TunelabError as e:
        _fail(e)


app.add_typer(probe_app, name="probe")
app.add_typer(data_app, name="data")
app.add_typer(store_app, name="store")


def main() -> None:  # pragma: no cover
    sys.exit(app())
