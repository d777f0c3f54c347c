"""The report's "as shipped" rows: each stored export (verify.py) beside the cell it came
from, with the paired difference on the primary metric. Reads the store only (no torch),
so `tunelab report` stays light.
"""

from __future__ import annotations

import json

from tunelab.metrics import paired_bootstrap
from tunelab.store import Store

PREFIX = "export:"
"""Method name prefix of export runs: never an arm of their own (report.load_arms)."""


def key(run_id: str, label: str) -> str:
    """The export's run id; it must not start with the source's id, which a prefix names."""
    return f"{PREFIX}{label}:{run_id}"


def rows(store: Store, runs: dict[str, str], metric: str) -> list[dict]:
    """One row per stored export whose source run is in `runs` (run id -> arm name): as
    trained, as shipped, the paired difference on the primary metric with its 95% CI, how
    many predictions stayed the same, and a plain sentence."""
    out = []
    for r in store.runs("done"):
        if not (r["method"] or "").startswith(PREFIX):
            continue
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
        same, n = info.get("same_predictions", 0), len(b)
        out.append({"arm": runs[src], "format": info["format"], "n": n, "same": same,
                    "trained": store.metrics(src).get(metric), "shipped": store.metrics(r["id"]).get(metric),
                    "diff": d, "seconds": info.get("export_seconds", 0.0), "bytes": info.get("bytes", 0),
                    "sentence": sentence(d, same, n)})
    return out


def sentence(d: tuple[float, float, float], same: int, n: int) -> str:
    """What the export did to accuracy, plainly.

    >>> sentence((-0.05, -0.09, -0.01), 80, 100)
    'export cost accuracy: -0.050 [-0.090, -0.010] (20 of 100 predictions changed)'
    >>> sentence((0.0, 0.0, 0.0), 100, 100)
    'identical predictions: the export scores exactly as trained'
    """
    m, lo, hi = d
    changed = f"{n - same} of {n} predictions changed"
    if same == n:
        return "identical predictions: the export scores exactly as trained"
    if hi < 0:
        return f"export cost accuracy: {m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({changed})"
    if lo > 0:
        return f"the export scored higher: {m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({changed})"
    return f"no measurable cost: {m:+.3f} [{lo:+.3f}, {hi:+.3f}], CI includes 0 ({changed})"
