"""Rich progress bars shared by generation and training."""

from __future__ import annotations

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


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


def fail(e: Exception) -> None:
    """Print an error as one line and exit 2 (the CLI's way out for a TunelabError)."""
    console.print(f"[red]error:[/] {str(e).splitlines()[0]}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
