"""The report's "Settings search" rows: every arm whose method ran a `search:`
(methods/search.py) beside the same method at the same size without one, with the paired
difference, the chosen setting and what the search cost. Reads stored arms only."""

from __future__ import annotations

from tunelab.decide.verdict import compare


def rows(arms: list, metric: str, margin: float) -> list[dict]:
    """For the report: every searched arm beside the same method at the same size without
    a search (when the grid has it), with the paired difference, the chosen setting and
    what the search cost."""
    out = []
    for a in arms:
        s = a.info.settings_search
        if not s:
            continue
        base = [b for b in arms if b is not a and not b.info.settings_search and b.model == a.model
                and b.method == a.method and b.n_train == a.n_train]
        row = {"arm": a.name, "chosen": ", ".join(f"{k}={v}" for k, v in s["chosen"].items()),
               "trials": len(s["trace"]), "default_runs": s["default_runs"],
               "seconds": s["seconds"], "scored_by": s["scored_by"],
               "searched": a.ci[metric], "default": None, "default_arm": None, "sentence": None,
               "cost_ratio": None, "kept": ""}
        kept = s.get("kept_default")
        if kept:
            d, lo, hi = (100 * x for x in kept["lead"])
            row["kept"] = (f" The search kept the default ({row['chosen']}): "
                           f"{', '.join(f'{k}={v}' for k, v in kept['leader'].items())} led it by "
                           f"{d:.1f} points on {kept['n']} validation examples (paired 95% CI "
                           f"{lo:.1f} to {hi:.1f}), not enough to leave it.")
        if base:
            b = base[0]
            row.update(default=b.ci[metric], default_arm=b.name,
                       sentence=compare(a, b, metric, margin).sentence())
            if b.mean("train_seconds"):
                row["cost_ratio"] = a.mean("train_seconds") / b.mean("train_seconds")
        out.append(row)
    return out
