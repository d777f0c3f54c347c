"""The report's "as shipped" rows: each stored export (verify.py) beside the cell it came
from, with the paired difference on the primary metric. Reads the store only (no torch),
so `tunelab report` stays light.
"""

from __future__ import annotations

import json

from tunelab.core.store import Store
from tunelab.tasks.metrics import paired_bootstrap

PREFIX = "export:"
"""Begins an export's run id (`key`) and method name, so `tunelab ls` tells it apart; the
store tells its kind by its `kind` column, not by this."""


NEAR_TIE = 0.05
"""Logits: a changed prediction whose stored token was within this of the artifact's own top
choice, where they part, is a near-tie that rounding the weights flips (f16 moved the demo's
logits by about 0.004, README "Shipping the winner"), not a template or loading fault."""


def key(run_id: str, label: str) -> str:
    """The export's run id; it must not start with the source's id, which a prefix names."""
    return f"{PREFIX}{label}:{run_id}"


def rows(store: Store, runs: dict[str, str], metric: str) -> list[dict]:
    """One row per stored export whose source run is in `runs` (run id -> arm name): as
    trained, as shipped, the paired difference on the primary metric with its 95% CI, how
    many predictions stayed the same, and a plain sentence."""
    out = []
    for r in store.runs("done", kind="export"):
        info = json.loads(r["info"] or "{}")
        src = info.get("export_of")
        if src not in runs:
            continue
        a = {p["example_id"]: p["scores"].get(metric) for p in store.predictions(src)}
        b = {p["example_id"]: p["scores"].get(metric) for p in store.predictions(r["id"])}
        ids = [e for e in a if e in b and isinstance(a[e], int | float) and isinstance(b[e], int | float)]
        if not ids:
            continue
        d = paired_bootstrap([b[e] for e in ids], [a[e] for e in ids])
        same, n, ties = info.get("same_predictions", 0), len(b), info.get("near_ties", 0)
        out.append({"arm": runs[src], "format": info["format"], "n": n, "same": same,
                    "trained": store.metrics(src).get(metric), "shipped": store.metrics(r["id"]).get(metric),
                    "diff": d, "seconds": info.get("export_seconds", 0.0), "bytes": info.get("bytes", 0),
                    "sentence": sentence(d, same, n, ties)})
    return out


def near_ties(changed: int, ties: int) -> str:
    """How many changed predictions parted from the stored answer at a near-tie (verify.py).

    >>> near_ties(12, 3)[:32]
    '3 of the 12 changed: a near-tie '
    """
    return (f"{ties} of the {changed} changed: a near-tie (the stored token within {NEAR_TIE:g} logits "
            "of the export's choice where they part)")


def sentence(d: tuple[float, float, float], same: int, n: int, ties: int = 0) -> str:
    """What the export did to accuracy, plainly.

    >>> sentence((-0.05, -0.09, -0.01), 80, 100)
    'export cost accuracy: -0.050 [-0.090, -0.010] (20 of 100 predictions changed)'
    >>> sentence((0.0, 0.0, 0.0), 100, 100)
    'identical predictions: the export scores exactly as trained'
    >>> sentence((0.001, -0.001, 0.003), 99, 100, 1).split("; ")[1][:30]
    '1 of the 1 changed: a near-tie'
    """
    m, lo, hi = d
    changed = f"{n - same} of {n} predictions changed"
    if same < n and ties:
        changed += f"; {near_ties(n - same, ties)}"
    if same == n:
        return "identical predictions: the export scores exactly as trained"
    if hi < 0:
        return f"export cost accuracy: {m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({changed})"
    if lo > 0:
        return f"the export scored higher: {m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({changed})"
    return f"no measurable cost: {m:+.3f} [{lo:+.3f}, {hi:+.3f}], CI includes 0 ({changed})"
