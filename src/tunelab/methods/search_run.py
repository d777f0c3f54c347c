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
from tunelab.methods.base import Context, setting
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


class Trials:
    """One cell's search: its candidates scored on the validation split (search.py rules)."""

    def __init__(self, build: Callable[[Context], Predictor], ctx: Context, trains: bool):
        self.build, self.ctx, self.trains = build, ctx, trains
        self.where = f"methods.{ctx.method.label or ctx.method.name}.search"
        if not ctx.validation:
            raise TunelabError(f"{self.where}: needs a validation split "
                               "(the test split is never searched on)")
        self.primary = ctx.task.primary
        self.higher = ctx.task.metrics[self.primary].higher_is_better
        self.dev = sample(ctx.validation, DEV_SIZE, DEV_SEED)
        self.costs: list[float] = []
        self.decided: dict = {}  # setting_id -> the deciding rung's evaluation of that setting

    def candidate(self, setting: dict, share: float) -> Predictor:
        """One candidate built: its settings object and train settings with `setting` put in."""
        ctx = self.ctx
        m, t = apply(ctx.method, ctx.train_cfg, setting, share, len(ctx.train))
        seed_everything(ctx.seed)  # every candidate starts from the same init and draws
        with trial() if share < 1.0 else nullcontext():
            pred = self.build(replace(ctx, method=m, train_cfg=t, checkpoint=None, settings=None))
        self.costs.append(pred.info.train_seconds or 0.0)
        return pred

    def score(self, setting: dict, share: float, deciding: bool) -> tuple[float, Predictor]:
        pred = self.candidate(setting, share)
        if self.trains and not deciding:
            losses = pred.info.val_losses or []
            if not losses:
                raise TunelabError(f"{self.where}: {self.ctx.method.name} records no validation loss, "
                                   "so it cannot be searched")
            return min(losses), pred
        if not self.trains and share >= 1.0 and setting_id(setting) in self.decided:
            # a prompting arm's last rung is the predictor the deciding rung already
            # scored on these same validation examples (greedy: the same answers)
            return self.decided[setting_id(setting)].metrics[self.primary][0], pred
        from tunelab.eval.evaluate import evaluate  # torch-free import of this module for the report

        n = len(self.dev) if deciding else max(DEV_MIN, math.ceil(share * len(self.dev)))
        t0 = time.perf_counter()
        res = evaluate(pred, self.ctx.task, self.dev[:n], self.ctx.eval_cfg, label=f"search {setting}")
        if self.trains:  # generating on validation is part of what the search costs
            self.costs[-1] += time.perf_counter() - t0
        if deciding:
            self.decided[setting_id(setting)] = res
        return res.metrics[self.primary][0], pred

    def lower_is_better(self, deciding: bool) -> bool:
        if self.trains and not deciding:
            return True  # validation loss
        return not self.higher  # the task metric

    def per_example(self) -> dict[str, list[float]]:
        return {k: [r["scores"][self.primary] for r in res.rows] for k, res in self.decided.items()}

    def record(self, space: dict, chosen: dict, trace: list[dict], default: dict | None) -> dict:
        """What the run stores about its search (pred.info.settings_search)."""
        primary, n = self.primary, len(self.dev)
        return {
            "space": space, "chosen": chosen, "trace": trace, "seconds": sum(r["seconds"] for r in trace),
            "scored_by": (f"best validation loss, then validation {primary} ({n} examples) "
                          "on the rung that picks the run trained in full") if self.trains
                         else f"validation {primary} ({n} examples)",
            "rule": f"successive halving, keep 1/{ETA} per rung, budget shares "
                    f"{', '.join(f'{s:.3g}' for s in RUNGS)} of one default run",
            "default_runs": sum(r["share"] for r in trace), "default": default,
            "kept_default": next((r["kept_default"] for r in trace if "kept_default" in r), None)}


def with_search(build: Callable[[Context], Predictor],
                is_trained: Callable[[object], bool]) -> Callable[[Context], Predictor]:
    def run(ctx: Context) -> Predictor:
        space = ctx.method.search
        if not space:
            return build(ctx)
        trains = is_trained(ctx.method)
        trials = Trials(build, ctx, trains)
        default = default_setting(ctx, space)
        chosen, pred, trace = halving(
            points(space), trials.score, trials.lower_is_better,
            settle=lambda rows: keep_default(rows, default, trials.per_example(), trials.higher))
        pred.info.settings_search = info = trials.record(space, chosen, trace, default)
        # The one-off cost of a searched arm is the whole search (its last run included).
        pred.info.final_train_seconds = pred.info.train_seconds or 0.0
        pred.info.train_seconds = sum(trials.costs) if trains else info["seconds"]
        return pred

    return run


def default_setting(ctx: Context, space: dict) -> dict | None:
    """The values the arm runs without a search, for the searched keys (training settings
    resolved, lr included; a setting left unset as its spec says, e.g. few_shot's draw is
    the cell's seed); None when one has no such rule, so the default cannot be matched to
    a candidate."""
    out = {}
    for key in space:
        out[key] = getattr(ctx.train_cfg, key) if key in SEARCH_TRAIN else setting(ctx, key)
        if out[key] is None:
            return None
    return out
