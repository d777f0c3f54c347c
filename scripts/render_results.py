"""Render every results table in README.md, BENCHMARKS.md and docs/ from results/*.json.

Run from the repository root, in the activated venv (`make docs` runs it first):
    python scripts/render_results.py           # rewrite every marker block in place
    python scripts/render_results.py --check   # change nothing; exit 1 naming each stale block

A block is the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->`, rendered
from results/NAME.json; `<!-- results:NAME:VIEW -->` (closed by `<!-- /results:NAME:VIEW -->`)
picks another view (VIEWS). A file is the JSON `tunelab run --json` prints (its `arms`,
`recommendation` and `provenance`) or a bench script's (`figures`, `rows`, `provenance`). Nothing
else writes between markers: tests/test_docs.py re-renders each block and compares.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
MARKER = re.compile(r"<!-- results:(?P<spec>[\w-]+(?::\w+)?) -->\n(?P<body>.*?)<!-- /results:(?P=spec) -->",
                    re.DOTALL)


def documents() -> list[Path]:
    """The user-facing files whose marker blocks are rendered."""
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


PACKAGED = {"track_record": ROOT / "src" / "tunelab" / "report" / "track_record.json"}
"""Result files kept as package data, because the report reads them at run time from any
install (bench/track_record.py writes this one there): their one copy, not results/NAME.json."""


def load(name: str) -> dict | None:
    path = PACKAGED.get(name, RESULTS / f"{name}.json")
    return json.loads(path.read_text()) if path.exists() else None


def _num(x) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "—" if x is None else str(x)
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 100:
        return f"{int(x):,}"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:,.1f}"


def _ci(m: dict) -> str:
    return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"


def run_table(data: dict) -> str:
    """One row per arm: every metric with its 95% CI, tokens and seconds."""
    metrics = list(data["arms"][0]["metrics"]) if data["arms"] else []
    primary = data.get("primary")
    names = [f"**{m}**" if m == primary else m for m in metrics]
    head = ["model", "arm", "n train", *[f"{n} (95% CI)" for n in names],
            "prompt tok/ex", "train s", "eval s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---|" * len(metrics) + "---:|" * 3]
    for a in data["arms"]:
        cells = [a["model"], a["label"], str(a["n_train"]), *[_ci(a["metrics"][m]) for m in metrics],
                 f"{a['prompt_tokens_mean']:.0f}", f"{a['train_seconds']:.0f}", f"{a['eval_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rows_table(data: dict) -> str:
    """A bench file's rows: one column per key, in the order the rows first name them."""
    cols: list[str] = []
    for row in data["rows"]:
        cols += [k for k in row if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_num(r.get(c)) for c in cols) + " |" for r in data["rows"]]
    return "\n".join(lines)


def figures_table(data: dict) -> str:
    """A bench file's named figures, one per line."""
    lines = ["| figure | value |", "|---|---:|"]
    return "\n".join(lines + [f"| {k} | {_num(v)} |" for k, v in data["figures"].items()])


def table(data: dict) -> str:
    """A run's arms; a bench file's rows (per arm or case), then its figures."""
    if "arms" in data:
        return run_table(data)
    parts = [rows_table(data)] if data.get("rows") else []
    return "\n\n".join(parts + ([figures_table(data)] if data.get("figures") else []))


def recommendation(data: dict) -> str:
    """The report's recommendation, quoted (its first line is the verdict), then its
    track-record sentence where the run has one."""
    quoted = [*data["recommendation"], data.get("track_record", {}).get("sentence")]
    return "\n".join(f"> {line}" for line in quoted if line)


def provenance(data: dict) -> str:
    """How the file was measured, in one sentence (the release, not the commit: the file has it)."""
    p = data["provenance"]
    packages = ", ".join(f"{k} {p['packages'][k]}" for k in ("torch", "transformers", "peft")
                         if k in p["packages"])
    threads = f" ({p['threads']} torch threads)" if "threads" in p else ""
    return (f"Measured with `{p['command']}` on a {p['machine']}{threads}; tunelab "
            f"{p['code_version'].split('+')[0]}, Python {p['python']}, {packages}.")


def full(data: dict) -> str:
    """Table, then recommendation (run files only), then provenance."""
    parts = [table(data)]
    if data.get("recommendation"):
        parts.append(recommendation(data))
    return "\n\n".join([*parts, provenance(data)])


def _lead(s: dict | None) -> str:
    if not s or s.get("verdict") in (None, "none"):
        return "—"
    return f"{s['lead']:+.1f} ({s['ci']} {s['lo']:+.1f} to {s['hi']:+.1f})"


def _size(s: dict | None) -> str:
    return f"{s['n_test']} x {s['seeds']}" if s and "n_test" in s else "—"


def _wall(s: dict | None) -> str:
    return f"{s['wall_s']:,.0f} s" if s else "—"


def _coverage(r: dict) -> str:
    """The printed interval's measured coverage by slice size (bench/coverage.py), or —."""
    cov = r.get("coverage")
    if not cov:
        return "—"
    return " / ".join(f"{100 * cov['by_n'][n]:.1f}%" for n in sorted(cov["by_n"], key=int)) + \
        f" ({' / '.join(sorted(cov['by_n'], key=int))})"


def track(data: dict) -> str:
    """The track record (bench/track_record.py): one row per shipped task, its shipped and
    reference verdicts, whether they agree, both headline leads (points, best fine-tuned
    minus best prompting) with their intervals, test examples x seeds, wall times, and the
    coverage of the printed interval measured on the reference run."""
    lines = ["| task | shipped verdict | reference verdict | agreed | shipped lead (points) | "
             "reference lead (points) | test examples x seeds (shipped / reference) | "
             "wall time (shipped / reference) | interval coverage (slice size) | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        s, ref = r["shipped"], r["reference"]
        agreed = {True: "yes", False: "**no**", None: "—"}[r["agreed"]]
        note = r["reason"] or ("reason not found yet" if r["agreed"] is False else "")
        note = note if r["agreed"] is not None else r["status"]
        lines.append(f"| {r['title']} (`{r['config']}`) | {(s or {}).get('verdict', '—')} | "
                     f"{(ref or {}).get('verdict', '—')} | {agreed} | {_lead(s)} | {_lead(ref)} | "
                     f"{_size(s)} / {_size(ref)} | {_wall(s)} / {_wall(ref)} | {_coverage(r)} | {note} |")
    return "\n".join(lines + ["", provenance(data) + _kept(data)])


def _kept(data: dict) -> str:
    """Where the command that wrote the table (`--task`) did not read every side itself:
    which sides it read; the others are kept as an earlier read of their stores left them."""
    sides = [(f"{r['title']} {key}", not r[key].get("kept"))
             for r in data["rows"] for key in ("shipped", "reference") if r.get(key)]
    if all(fresh for _, fresh in sides):
        return ""
    read = ", ".join(name for name, fresh in sides if fresh) or "no side"
    return f" It read {read}; every other side is kept from an earlier read of its store."


VIEWS: dict[str, Callable[[dict], str]] = {"table": table, "recommendation": recommendation,
                                           "provenance": provenance, "full": full, "track": track}
"""What a marker can ask for; `<!-- results:NAME -->` alone is `table` followed by `provenance`."""


def render_block(spec: str) -> str:
    name, _, view = spec.partition(":")
    data = load(name)
    if data is None:
        where = PACKAGED.get(name, RESULTS / f"{name}.json").relative_to(ROOT)
        return (f"*Not measured yet: `{where}` is not in the repository. The command "
                "this page names writes it; `python scripts/render_results.py` then renders it here.*")
    if not view:
        return f"{table(data)}\n\n{provenance(data)}"
    if view not in VIEWS:
        raise SystemExit(f"results:{spec}: unknown view '{view}'. Available: {', '.join(VIEWS)}")
    return VIEWS[view](data)


def render_text(text: str) -> str:
    """`text` with every marker block rendered afresh from its file."""
    return MARKER.sub(lambda m: f"<!-- results:{m['spec']} -->\n{render_block(m['spec'])}\n"
                                f"<!-- /results:{m['spec']} -->", text)


def stale(paths: list[Path] | None = None) -> list[str]:
    """`path: results:SPEC` for each block whose committed text differs from its rendering."""
    found = []
    for path in paths or documents():
        text = path.read_text()
        for m in MARKER.finditer(text):
            if f"{m['body']}" != render_block(m["spec"]) + "\n":
                found.append(f"{_shown(path)}: results:{m['spec']}")
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for line in bad:
            print(f"{line}: differs from its result file; run python scripts/render_results.py",
                  file=sys.stderr)
        return 1 if bad else 0
    for path in documents():
        text = path.read_text()
        new = render_text(text)
        if new != text:
            path.write_text(new)
            print(f"rendered {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
