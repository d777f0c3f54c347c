"""tunelab command line: thin wrappers that parse, call one function, and print."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.table import Table

from tunelab import TunelabError
from tunelab.probes.cli import probe_app
from tunelab.ui import console, out, say
from tunelab.ui import fail as _fail

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Should I fine-tune, prompt, or retrieve? Measured, with error bars.")

DEFAULT_STORE = "runs/tunelab.db"


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML run config (see configs/)."),
    store: str = typer.Option(None, help="Results store (overrides the config)."),
    fail_fast: bool = typer.Option(False, help="Stop at the first failed cell."),
    report_dir: str = typer.Option(None, help="Where to write the report (default: <out_dir>/report)."),
    allow_leakage: bool = typer.Option(False, "--allow-leakage",
                                       help="Run even if test inputs (near-)duplicate training inputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
):
    """Run every cell of a config (finished cells are skipped), then write the report.
    Results (table, recommendation, report path) go to stdout; progress and logs to stderr."""
    from tunelab import report
    from tunelab.config import load_config
    from tunelab.grid import run_grid
    from tunelab.store import Store

    t0 = time.perf_counter()
    try:
        cfg = load_config(config)
        if store:
            cfg.store = store
        cfg.allow_leakage = cfg.allow_leakage or allow_leakage
        keys = run_grid(cfg, fail_fast=fail_fast)
        if cfg.export.verify:
            from tunelab.verify import ship_best

            ship_best(cfg, keys)
        arms = report.load_arms(Store(cfg.store), set(keys))
        if not as_json:
            _table(arms, cfg.report.margin)
        md, html = report.build(cfg.store, report_dir or Path(cfg.out_dir) / "report", set(keys),
                                cfg.report.margin, cfg.report.target, cfg.cost)
    except TunelabError as e:
        _fail(e)
    if as_json:
        _print_json(_run_json(arms, md, html, cfg.report.margin, cfg.report.target))
    else:
        out.print(f"report: {html} (and {md})", highlight=False, soft_wrap=True)
    console.print(f"wall time: {time.perf_counter() - t0:.0f} s")


def _print_json(data) -> None:
    # plain print, not rich: no wrapping or markup in what a script parses
    print(json.dumps(data, indent=2, default=str))


def _run_json(arms, md: Path, html: Path, margin: float, target: float | None = None) -> dict:
    from tunelab import payload
    from tunelab.report import primary_metric, recommend

    metric = primary_metric(arms)
    return {"primary": metric, "scoring": arms[0].cell.get("scoring"), "arms": [payload.arm(a) for a in arms],
            "recommendation": recommend(arms, metric, margin), "report": {"html": str(html), "md": str(md)},
            **payload.outlook(arms, metric, margin, target), "provenance": payload.provenance()}


def _table(arms, margin: float) -> None:
    """The results and the recommendation, on stdout: a table drawn to the terminal's width,
    or, where there is no terminal (`> log`), the markdown table, full width, never cut to
    80 columns."""
    from tunelab.report import primary_metric, recommend, results_markdown

    if not arms:
        return
    findings = [f"- {line}" for line in recommend(arms, primary_metric(arms), margin)]
    if not out.is_terminal:
        say("\n".join([results_markdown(arms), *findings]))
        return
    metrics = list(arms[0].ci)
    t = Table(title="results (95% bootstrap CI)")
    for col in ["model", "method", "n train", *metrics, "prompt tok/ex", "train s", "eval s"]:
        t.add_column(col)
    for a in arms:
        cis = [f"{a.ci[m][0]:.3f} [{a.ci[m][1]:.3f}, {a.ci[m][2]:.3f}]" for m in metrics]
        t.add_row(a.model, a.label, str(a.n_train), *cis, f"{a.mean('prompt_tokens_mean'):.0f}",
                  f"{a.mean('train_seconds'):.0f}", f"{a.mean('eval_seconds'):.0f}")
    out.print(t)
    for line in findings:
        say(line)


@app.command()
def init(
    data: Path = typer.Argument(..., help="Your data: .jsonl, .json or .csv (prompt/completion, "
                                "OpenAI messages, alpaca or text/label records)."),
    config: Path = typer.Option(None, "-o", "--out", help="Config to write (default: <file stem>.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
):
    """Look at your data file (format, size, labels or free text) and write a runnable,
    commented config for it, with splits and methods that fit; prints what it found."""
    from tunelab.starter import write_config

    config = config or Path(f"{data.stem}.yaml")
    try:
        profile = write_config(data, config, force)
    except TunelabError as e:
        _fail(e)
    for line in profile.lines():
        say(line)
    out.print(f"wrote {config}; run it with: tunelab run {config}", highlight=False, soft_wrap=True)


@app.command("report")
def report_cmd(
    store: str = typer.Argument(DEFAULT_STORE, help="Results store."),
    out_dir: str = typer.Option("runs/report", "-o", "--out", help="Output folder."),
    margin: float = typer.Option(None, help="Equivalence margin in points (default: the "
                                 "runs' report.margin, else 2)."),
    target: float = typer.Option(None, help="Score (0-1) the forecast says how many more examples "
                                 "would reach (default: the runs' report.target, else the best "
                                 "arm's upper 95% bound)."),
    prices: Path = typer.Option(None, "--prices", help="A run config whose `cost` block prices the "
                                "cost table (default: the block stored with the runs, if any)."),
):
    """Write report.md and a self-contained report.html from a results store; print the
    results and the recommendation."""
    from tunelab import report
    from tunelab.config import ReportConfig, load_config
    from tunelab.store import Store

    try:
        try:  # checked as the config keys are
            ReportConfig(2.0 if margin is None else margin, target)
        except TunelabError as e:
            raise TunelabError(f"--{e}") from None
        cost = load_config(prices).cost if prices else None
        md, html = report.build(store, out_dir, margin=margin, target=target, prices=cost)
        arms = report.load_arms(Store(store, create=False))
        _table(arms, report.stored_margin(arms) if margin is None else margin)
    except TunelabError as e:
        _fail(e)
    out.print(f"wrote {md} and {html}", highlight=False, soft_wrap=True)


@app.command("ls")
def ls_cmd(store: str = typer.Option(DEFAULT_STORE, help="Results store."),
           as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON on stdout.")):
    """List stored runs with their status (failed ones with their error)."""
    from tunelab import payload
    from tunelab.store import Store

    try:
        rows = Store(store, create=False).runs()
    except TunelabError as e:
        _fail(e)
    if as_json:
        _print_json([payload.run_summary(r) for r in rows])
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
def show(run_id: str, store: str = typer.Option(DEFAULT_STORE, help="Results store."),
         as_json: bool = typer.Option(False, "--json", help="Print the run (config, metrics, every "
                                      "prediction) as JSON on stdout.")):
    """Show one run: config, metrics with CIs, costs, and a few predictions."""
    from tunelab import payload
    from tunelab.store import Store

    try:
        s = Store(store, create=False)
        r = s.run(run_id)
    except TunelabError as e:
        _fail(e)
    if as_json:
        _print_json(payload.run_detail(r, s.metrics(r["id"]), s.predictions(r["id"])))
        return
    out.print(f"[bold]{r['id']}[/] {r['status']}: {r['task']} / {r['model']} / {r['label']} "
                  f"n={r['n_train']} seed={r['seed']}")
    for name, m in s.metrics(r["id"]).items():
        out.print(f"  {name}: {m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]")
    for k in ["train_seconds", "eval_seconds", "train_tokens", "trainable_params",
              "prompt_tokens_mean", "gen_tokens_mean", "peak_rss_mb", "git_commit"]:
        out.print(f"  {k}: {r[k]}")
    if r["error"]:
        out.print(f"  error: {r['error']}")
    for p in s.predictions(r["id"])[:3]:
        out.print(f"  > {p['input'][:80]!r}\n    ref  {p['target']!r}\n    pred {p['prediction']!r}")
    out.print(f"  config: {json.dumps(payload.run_config(r))}")


@app.command("cell")
def cell_cmd(
    config: Path = typer.Argument(..., help="YAML run config."),
    method: str = typer.Option(..., help="Method name of the cell."),
    size: int = typer.Option(..., help="Training-set size of the cell."),
    seed: int = typer.Option(0, help="Seed of the cell."),
    model: str = typer.Option(None, help="Model of the cell (if the grid has several)."),
):
    """Run one cell. Under `accelerate launch` its training is data-parallel (DDP)."""
    from tunelab.config import load_config
    from tunelab.grid import run_cell

    try:
        key = run_cell(load_config(config), method, size, seed, model)
    except TunelabError as e:
        _fail(e)
    if key:
        console.print(f"cell {key} done")


@app.command("rerun")
def rerun_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix), from `tunelab ls`."),
    store: str = typer.Option(DEFAULT_STORE, help="Results store."),
    out_dir: str = typer.Option("runs/rerun", "--out", help="Where the re-run's own store goes."),
):
    """Re-run a stored run from its stored config and compare metrics and predictions."""
    from tunelab.rerun import rerun

    try:
        c = rerun(store, run_id, out_dir)
    except TunelabError as e:
        _fail(e)
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
    if not c.identical:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix) of a trained cell."),
    store: str = typer.Option(DEFAULT_STORE, help="Results store."),
    fmt: str = typer.Option("adapter", "--format", help="adapter (PEFT folder), merged "
                            "(safetensors + tokenizer + chat template) or gguf."),
    dest: Path = typer.Option(..., "-o", "--out", help="Folder to write into."),
    gguf_type: str = typer.Option("f16", "--gguf-type", help="GGUF tensor type: f32, f16 or q8_0."),
    verify: bool = typer.Option(False, "--verify", help="Load the export back, re-score it on the "
                                "cell's test slice and store it (the report's 'as shipped' row)."),
):
    """Export a trained cell (template-linted first); with --verify, re-score what ships."""
    from tunelab.verify import export_and_verify

    try:
        path, v = export_and_verify(store, run_id, fmt, dest, gguf_type, verify)
    except TunelabError as e:
        _fail(e)
    say(f"wrote {path}")
    if v is not None:
        for name, (m, lo, hi) in v.metrics.items():
            say(f"  {name}: as trained {v.stored.get(name, float('nan')):.4f}  as shipped {m:.4f} "
                f"[{lo:.4f}, {hi:.4f}]")
        say(f"  predictions identical to the stored ones: {v.same}/{v.n} (stored as run {v.key})")
        if v.same < v.n:
            from tunelab.shipped import near_ties

            say(f"  {near_ties(v.n - v.same, v.near_ties)}")


@app.command()
def tasks(name: str = typer.Argument(None, help="Show one task in full.")):
    """List the tasks tunelab ships (one line each), or show one: instruction, prompt,
    metrics, how its splits are made, and its config keys with what they do."""
    import inspect

    from tunelab.config import TaskConfig
    from tunelab.tasks import TASKS, get_task

    if name is None:
        for n, cls in TASKS.items():
            t = cls(TaskConfig(name=n))
            out.print(f"{n:10s} {t.describe()} (primary: {t.primary})", highlight=False, soft_wrap=True)
        return
    try:
        t = get_task(TaskConfig(name=name))
    except TunelabError as e:
        _fail(e)
    say(f"{name}: {t.describe()}")
    say(f"instruction (system prompt):\n{t.instruction}")
    say("prompt: the tokenizer's chat template over [system: instruction, (shots), user: input]; "
        f"fine-tuned methods use the short instruction: {t.short_instruction!r}")
    for n, m in t.all_metrics.items():
        star = " (primary)" if n == t.primary else ""
        say(f"metric {n}: higher_is_better={m.higher_is_better}{star}")
    say(inspect.getdoc(inspect.getmodule(type(t))) or "")
    _config_keys(name)


def _config_keys(name: str) -> None:
    from dataclasses import asdict

    from tunelab.config import RunConfig, TaskConfig, field_docs

    defaults = asdict(TaskConfig(name=name))
    say("\nconfig keys under `task:` (default in brackets):")
    for key, doc in field_docs(TaskConfig).items():
        say(f"  {key} [{defaults[key]}]: {doc}")
    say("other top-level keys: " + ", ".join(field_docs(RunConfig))
        + " (a commented example: configs/your_data.yaml; `tunelab init FILE` writes one for your file)")


app.add_typer(probe_app, name="probe")

data_app = typer.Typer(no_args_is_help=True, help="Check training data; turn logs into a training set.")
app.add_typer(data_app, name="data")


@data_app.command("check")
def data_check(
    train: Path = typer.Argument(..., help="Training file (.jsonl, .json or .csv)."),
    test: Path = typer.Option(None, "--test", help="Test file: checked for leakage into train."),
    task: str = typer.Option(None, "--task", help="Read records in this task's format."),
    model: str = typer.Option(None, "--model", help="Count tokens with this model's tokenizer."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Flag longer records (needs --model)."),
):
    """Bad records (file:line: field: problem), duplicates, train/test leakage, a summary.

    Exit codes: 0 OK (duplicates are only a warning); 1 the data failed: bad records, a
    file refused (missing, unreadable, tool calls), records over --max-tokens, or test
    records leaked into train (the last line counts each); 2 the check could not run
    (bad option, unknown task, tokenizer not found)."""
    from tunelab.check import check

    try:
        reader = None
        if task:
            from tunelab.config import TaskConfig
            from tunelab.tasks import get_task

            reader = get_task(TaskConfig(name=task)).read_file
        tok = None
        if model:
            from tunelab.models import load_tokenizer

            tok = load_tokenizer(model)
        elif max_tokens:
            raise TunelabError("--max-tokens needs --model to count tokens")
        rep = check(train, test, reader, tok, max_tokens)
    except TunelabError as e:
        _fail(e)
    for line in rep.lines():  # the check's result: stdout
        say(line)
    if not rep.ok:
        raise typer.Exit(1)


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise TunelabError(f"--split: expected three fractions summing to 1 like 0.8,0.1,0.1, got {text!r}")
    return parts


@data_app.command("from-logs")
def data_from_logs(
    logs: list[Path] = typer.Argument(..., help="JSONL log files."),
    dest: Path = typer.Option(..., "-o", "--out", help="Output JSONL of {messages: [...]}."),
    min_rating: float = typer.Option(None, help="Keep only records whose rating field is >= this."),
    rating_field: str = typer.Option("rating", help="Field holding the user rating (dots for nesting)."),
    drop_regex: str = typer.Option(None, help="Drop conversations with a message matching this regex."),
    dedupe: bool = typer.Option(True, help="Drop exact duplicate conversations."),
    redact: bool = typer.Option(True, help="Replace e-mail addresses and phone numbers."),
    split: str = typer.Option(None, help="train,val,test fractions, e.g. 0.8,0.1,0.1."),
    seed: int = typer.Option(0, help="Seed of the split."),
):
    """Turn chat-completions logs, message lists or prompt/completion pairs into a training set."""
    import re

    from tunelab.logs import from_logs

    try:
        if drop_regex:
            try:
                re.compile(drop_regex)
            except re.error as e:
                raise TunelabError(f"--drop-regex: invalid regular expression: {e}") from None
        fractions = _fractions(split) if split else None
        summary = from_logs(list(logs), dest, rating_field if min_rating is not None else None,
                            min_rating, drop_regex, dedupe, redact, fractions, seed)
    except TunelabError as e:
        _fail(e)
    for line in summary.lines():
        say(line)


def main() -> None:  # pragma: no cover
    sys.exit(app())
