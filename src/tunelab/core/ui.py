"""Rich progress bars shared by generation and training."""

from __future__ import annotations

import os
import sys
import warnings

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
"""Progress, logs and errors."""
out = Console()
"""Results (tables, recommendation, report path): stdout, so `tunelab run ... > out.txt` keeps them."""


def say(text: str) -> None:
    """One result line on stdout, as written: no markup, highlighting or wrapping."""
    out.print(text, highlight=False, markup=False, soft_wrap=True)


def _bar(count: TextColumn | MofNCompleteColumn) -> Progress:
    """A phase's bar: its name, the bar, `count`, elapsed and remaining time, its info field."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        count,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


def progress() -> Progress:
    """A bar that counts items (examples generated, steps)."""
    return _bar(MofNCompleteColumn())


QUIET_WARNINGS = [
    (FutureWarning, r".*is_gradient_checkpointing.*"),  # peft asks transformers, which warns
]
"""Known deprecation warnings of the libraries tunelab calls (not of tunelab's own use):
hidden unless -v, as their progress bars and info logs are."""

QUIET = False
"""Set by the CLI (unless -v/--verbose): third-party bars, info logs and known warnings are
hidden. Library use (no CLI) leaves the libraries' own settings alone."""


def quiet_third_party(verbose: bool = False) -> None:
    """One bar per phase, tunelab's own: transformers' and datasets' bars ("Loading
    weights", "Converting and de-quantizing GGUF tensors", "Writing model shards") and
    their info logs off, and the known deprecation warnings filtered, unless `verbose`."""
    global QUIET
    QUIET = not verbose
    if verbose:
        return
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # set before the libraries are imported (they read it then), and applied if they are
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantizing bar is a bare tqdm
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        quiet_transformers()


def quiet_transformers() -> None:
    """transformers' own bars and logs off (backends/local_model.py calls it after importing it)."""
    if not QUIET:
        return
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def train_progress() -> Progress:
    """The training bar: its completion is the share of the budget that binds (steps, or
    seconds under max_seconds), so its total and ETA are that budget's."""
    return _bar(TextColumn("{task.fields[budget]}"))


def budget_text(step: int, total: int, elapsed: float, max_seconds: float) -> str:
    """What the training bar counts: seconds when the seconds budget will end first (at this
    pace), else steps.

    >>> budget_text(453, 2000, 359.0, 360.0)
    '359/360 s, step 453'
    >>> budget_text(50, 100, 10.0, 360.0), budget_text(5, 100, 1.0, 0.0)
    ('50/100 steps', '5/100 steps')
    """
    if max_seconds and elapsed / max_seconds * total > step:
        return f"{min(elapsed, max_seconds):.0f}/{max_seconds:.0f} s, step {step}"
    return f"{step}/{total} steps"


def fail(e: Exception) -> None:
    """Print an error as one line and exit 2 (the CLI's way out for a TunelabError)."""
    console.print(f"[red]error:[/] {str(e).splitlines()[0]}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
