"""Example predictions of every arm side by side, per test example, wrong ones first:
where each arm goes wrong, without opening `tunelab show` for each."""

from __future__ import annotations

from collections import Counter


def side_by_side(arms, metric: str, per_arm: int = 2, total: int = 8) -> dict:
    """{"arms": names, "rows": [{input, target, cells: [{prediction, score, right}]}]}.

    Picks up to `per_arm` wrong examples of each arm (so every arm's mistakes appear),
    then fills to `total` with the examples most arms got wrong, then right ones; rows
    are ordered by how many arms got them wrong. Predictions are each arm's first seed.
    """
    metric = metric if all(metric in a.scores for a in arms) else next(iter(arms[0].scores), metric)
    preds = [{e["example_id"]: e for e in a.examples} for a in arms]
    ids = [e["example_id"] for e in arms[0].examples if all(e["example_id"] in p for p in preds)]

    def wrong(a, i) -> bool:
        return a.scores.get(metric, {}).get(i, 0.0) < 1

    n_wrong = Counter({i: sum(wrong(a, i) for a in arms) for i in ids})
    chosen = []
    for a in arms:
        chosen += [i for i in ids if wrong(a, i) and i not in chosen][:per_arm]
    ranked = sorted(ids, key=lambda i: -n_wrong[i])  # stable: test order among ties
    chosen += [i for i in ranked if i not in chosen][: max(0, total - len(chosen))]
    chosen.sort(key=lambda i: -n_wrong[i])
    rows = []
    for i in chosen:
        first = preds[0][i]
        cells = [{"prediction": p[i]["prediction"], "score": a.scores.get(metric, {}).get(i),
                  "right": not wrong(a, i)} for a, p in zip(arms, preds, strict=True)]
        rows.append({"input": first["input"], "target": first["target"], "cells": cells})
    return {"arms": [a.name for a in arms], "metric": metric, "rows": rows}
