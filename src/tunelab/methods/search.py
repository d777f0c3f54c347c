"""`search:` on any method: successive halving over a declared space of settings, scored
on the validation split only.

A verdict is only as fair as the weakest arm's tuning, so both sides get the same rule.
Training methods are scored by their best validation loss (the early-stopping curve) on
the rungs that only thin the field, and on the rung that picks the one setting to train in
full (the deciding rung) by the task's primary metric on the validation examples, generated:
validation loss ranked LoRA r=8 above r=16 by 1.5% at that rung on ViGGO while test slot F1
ranked them the other way by 5.9 points (README, default vs searched). Prompting methods
are scored by the primary metric on seeded validation examples at every rung (all DEV_SIZE
on the deciding rung). On the deciding rung the default setting is kept unless the leader
beats it beyond noise (keep_default). The test split is never seen during a search (the
grid scores only the chosen setting on it).

Budget, declared and stored with the run: every candidate trains (or is scored) at 1/12 of
one default run's budget (for training, the budget without the min_budget floor: RUNGS),
the best third goes on at 1/4, the best of those at the whole budget, and that last run is
the arm, not retrained. 8 candidates cost 8/12 + 3/4 + 1 =
2.4 default runs of training steps. A shortened trial measures its validation loss only
before its first step and after its last (the arm's run keeps the usual cadence of every
half epoch): each evaluation is a forward pass over the validation examples, fixed work
per trial that made rungs of 1/9 and 1/3 cost 2.35 default runs against their 1.9 budgets
(README, search).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import replace

from tunelab import TunelabError
from tunelab.core.config import SEARCH_TRAIN, MethodConfig, TrainConfig

ETA = 3
"""Each rung keeps the best 1/ETA of its candidates."""
RUNGS = (1 / 12, 1 / 4, 1.0)
"""Share of one default run's budget (steps and seconds, or validation examples) per rung.
For training, the shorter rungs are shares of the max_epochs budget without the
train.min_budget floor (the last rung is a default run, floor included): the floor gives
early stopping room on a small training set, and a rung does not stop early. As shares of
the floored 256 steps, 8 candidates' shorter rungs on ViGGO n=100 would train 8 x 22 +
3 x 64 = 368 steps, against the 96 steps a default run trained before early stopping
(README, learning curves); without the floor, 8 x 9 + 3 x 26 = 150."""
DEV_SIZE = 64
"""Validation examples generated and scored on the deciding rung, for every method (it picks
the one setting run in full, and keep_default compares the leader with the default on
them), and on prompting methods' last rung; earlier prompting rungs score fewer."""
DEV_MIN = 16
"""Prompting methods: validation examples scored at least, at any rung (fewer would rank
candidates by noise)."""
DEV_SEED = 0

def points(space: dict[str, list]) -> list[dict]:
    """Every combination of the space, in declared order.

    >>> points({"lr": [1e-3, 1e-4], "lora_r": [8]})
    [{'lr': 0.001, 'lora_r': 8}, {'lr': 0.0001, 'lora_r': 8}]
    """
    keys = list(space)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*space.values())]


def halving(candidates: list[dict], score: Callable[[dict, float, bool], tuple[float, object]],
            lower_is_better: Callable[[bool], bool],
            settle: Callable[[list[dict]], list[dict]] | None = None) -> tuple[dict, object, list[dict]]:
    """Successive halving: (best setting, what its full-budget run returned, trace).

    `score(setting, share, deciding)` runs one candidate at `share` of the budget and
    returns (score, result); `deciding` is true on the shortened rung that keeps a single
    candidate (the one that goes on to the whole budget), where a caller may score by
    another measure; `lower_is_better(deciding)` says which way that rung's scores rank,
    and `settle`, if given, may reorder that rung's rows (best first; see `keep_default`).
    A single candidate left goes straight to the whole budget.

    >>> calls = []
    >>> def score(s, share, deciding):
    ...     calls.append((s["x"], round(share, 2), deciding))
    ...     return ((s["x"] - 3) ** 2 + share) * (-1 if deciding else 1), s["x"]
    >>> best, result, trace = halving([{"x": x} for x in range(8)], score, lambda d: not d)
    >>> best, result, len(trace), [r["deciding"] for r in trace].count(True)
    ({'x': 3}, 3, 12, 3)
    >>> calls[8:]
    [(3, 0.25, True), (2, 0.25, True), (4, 0.25, True), (3, 1.0, False)]
    """
    if not candidates:
        raise TunelabError("search: the space has no candidates")
    def rank(row: dict) -> float:
        return row["score"] if lower_is_better(row["deciding"]) else -row["score"]

    trace: list[dict] = []
    alive = candidates
    for rung, share in enumerate(RUNGS):
        if len(alive) == 1:
            share = 1.0
        deciding = share < 1.0 and math.ceil(len(alive) / ETA) == 1
        rows, kept = [], None  # kept: (row, result) of the best full-budget run so far
        for setting in alive:
            t = time.perf_counter()
            value, result = score(setting, share, deciding)
            row = {"rung": rung, "share": share, "setting": setting, "score": value,
                   "deciding": deciding, "seconds": time.perf_counter() - t}
            rows.append(row)
            if share == 1.0 and (kept is None or rank(row) < rank(kept[0])):
                kept = (row, result)
            del result  # a trained candidate holds a model copy: keep only the best one
        trace += rows
        if kept is not None:
            return kept[0]["setting"], kept[1], trace
        rows.sort(key=rank)
        if deciding and settle is not None:
            rows = settle(rows)
        alive = [r["setting"] for r in rows[: math.ceil(len(rows) / ETA)]]
    raise AssertionError("the last rung has share 1.0")


def keep_default(rows: list[dict], default: dict, scores: dict[str, list[float]],
                 higher_is_better: bool) -> list[dict]:
    """The deciding rung's rows (best first), with the default setting moved to the front
    when the leader does not beat it beyond noise: the paired 95% bootstrap interval of
    (leader - default) over the same validation examples reaches 0 or the wrong side. A
    search moves a setting away from its default only on evidence; with 64 validation
    examples at a quarter of the budget, a 1-point lead is not (ViGGO, README: rank 8 led
    rank 16 by 1.0 point there and scored 5.9 points below it on test). The moved row
    records the lead it was kept against. `scores`: per-example validation scores by
    `setting_id`; rows whose setting is not the default are left in order.

    >>> rows = [{"setting": {"r": 8}}, {"setting": {"r": 16}}]
    >>> near = {setting_id({"r": 8}): [1, 0] * 20, setting_id({"r": 16}): [0, 1] * 19 + [0, 0]}
    >>> [r["setting"] for r in keep_default(rows, {"r": 16}, near, True)]
    [{'r': 16}, {'r': 8}]
    >>> far = {setting_id({"r": 8}): [1] * 40, setting_id({"r": 16}): [0] * 40}
    >>> [r["setting"] for r in keep_default(rows, {"r": 16}, far, True)]
    [{'r': 8}, {'r': 16}]
    """
    from tunelab.tasks.metrics import paired_bootstrap

    at = [i for i, r in enumerate(rows) if r["setting"] == default]
    if not at or at[0] == 0:
        return rows
    lead, base = rows[0], rows[at[0]]
    sign = 1.0 if higher_is_better else -1.0
    d, lo, hi = paired_bootstrap([sign * x for x in scores[setting_id(lead["setting"])]],
                                 [sign * x for x in scores[setting_id(base["setting"])]])
    if lo > 0:
        return rows
    base["kept_default"] = {"leader": lead["setting"], "lead": [d, lo, hi],
                            "n": len(scores[setting_id(base["setting"])])}
    return [base] + [r for r in rows if r is not base]


def setting_id(setting: dict) -> str:
    return repr(sorted(setting.items()))


def apply(method: MethodConfig, train: TrainConfig, setting: dict, share: float,
          n_train: int) -> tuple[MethodConfig, TrainConfig]:
    """The method and train settings of one trial: the setting applied (the method's own
    keys by replacing fields of its settings object), and for training a budget cut to
    `share` of one default run's (steps, and seconds if budgeted), with validation loss
    measured at its start and end only."""
    from tunelab.train.stopping import train_budget

    own = {k: v for k, v in setting.items() if k not in SEARCH_TRAIN}
    settings = method.settings
    if own:
        settings = {**settings, **own} if isinstance(settings, dict) else replace(settings, **own)
    m = replace(method, search={}, settings=settings)
    t = replace(train, **{k: v for k, v in setting.items() if k in SEARCH_TRAIN})
    if share < 1.0:  # of the budget without the min_budget floor: see RUNGS
        steps = train_budget(t, n_train, min_budget=0)
        trial = max(1, math.ceil(share * steps))
        t = replace(t, max_steps=trial, max_seconds=share * t.max_seconds, save=False, eval_every=trial)
    return m, t
