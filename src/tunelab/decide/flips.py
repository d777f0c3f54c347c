"""Per-example flips between two arms: which test examples one gets right and the other
wrong, each way, with both predictions, so a mean difference can be read as examples.

"Right" is the arm's per-example primary score, averaged over seeds, at or above
`RIGHT` (0.5). For a 0/1 metric (exact match, label match) with one seed that is plain
right or wrong; over several seeds it is "right in most seeds"; for a graded metric
(slot F1, token F1, ROUGE-L) it is "at least half credit". Every test example both arms
were scored on falls in exactly one of four counts (a right / b wrong, a wrong / b right,
both right, both wrong); within each flip direction the examples with the largest score
difference come first, so the few shown are the clearest. Predictions shown are each
arm's first seed (as in the report's example table).
"""

from __future__ import annotations

from tunelab.decide.verdict import best

RIGHT = 0.5
"""Per-example score (seed mean) at or above which an example counts as right."""

KINDS = ("a_only", "b_only", "both_right", "both_wrong")
"""a_only: a right and b wrong; b_only: a wrong and b right."""


def flips(a, b, metric: str, right: float = RIGHT, show: int | None = 3) -> dict:
    """Counts of the four outcomes on the test examples both arms share, and up to `show`
    examples of each flip direction (all of them with show=None).

    `a` and `b` need `name`, `scores` ({metric: {example_id: score}}) and `examples`
    (the stored predictions: example_id, input, target, prediction).
    """
    sa, sb = a.scores.get(metric, {}), b.scores.get(metric, {})
    pa = {e["example_id"]: e for e in a.examples}
    pb = {e["example_id"]: e for e in b.examples}
    ids = [i for i in pa if i in sa and i in sb]  # test order of a's first seed
    groups = {k: [] for k in KINDS}
    for i in ids:
        ra, rb = sa[i] >= right, sb[i] >= right
        kind = ("both_right" if rb else "a_only") if ra else ("b_only" if rb else "both_wrong")
        groups[kind].append(i)

    def row(i: str) -> dict:
        return {"example_id": i, "input": pa[i]["input"], "target": pa[i]["target"],
                "a_prediction": pa[i]["prediction"], "b_prediction": pb.get(i, {}).get("prediction", ""),
                "a_score": sa[i], "b_score": sb[i]}

    def shown(kind: str) -> list[dict]:
        rows = sorted(groups[kind], key=lambda i: -abs(sa[i] - sb[i]))  # stable: test order on ties
        return [row(i) for i in rows[:show]]

    return {"a": a.name, "b": b.name, "metric": metric, "right": right, "n": len(ids),
            "counts": {k: len(v) for k, v in groups.items()},
            "a_only": shown("a_only"), "b_only": shown("b_only")}


def best_pair(arms, metric: str) -> tuple | None:
    """(best fine-tuned arm, best prompting arm) by the report's own ranking (verdict.best),
    or None when the report lacks one side."""
    tuned = [x for x in arms if x.trained]
    prompted = [x for x in arms if not x.trained]
    if not (tuned and prompted):
        return None
    return best(tuned, metric), best(prompted, metric)


def report_flips(arms, metric: str, show: int | None = 3) -> dict | None:
    """Flips between the report's best fine-tuned (a) and best prompting (b) arm."""
    pair = best_pair(arms, metric)
    if not pair or any(metric not in a.scores for a in pair):  # a corpus metric: no per-example score
        return None
    return flips(*pair, metric, show=show)
