"""The report's track-record sentence: how the verdict of the shipped config of this run's
task compared with a run several times larger (decide/track_record.py says how a run is
matched to a shipped config).

The rows live in track_record.json beside this file (package data, written by
bench/track_record.py), so the report of any install quotes the same table as the docs.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.decide.arms import stored_configs
from tunelab.decide.track_record import agreement, match, side

PATH = Path(__file__).with_name("track_record.json")
"""The track record, written by bench/track_record.py."""


def load(path: Path | None = None) -> list[dict] | None:
    """The track record's rows (of PATH by default), or None where this install has none."""
    path = path or PATH
    return json.loads(path.read_text())["rows"] if path.exists() else None


def described(s: dict) -> str:
    """One side of a row in words: its verdict, lead and interval, sizes.

    >>> described({"verdict": "fine-tune", "tuned": "lora", "prompted": "few_shot", "lead": 55.8,
    ...            "lo": 49.9, "hi": 61.7, "ci": "95% CI", "metric": "f1", "n_test": 100, "seeds": 1})
    'fine-tune (lora vs few_shot: +55.8 points, 95% CI +49.9 to +61.7 on f1; 100 test examples, 1 seed)'
    """
    seeds = f"{s['seeds']} seed{'s' if s['seeds'] != 1 else ''}"
    caveat = f"; not reliable against fine-tuning: {s['caveat']}" if s.get("caveat") else ""
    return (f"{s['verdict']} ({s['tuned']} vs {s['prompted']}: {s['lead']:+.1f} points, {s['ci']} "
            f"{s['lo']:+.1f} to {s['hi']:+.1f} on {s['metric']}; {s['n_test']} test examples, {seeds}"
            f"{caveat})")


def row_sentence(r: dict) -> str:
    """What one row says: agreed or not with how much larger a reference, or why there is
    no comparison yet."""
    where = f"the shipped {r['title']} config ({r['config']})"
    if r["agreed"] is None:
        unchecked = "so its verdict has not been checked against a larger run yet."
        if r["status"] == "reference not run yet":
            return f"no reference run yet for {where}, {unchecked}"
        return f"for {where}: {r['status']}, {unchecked}"
    s, ref = r["shipped"], r["reference"]
    times = (ref["n_test"] * ref["seeds"]) / max(1, s["n_test"] * s["seeds"])
    text = (f"on {where}, the verdict {'agreed' if r['agreed'] else 'disagreed'} with a reference run "
            f"{times:.0f}x larger ({ref['n_test']} test examples x {ref['seeds']} seeds against "
            f"{s['n_test']} x {s['seeds']}): shipped {described(s)}; reference {described(ref)}.")
    if not r["agreed"]:
        text += f" Why: {r['reason'] or 'not found yet'}."
    elif s["verdict"] == "undecided":
        text += (" Both runs are undecided: the shipped config is right to recommend neither side, "
                 "and neither run tells which side is better.")
    return text + coverage_sentence(r.get("coverage"))


SHORT = 0.02
"""Coverage more than this below nominal is a shortfall the report states."""
FAR = 0.05
"""A shortfall larger than this makes the intervals there much too narrow, not somewhat."""


def coverage_sentence(cov: dict | None) -> str:
    """What the coverage measured on a task's reference run says of the intervals printed.

    >>> coverage_sentence({"by_n": {"40": 0.93, "100": 0.9475}, "nominal": 0.95, "reps": 2000})[-90:]
    'all the examples in 93.0% of 2000 drawn slices of 40 examples, 94.8% of 100 (nominal 95%).'
    >>> coverage_sentence({"by_n": {"40": 0.91}, "nominal": 0.95, "reps": 500})[-90:]
    'nal 95%); at 40 that is 4.0 points short: read its intervals as somewhat too narrow there.'
    >>> far = coverage_sentence({"by_n": {"40": 0.70, "100": 0.92}, "nominal": 0.95, "reps": 500})
    >>> far.split("; ")[1][:88]
    'at 40 that is 25.0 points short, at 100 that is 3.0 points short: its intervals are much'
    """
    if not cov:
        return ""
    sizes = sorted(cov["by_n"], key=int)
    held = ", ".join(f"{100 * cov['by_n'][n]:.1f}% of " + (f"{cov['reps']} drawn slices of {n} examples"
                                                            if i == 0 else n) for i, n in enumerate(sizes))
    short = [(n, d) for n in sizes if (d := round(cov["nominal"] - cov["by_n"][n], 6)) > SHORT]
    text = (f" On its reference run, the interval tunelab prints (paired percentile bootstrap) held the "
            f"difference of all the examples in {held} (nominal {100 * cov['nominal']:.0f}%)")
    if short:
        how = ("its intervals are much too narrow there: read a decision drawn at those sizes with caution"
               if max(d for _, d in short) > FAR else "read its intervals as somewhat too narrow there")
        text += "; " + ", ".join(f"at {n} that is {100 * d:.1f} points short" for n, d in short) + ": " + how
    return text + "."


def quote(arms, rows: list[dict] | None = None) -> dict:
    """The track record as the report quotes it for these arms: `kind` (shipped config,
    shipped task with other settings, own data), the sentence, and the row quoted (None for
    own data). `rows` default to the packaged track record."""
    rows = load() if rows is None else rows
    if rows is None:
        return {"kind": None, "sentence": "Track record: none in this install.", "row": None}
    configs = stored_configs(arms)
    found, diffs = match(configs, rows)
    if found is None:
        return {"kind": "own data", "sentence": own_data(rows), "row": None}
    text = "Track record: " + row_sentence(found)
    if diffs:
        listed = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        text = (f"Track record: this run is on the {found['title']} task but not on its shipped config "
                f"({found['config']}; this run differs in {listed}), so what follows is the shipped "
                f"config's record, not this run's: " + row_sentence(found))
    elif found["shipped"] and (now := side(arms)).get("verdict") != found["shipped"]["verdict"]:
        text += (f" This run's verdict ({now['verdict']}) is not the one recorded for the shipped "
                 f"config ({found['shipped']['verdict']}): the row speaks for the recorded run.")
    return {"kind": "shipped task" if diffs else "shipped config", "sentence": text,
            "row": found["task"], "status": found["status"], "differences": diffs}


def own_data(rows: list[dict]) -> str:
    """The overall agreement rate, said to be the shipped tasks' and not the user's."""
    agreed, compared, titles = agreement(rows)
    if not compared:
        return ("Track record: no shipped task has been checked against a reference run yet, so no "
                "agreement rate is measured (it would be measured on the shipped tasks, not on yours).")
    return (f"Track record: {agreed} of {compared} shipped tasks checked agreed with their reference "
            f"runs ({', '.join(titles)}); measured on the shipped tasks, not on yours.")
