"""Validation-driven training: the validation loss every few steps, early stopping with
patience, the best checkpoint restored, and a verdict on whether the arm converged.

An undertrained arm decides a "should I fine-tune?" verdict against fine-tuning, so
how long to train is measured here (on validation examples, never test ones), and an arm
that was still improving when its budget ran out, or that barely moved, says so.
"""

from __future__ import annotations

import contextvars
import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


STILL_FALLING = 0.01
"""A last evaluation that set a new best by more than this fraction of the loss a whole
validation interval before it means the validation loss was still falling when training
stopped."""
BARELY_MOVED = 0.05
"""A best validation loss within this fraction of the starting one: the arm barely trained."""
DROP = 0.3
"""train.plateau_drops: the lr multiplier at each plateau (three drops: x0.3, x0.09, x0.027)."""
MIN_GAIN = STILL_FALLING
"""train.plateau_drops: a new best resets patience only when it beats the best before it by
more than this fraction (it is still kept as the best weights). With any new best resetting
it, the validation loss of README's classification file crept to new lows by under 0.1%
per evaluation after the third cut, and every run with drops trained its whole budget."""
_TRIAL = contextvars.ContextVar("tunelab_search_trial", default=False)


@contextmanager
def trial():
    """Inside it, training is a search's shorter rung: it ends at its share of the budget by
    design, so the loop does not warn that it did not converge (the flag is still stored)."""
    token = _TRIAL.set(True)
    try:
        yield
    finally:
        _TRIAL.reset(token)


def in_trial() -> bool:
    return _TRIAL.get()


@dataclass
class Curve:
    """Validation loss over optimizer steps (step 0: before training)."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def best(self) -> int:
        """Index of the lowest loss (the first, on ties)."""
        return min(range(len(self.losses)), key=lambda i: self.losses[i])


def convergence(curve: Curve, stop_reason: str) -> tuple[bool | None, str | None]:
    """(converged, why not) from a validation curve and why training stopped.

    >>> convergence(Curve([0, 10, 20, 30], [2.0, 1.0, 0.9, 0.95]), "early_stop")
    (True, None)
    >>> convergence(Curve([0, 10, 20], [2.0, 1.0, 0.8]), "budget")
    (False, 'validation loss still falling when the budget ran out (0.800 at step 20 vs 1.000 at step 10)')
    >>> convergence(Curve([0, 31, 62, 93, 124, 131], [3.3, 0.37, 0.20, 0.147, 0.109, 0.110]), "budget")
    (False, 'validation loss still falling when the budget ran out (0.109 at step 124 vs 0.147 at step 93)')
    >>> convergence(Curve([0, 6, 12, 13], [3.4, 1.42, 1.385, 1.376]), "budget")
    (False, 'validation loss still falling when the budget ran out (1.376 at step 13 vs 1.420 at step 6)')
    >>> convergence(Curve([0, 10, 20], [2.0, 1.98, 1.97]), "early_stop")
    (False, 'validation loss barely moved (2.000 to 1.970, -1.5%)')
    >>> convergence(Curve([], []), "no_validation")
    (None, 'no validation examples: convergence not measured')
    """
    if len(curve.losses) < 2:
        return None, "no validation examples: convergence not measured"
    start, best = curve.losses[0], curve.losses[curve.best]
    if best > start * (1 - BARELY_MOVED):
        return False, f"validation loss barely moved ({start:.3f} to {best:.3f}, {best / start - 1:+.1%})"
    # Still falling: the best is one of the last two evaluations (one noisy uptick at a
    # decayed lr does not make an arm converged) and it improved on the evaluation a whole
    # validation interval before it (a budget can end a step after the last regular one:
    # 1.385 at step 60, 1.376 at 61 is 0.6%, but 1.422 at 54 -> 1.376 is 3.2%).
    b = curve.best
    if stop_reason == "early_stop" or b < max(1, len(curve.losses) - 2):
        return True, None
    gap = max(t - s for s, t in itertools.pairwise(curve.steps))
    r = max([j for j in range(b) if curve.steps[b] - curve.steps[j] >= gap], default=0)
    if curve.losses[b] < curve.losses[r] * (1 - STILL_FALLING):
        return False, (f"validation loss still falling when the {stop_reason} ran out "
                       f"({curve.losses[b]:.3f} at step {curve.steps[b]} vs "
                       f"{curve.losses[r]:.3f} at step {curve.steps[r]})")
    return True, None


class Stopper:
    """Scores the validation loss, keeps the best trainable weights, decides when to stop.

    `loss_sum(items) -> (summed loss, supervised tokens)` is the training loop's own
    completion loss, so validation and training losses are on the same scale.
    """

    def __init__(self, model, val: list, loss_sum, every: int, patience: int, early: bool,
                 drops: int = 0):
        self.model, self.val, self.loss_sum = model, val, loss_sum
        self.every, self.patience, self.early = max(1, every), patience, early
        self.curve = Curve()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.drops = drops if early else 0
        """lr drops left (train.plateau_drops): at a plateau, the best weights come back and
        the lr is cut by DROP instead of stopping, this many times."""
        self.scale = 1.0
        """The lr multiplier the drops so far leave (the loop multiplies its schedule by it)."""
        self.since = 0
        """Patience counts evaluations after the last gain or the last drop, the later."""
        self.min_gain = MIN_GAIN if self.drops else 0.0
        self.gain = 0
        """Index of the last evaluation that beat every one before it by more than min_gain
        (without drops, any new best: the curve's best)."""

    @property
    def active(self) -> bool:
        return bool(self.val)

    def due(self, step: int, last: bool) -> bool:
        return self.active and (step % self.every == 0 or last)

    def evaluate(self, step: int) -> float:
        import torch  # here, so the report can import the convergence rule without torch

        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            total, n = self.loss_sum(self.val)
        if was_training:
            self.model.train()
        loss = total / max(1, n)
        if loss < min(self.curve.losses, default=math.inf) * (1 - self.min_gain):
            self.gain = len(self.curve.losses)
        self.curve.steps.append(step)
        self.curve.losses.append(loss)
        if self.curve.best == len(self.curve.losses) - 1 and self.early:
            self.best_state = {k: p.detach().clone() for k, p in self.model.named_parameters()
                               if p.requires_grad}
        return loss

    def should_stop(self) -> bool:
        """Early stopping: `patience` evaluations since the best one (with plateau drops,
        since the last gain of more than MIN_GAIN). With lr drops left, a plateau instead
        restores the best weights and cuts the lr (then patience again)."""
        last = len(self.curve.losses) - 1
        if not self.early or last - max(self.gain, self.since) < self.patience:
            return False
        if not self.drops:
            return True
        self.restore_best()
        self.drops, self.scale, self.since = self.drops - 1, self.scale * DROP, last
        return False

    def restore_best(self) -> int | None:
        """Put the best checkpoint's trainable weights back; returns its step."""
        import torch

        if not self.early or self.best_state is None:
            return None
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for k, v in self.best_state.items():
                params[k].copy_(v)
        return self.curve.steps[self.curve.best]


def budget_steps(n_data: int, window: int, epochs, max_epochs: float, min_steps: int,
                 max_steps: int, min_budget: int = 0) -> int:
    """Optimizer steps the loop may take: the fixed epochs, or for auto max_epochs but at
    least `min_budget` steps (a floor for small training sets; early stopping ends sooner).

    >>> budget_steps(100, 8, "auto", 8.0, 0, 0), budget_steps(100, 8, "auto", 8.0, 0, 0, 256)
    (104, 256)
    >>> budget_steps(500, 8, "auto", 8.0, 0, 0, 256), budget_steps(100, 8, 1.0, 8.0, 0, 0, 256)
    (504, 13)
    >>> budget_steps(100, 8, 1.0, 8.0, 30, 0), budget_steps(100, 8, "auto", 8.0, 0, 50, 256)
    (30, 50)
    """
    per_epoch = math.ceil(n_data / window)
    n = max(min_steps, math.ceil(per_epoch * (max_epochs if epochs == "auto" else epochs)))
    if epochs == "auto":
        n = max(n, min_budget)
    return min(n, max_steps) if max_steps else n


def train_budget(t, n_data: int, epochs=None, min_budget: int | None = None) -> int:
    """budget_steps for a TrainConfig `t` on `n_data` examples (`epochs`, `min_budget`:
    instead of t's own; the loop trains one epoch when epochs auto has no validation)."""
    return budget_steps(n_data, t.batch_size * t.grad_accum, t.epochs if epochs is None else epochs,
                        t.max_epochs, t.min_steps, t.max_steps,
                        t.min_budget if min_budget is None else min_budget)


def schedule_position(step: int, total: int, elapsed: float, max_seconds: float) -> float:
    """Where in the lr schedule step `step` is: the step itself, or, under a seconds budget
    that will end before `total` steps, the share of the seconds spent, in steps.

    >>> schedule_position(10, 100, 5.0, 0.0), schedule_position(10, 100, 50.0, 100.0)
    (10, 50.0)
    """
    if not max_seconds:
        return step
    return max(step, min(1.0, elapsed / max_seconds) * total)


def out_of_seconds(elapsed: float, steps: int, max_seconds: float, setup: float = 0.0) -> bool:
    """A seconds budget ends at the last step that fits: stop when one more step, at the mean
    time per step so far (regular validations included; `setup`, the seconds before the first
    step, left out), would end past the budget. Checked after a step, so at least one runs.
    (Stopping only once past it overshot by the crossing step and a second validation right
    after a regular one: 378 s for the demo's 360.)

    >>> out_of_seconds(358.6, 250, 360.0), out_of_seconds(300.0, 250, 360.0)
    (True, False)
    >>> out_of_seconds(5.0, 1, 0.0), out_of_seconds(2.0, 1, 1e-6)
    (False, True)
    >>> out_of_seconds(10.8, 1, 15.0), out_of_seconds(10.8, 1, 15.0, setup=9.4)
    (True, False)
    """
    return bool(max_seconds) and elapsed + (elapsed - setup) / max(1, steps) > max_seconds


def lr_factor(step: float, total: int, warm: int, schedule: str) -> float:
    """Multiplier of the peak lr at `step`: linear warm-up, then the schedule's decay.

    >>> [round(lr_factor(s, 10, 2, "linear"), 2) for s in (0, 1, 5, 9)]
    [0.5, 1.0, 0.62, 0.12]
    >>> [round(lr_factor(s, 10, 2, "cosine"), 2) for s in (1, 6, 10)]
    [1.0, 0.38, 0.1]
    """
    if schedule == "linear":  # the loop's original rule, kept exactly
        return min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    frac = min(1.0, (step + 1 - warm) / max(1, total - warm))
    return 0.1 + 0.45 * (1 + math.cos(math.pi * frac))
