"""Whether a metric can tell the arms apart, and which one to decide on when it cannot.

A metric on which every arm scores the same on every test example (exact match of long
free-text answers: 0.000 for all arms) decides nothing: every comparison on it reads
"+0.0 points (90% CI +0.0 to +0.0)", which TOST calls equivalent, and the verdict would
say "prompt, fine-tuning is within 2 points" about arms it never measured apart. The
verdict then says so and moves to the first of the task's other per-example metrics that
varies (in the task's own order, fixed before any result: not the one that happens to
favour an arm).
"""

from __future__ import annotations

from typing import Protocol


class Scored(Protocol):
    scores: dict[str, dict[str, float]]


def still(arms: list[Scored], metric: str) -> str | None:
    """Why `metric` cannot tell these arms apart, or None if it can.

    A corpus metric (no per-example scores) is judged by its stored interval elsewhere.

    >>> from types import SimpleNamespace as A
    >>> still([A(scores={"em": {"a": 0.0, "b": 0.0}}), A(scores={"em": {"a": 0.0}})], "em")
    'every arm scores 0.000 on every test example (the floor)'
    >>> still([A(scores={"em": {"a": 0.0}}), A(scores={"em": {"a": 1.0}})], "em") is None
    True
    """
    values = {v for a in arms for v in a.scores.get(metric, {}).values()}
    if len(values) != 1:
        return None
    (v,) = values
    where = " (the floor)" if v == 0 else " (the ceiling)" if v == 1 else ""
    return f"every arm scores {v:.3f} on every test example{where}"


def deciding(arms: list[Scored], metric: str) -> tuple[str | None, str | None]:
    """(the metric to decide on, a sentence saying why it is not `metric`). (metric, None)
    where `metric` moves; (None, sentence) where no per-example metric moves."""
    why = still(arms, metric)
    if why is None:
        return metric, None
    shared = [m for m in arms[0].scores if m != metric and all(m in a.scores for a in arms)]
    moving = [m for m in shared if still(arms, m) is None]
    if not moving:
        return None, (f"{metric} decides nothing here: {why}, and no other metric of this task "
                      "varies either, so no verdict can be drawn from these arms.")
    return moving[0], (f"{metric} decides nothing here: {why}, so it cannot tell the arms apart; "
                       f"the findings below are drawn on {moving[0]}, the first of the task's "
                       "other metrics that varies across test examples.")
