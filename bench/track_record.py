"""The track record: for every shipped task config, its verdict against the verdict of its
reference run (configs/reference/: 400 test examples or the whole split, three seeds,
training ended by validation loss).

    python bench/track_record.py          # read the stores the configs name; write the table
    python bench/track_record.py --task gsm8k   # re-read one task's stores, keep the other rows
    python scripts/render_results.py      # then render it into docs/track-record.md

For each task of SHIPPED, the store each config names (`store:`: runs/demo.db for the demo,
runs/reference/<name>.db for its reference) gives the recommendation's headline: which side
wins (fine-tune, prompt, within margin, undecided), the lead of the best fine-tuned over the
best prompting arm with its 95% CI as the report prints it (decide/verdict.py
headline_comparison), test examples, seeds and wall time (train + eval seconds of all cells).
A task whose reference store is missing or unfinished gets a row saying so, with no values.
A disagreement carries the note of configs/reference/notes.yaml for its task.

Stores are not in git, so a machine holds only those it ran. `--task` re-reads the named
tasks and keeps every other row of the table at --out as it stands; for a named task whose
shipped store is not here, the shipped side is kept from that table too, but only if it was
read for the same shipped config (same fingerprint): its reference side is always re-read.
Each side says which code version read it (`read_by`), and a side not read again says so
(`kept`), so a kept side stays traceable.

Writes src/tunelab/report/track_record.json: package data, the one source of truth. The
report of a run quotes it from any install (report/track_record.py), and the docs page is
rendered from it (scripts/render_results.py, view `track`). Reads stores only: no model runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from tunelab.core.config import read_config, to_dict
from tunelab.decide.track_record import agreement, differences, flat, row, store_side
from tunelab.methods import get_spec
from tunelab.report.json_results import provenance
from tunelab.report.track_record import PATH

SHIPPED = {
    "viggo": ("ViGGO demo", "configs/demo.yaml", "configs/reference/viggo_demo.yaml"),
    "viggo_act": ("ViGGO dialogue acts", "configs/viggo_act.yaml", "configs/reference/viggo_act.yaml"),
    "sql": ("SQL", "configs/sql.yaml", "configs/reference/sql.yaml"),
    "tone": ("Tone", "configs/tone.yaml", "configs/reference/tone.yaml"),
    "chat": ("Chat", "configs/chat.yaml", "configs/reference/chat.yaml"),
    "gsm8k": ("GSM8k", "configs/gsm8k.yaml", "configs/reference/gsm8k.yaml"),
    "your_data": ("Own-data classification example", "configs/your_data.yaml",
                  "configs/reference/your_data.yaml"),
}
"""Task -> (its title, the shipped config, its reference config)."""


def cells(cfg) -> int:
    """Cells a config runs: each method's training sizes x seeds (one seed for a method that
    ignores it) x models."""
    return sum(len(m.train_sizes) * (len(cfg.seeds) if get_spec(m.name).seeded else 1)
               for m in cfg.methods) * len(cfg.models or [cfg.model])


def task_row(task: str, title: str, config: str, reference: str, notes: dict, read_by: str,
             earlier: dict | None = None) -> dict:
    """One task's row from the stores its two configs name (missing ones: None). `earlier`:
    this task's row of the table as it stands, whose shipped side stands in for a shipped
    store that is not here if it was read for this same config; `read_by`: this code's version."""
    shipped_cfg, ref_cfg = read_config(config)[0], read_config(reference)[0]
    fingerprint = flat(to_dict(shipped_cfg))
    shipped = ref = None
    if Path(shipped_cfg.store).exists():
        shipped, ran = store_side(shipped_cfg.store)
        shipped["read_by"] = read_by
        # a store resumed across edits of its config may hold another config's runs: say so
        shipped["differs"] = differences(ran, fingerprint) if ran else []
        if shipped["differs"]:
            print(f"warning: {shipped_cfg.store} holds runs not of {config}: "
                  f"{'; '.join(shipped['differs'][:3])}", file=sys.stderr)
    elif earlier and earlier.get("shipped") and not differences(earlier["fingerprint"], fingerprint):
        shipped = earlier["shipped"]
        print(f"{task}: {shipped_cfg.store} is not here; its side is kept from the table "
              f"(read by {shipped['read_by']})", file=sys.stderr)
    if Path(ref_cfg.store).exists():
        ref = store_side(ref_cfg.store)[0] | {"read_by": read_by}
    return row(task, title, config, reference, fingerprint, shipped, ref, notes.get(task), cells(ref_cfg))


def measured_coverage(task: str, results: Path = Path("results")) -> dict | None:
    """What bench/coverage.py measured on this task's reference run
    (results/bench_coverage_<task>.json): the coverage of the interval the report prints
    (the paired percentile bootstrap) by slice size, the pair it was measured on and the
    replicates; None where it has not been measured."""
    path = results / f"bench_coverage_{task}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    rows = [r for r in data["rows"] if r["method"] == "percentile"]
    return {"source": data["source"], "nominal": data["nominal"], "reps": min(r["reps"] for r in rows),
            "by_n": {str(r["n"]): r["coverage"] for r in rows}, "file": path.name}


def earlier_rows(path: Path) -> dict[str, dict]:
    """The table at `path` as it stands, task -> row, each side marked as kept (not read
    again) and with the code version that read it (a table written before sides carried
    `read_by`: its file's version)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    version = data["provenance"]["code_version"]
    for r in data["rows"]:
        for key in ("shipped", "reference"):
            if r.get(key):
                r[key].setdefault("read_by", version)
                r[key]["kept"] = True
    return {r["task"]: r for r in data["rows"]}


def read_notes(path: Path) -> dict[str, str]:
    """configs/reference/notes.yaml: task -> why its verdicts disagree (none: {})."""
    notes = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    bad = [k for k, v in notes.items() if k not in SHIPPED or not isinstance(v, str)] \
        if isinstance(notes, dict) else ["(not a mapping)"]
    if bad:
        sys.exit(f"{path}: '{bad[0]}': expected task: \"reason\" with a task of {', '.join(SHIPPED)}")
    return notes


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", default="configs/reference/notes.yaml",
                    help="YAML: task -> why its shipped verdict disagrees with its reference")
    ap.add_argument("--out", default=str(PATH), help="where the table goes (default: the package data)")
    ap.add_argument("--task", action="append", choices=list(SHIPPED), default=[],
                    help="re-read only this task's stores (repeatable); other rows stay as --out has them")
    args = ap.parse_args(argv)
    notes = read_notes(Path(args.notes))
    out = Path(args.out)
    prov = provenance(argv if argv is not None else sys.argv[1:], "python bench/track_record.py")
    earlier = earlier_rows(out) if args.task else {}
    missing = [t for t in SHIPPED if args.task and t not in args.task and t not in earlier]
    if missing:
        sys.exit(f"{out}: no row for '{missing[0]}' to keep: run without --task to read every store")
    rows = [(earlier[task] if args.task and task not in args.task
             else task_row(task, *spec, notes, prov["code_version"], earlier.get(task)))
            | {"coverage": measured_coverage(task)}
            for task, spec in SHIPPED.items()]
    agreed, compared, _ = agreement(rows)
    data = {"bench": "track_record", "figures": {"tasks": len(rows), "compared": compared, "agreed": agreed},
            "rows": rows, "provenance": prov}
    out.write_text(json.dumps(data, indent=2) + "\n")
    for r in rows:
        print(f"{r['title']}: {r['status']}")
    print(f"agreed: {agreed} of {compared} compared ({len(rows)} tasks); wrote {out}")
    return out


if __name__ == "__main__":
    main()
