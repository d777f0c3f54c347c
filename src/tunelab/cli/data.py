"""`tunelab data ...`: check training data; turn logs into a training set."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab import TunelabError
from tunelab.cli.output import print_json
from tunelab.core.ui import fail, say

data_app = typer.Typer(no_args_is_help=True, help="Check training data; turn logs into a training set.")

JSON = "Print the result as JSON on stdout."


def _check_json(rep) -> dict:
    return {"ok": rep.ok, "verdict": rep.verdict(), "n_train": rep.n_train, "n_test": rep.n_test,
            "bad_train": rep.bad_train, "bad_test": rep.bad_test, "errors": rep.errors,
            "refused": rep.refused, "too_long": rep.too_long,
            "duplicates": {"exact": sum(p.exact for p in rep.duplicates),
                           "near": sum(not p.exact for p in rep.duplicates)},
            "leaked": {"exact": sum(p.exact for p in rep.leaked),
                       "near": sum(not p.exact for p in rep.leaked)},
            "labels": dict(rep.labels) if rep.labels else None, "lines": rep.lines()}


@data_app.command("check")
def data_check(
    train: Path = typer.Argument(..., help="Training file (.jsonl, .json or .csv)."),
    test: Path = typer.Option(None, "--test", help="Test file: checked for leakage into train."),
    task: str = typer.Option(None, "--task", help="Read records in this task's format."),
    model: str = typer.Option(None, "--model", help="Count tokens with this model's tokenizer."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Flag longer records (needs --model)."),
    as_json: bool = typer.Option(False, "--json", help=JSON),
):
    """Bad records (file:line: field: problem), duplicates, train/test leakage, a summary.

    Exit codes: 0 OK (duplicates are only a warning); 1 the data failed: bad records, a
    file refused (missing, unreadable, tool calls), records over --max-tokens, or test
    records leaked into train (the last line counts each); 2 the check could not run
    (bad option, unknown task, tokenizer not found)."""
    from tunelab.data.check import check

    try:
        reader = None
        if task:
            from tunelab.core.config import TaskConfig
            from tunelab.tasks import get_task

            reader = get_task(TaskConfig(name=task)).read_file
        tok = None
        if model:
            from tunelab.backends.local_model import load_tokenizer

            tok = load_tokenizer(model)
        elif max_tokens:
            raise TunelabError("--max-tokens needs --model to count tokens")
        rep = check(train, test, reader, tok, max_tokens)
    except TunelabError as e:
        fail(e)
    if as_json:
        print_json(_check_json(rep))
    else:
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
    dest: Path = typer.Option(..., "-o", "--out", help="File to write: JSONL of {messages: [...]} "
                              "(with --split: <out>.train/.val/.test.jsonl)."),
    min_rating: float = typer.Option(None, help="Keep only records whose rating field is >= this."),
    rating_field: str = typer.Option("rating", help="Field holding the user rating (dots for nesting)."),
    drop_regex: str = typer.Option(None, help="Drop conversations with a message matching this regex."),
    dedupe: bool = typer.Option(True, help="Drop exact duplicate conversations."),
    redact: bool = typer.Option(True, help="Replace e-mail addresses and phone numbers."),
    split: str = typer.Option(None, help="train,val,test fractions, e.g. 0.8,0.1,0.1."),
    seed: int = typer.Option(0, help="Seed of the split."),
    as_json: bool = typer.Option(False, "--json", help=JSON),
):
    """Turn chat-completions logs, message lists or prompt/completion pairs into a training set."""
    import re

    from tunelab.data.from_logs import from_logs

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
        fail(e)
    if as_json:
        print_json({"kept": summary.kept, "dropped": dict(summary.dropped), "examples": summary.examples,
                    "files": [str(f) for f in summary.files], "lines": summary.lines()})
        return
    for line in summary.lines():
        say(line)
