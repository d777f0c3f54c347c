"""What the CLI prints as results (stdout): JSON for scripts, a compact table for people.
The full table (every metric, seeds, costs) is the report's."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from tunelab.core.ui import out, say


def print_json(data) -> None:
    """Results as JSON on stdout: plain print, not rich, so no wrapping or markup in what a
    script parses."""
    print(json.dumps(data, indent=2, default=str))


def run_json(arms, md: Path, html: Path, margin: float, target: float | None = None) -> dict:
    from tunelab.report import json_results as payload
    from tunelab.report.build import primary_metric, recommend

    metric = primary_metric(arms)
    return {"primary": metric, "scoring": arms[0].cell.get("scoring"), "arms": [payload.arm(a) for a in arms],
            "recommendation": recommend(arms, metric, margin), "report": {"html": str(html), "md": str(md)},
            **payload.outlook(arms, metric, margin, target), "provenance": payload.provenance()}


def _ci(arm, metric: str) -> str:
    if metric not in arm.ci:
        return "—"
    value, lo, hi = arm.ci[metric]  # the interval the arm carries (the report's)
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def compact_rows(arms) -> tuple[list[str], list[list[str]]]:
    """Header and rows: arm, primary metric with its 95% CI, one secondary metric, training."""
    from tunelab.report.build import primary_metric, shared_metrics

    metric = primary_metric(arms)
    second = next((m for m in shared_metrics(arms) if m != metric), None)
    header = ["arm", f"{metric} (95% CI)", *([second] if second else []), "training"]
    rows = [[a.name, _ci(a, metric), *([_ci(a, second)] if second else []), a.training] for a in arms]
    return header, rows


def table(arms, margin: float) -> None:
    """The results and the recommendation on stdout: a compact table drawn to the terminal,
    or, where there is no terminal (`> log`), the same table in markdown."""
    from tunelab.report.build import primary_metric, recommend, scored_lines

    if not arms:
        return
    header, rows = compact_rows(arms)
    said = [*recommend(arms, primary_metric(arms), margin), *scored_lines(arms)]
    findings = [f"- {line}" for line in said]
    if not out.is_terminal:
        md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        say("\n".join([*md, *findings]))
        return
    t = Table(title="results (95% bootstrap CI; every metric and cost: the report)")
    for col in header:
        t.add_column(col)
    for r in rows:
        t.add_row(*r)
    out.print(t)
    for line in findings:
        say(line)
