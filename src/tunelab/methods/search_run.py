"""A method config's `search:` run before its cell is scored (tunelab/methods/search.py): the
candidates are built and scored on the validation split, and the best one's full-budget
build is the cell's predictor."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace

from tunelab import TunelabError
from tunelab.core.config import SEARCH_TRAIN
from tunelab.data.readers import sample
from tunelab.eval.predictor import Predictor
from tunelab.methods.base import Context
from tunelab.methods.search import (
    DEV_MIN,
    DEV_SEED,
    DEV_SIZE,
    ETA,
    RUNGS,
    apply,
    halving,
    keep_default,
    points,
    setting_id,
)
from tunelab.train.loop import seed_everything
from tunelab.train.stopping import trial


def with_search(build: Callable[[Context], Predictor],
                is_trained: Callable[[object], bool]) -> Callable[[Context], Predictor]:
    def run(ctx: Context) -> Predictor:
        space = ctx.method.search
        if not space:
            return build(ctx)
        trains = is_trained(ctx.method)
        where = f"methods.{ctx.method.label or ctx.method.name}.search"
        if not ctx.validation:
            raise TunelabError(f"{where}: needs a validation split (the test split is never searched on)")
        primary = ctx.task.primary
        dev = sample(ctx.validation, DEV_SIZE, DEV_SEED)
        costs: list[float] = []

        def score(setting: dict, share: float, deciding: bool) -> tuple[float, Predictor]:
            m, t = apply(ctx.method, ctx.train_cfg, setting, share, len(ctx.train))
            seed_everything(ctx.seed)  # every candidate starts from the same init and draws
            with trial() if share < 1.0 else nullcontext():
                pred = build(replace(ctx, method=m, train_cfg=t, checkpoint=None, settings=None))
            costs.append(pred.info.train_seconds or 0.0)
            if trains and not deciding:
                losses = pred.info.val_losses or []
                if not losses:
                    raise TunelabError(f"{where}: {ctx.method.name} records no validation loss, "
                                       "so it cannot be searched")
                return min(losses), pred
            if not trains and share >= 1.0 and setting_id(setting) in decided:
                # a prompting arm's last rung is the predictor the deciding rung already
                # scored on these same validation examples (greedy: the same answers)
                return decided[setting_id(setting)].metrics[primary][0], pred
            from tunelab.eval.evaluate import evaluate  # torch-free import of this module for the report

            n = len(dev) if deciding else max(DEV_MIN, math.ceil(share * len(dev)))
            t0 = time.perf_counter()
            res = evaluate(pred, ctx.task, dev[:n], ctx.eval_cfg, label=f"search {setting}")
            if trains:  # generating on validation is part of what the search costs
                costs[-1] += time.perf_counter() - t0
            if deciding:
                decided[setting_id(setting)] = res
            return res.metrics[primary][0], pred

        higher = ctx.task.metrics[primary].higher_is_better

        def lower_is_better(deciding: bool) -> bool:
            if trains and not deciding:
                return True  # validation loss
            return not higher  # the task metric

        decided: dict = {}  # setting_id -> the deciding rung's evaluation of that setting

        def per_example() -> dict[str, list[float]]:
            return {k: [r["scores"][primary] for r in res.rows] for k, res in decided.items()}

        default = default_setting(ctx, space, trains)
        chosen, pred, trace = halving(points(space), score, lower_is_better,
                                      settle=lambda rows: keep_default(rows, default, per_example(), higher))
        seconds = sum(r["seconds"] for r in trace)
        pred.info.settings_search = {
            "space": space, "chosen": chosen, "trace": trace, "seconds": seconds,
            "scored_by": (f"best validation loss, then validation {primary} ({len(dev)} examples) "
                          "on the rung that picks the run trained in full") if trains
                         else f"validation {primary} ({len(dev)} examples)",
            "rule": f"successive halving, keep 1/{ETA} per rung, budget shares "
                    f"{', '.join(f'{s:.3g}' for s in RUNGS)} of one default run",
            "default_runs": sum(r["share"] for r in trace), "default": default,
            "kept_default": next((r["kept_default"] for r in trace if "kept_default" in r), None)}
        # The one-off cost of a searched arm is the whole search (its last run included).
        pred.info.final_train_seconds = pred.info.train_seconds or 0.0
        pred.info.train_seconds = sum(costs) if trains else seconds
        return pred

    return run


UNSET = {"prompt": lambda ctx, trains: "short" if trains else "full",
         "draw": lambda ctx, trains: ctx.seed}
"""What a searched setting left unset means (methods.base.Prompted; few_shot's draw)."""


def default_setting(ctx: Context, space: dict, trains: bool) -> dict | None:
    """The values the arm runs without a search, for the searched keys (training settings
    resolved, lr included; a setting unset as UNSET says); None when another one is left unset,
    so the default cannot be matched to a candidate."""
    out = {}
    for key in space:
        if key in SEARCH_TRAIN:
            out[key] = getattr(ctx.train_cfg, key)
        else:
            own = ctx.settings if ctx.settings is not None and hasattr(ctx.settings, key) else ctx.method
            out[key] = getattr(own, key)
        if out[key] is None and key in UNSET:
            out[key] = UNSET[key](ctx, trains)
        if out[key] is None:
            return None
    return out
