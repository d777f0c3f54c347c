"""Validation-driven training: early stopping, the best checkpoint restored, budgets, and
the convergence flags an undertrained arm must carry."""

import copy

import pytest
import torch

from tunelab import TunelabError
from tunelab.backends.prompt import messages
from tunelab.core.config import TrainConfig
from tunelab.methods import load_config
from tunelab.train.loop import Shard, encode, train_loop, validation_loss
from tunelab.train.stopping import trial


def _pairs(tok, n, answer, offset=0):
    return [encode(tok, messages("Convert.", f"Game number {i + offset} is fun."),
                   f"inform(name[Game {i + offset}], rating[{answer}])", 256, f"{answer}{i}")
            for i in range(n)]


def _val_loss(model, tok, val):
    total, n = validation_loss(Shard(model), val, tok.pad_token_id, 640)
    return total / n


def test_early_stop_restores_the_best_weights(tiny):
    """Validation wants the opposite answer from training: its loss rises after a few
    steps, training stops `patience` evaluations after the best, and the model left
    behind scores the best validation loss, not the last one."""
    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    train = _pairs(tok, 8, "good")
    val = [encode(tok, messages("Convert.", f"Game number {i} is fun."), "Sorry, no.", 256, f"v{i}")
           for i in range(4)]
    cfg = TrainConfig(batch_size=8, lr=3e-3, eval_every=1, patience=2, max_steps=40, max_epochs=40)
    stats = train_loop(m, tok, train, cfg, seed=0, val=val)
    assert stats.stop_reason == "early_stop" and stats.steps < 40
    best = min(range(len(stats.val_losses)), key=stats.val_losses.__getitem__)
    assert stats.best_step == stats.val_steps[best]
    assert len(stats.val_losses) - 1 - best == 2  # stopped at exactly `patience` after it
    assert stats.val_losses[-1] > stats.val_losses[best]
    assert _val_loss(m, tok, val) == pytest.approx(stats.val_losses[best], rel=1e-4)


def test_budget_end_while_still_improving_is_flagged(tiny, capsys):
    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    train, val = _pairs(tok, 8, "good"), _pairs(tok, 4, "good", offset=100)
    cfg = TrainConfig(batch_size=8, lr=3e-3, eval_every=2, max_steps=6)
    stats = train_loop(m, tok, train, cfg, seed=0, val=val)
    assert stats.steps == 6 and stats.stop_reason == "budget"
    assert stats.val_steps == [0, 2, 4, 6]
    assert stats.converged is False and "still falling" in stats.convergence_note
    assert "did not converge" in capsys.readouterr().err
    # a search's shorter rung stops at its share of the budget by design: flagged, not warned
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    with trial():
        stats = train_loop(m, tok, train, cfg, seed=0, val=val)
    assert stats.converged is False
    assert "did not converge" not in capsys.readouterr().err


def test_a_small_training_set_gets_the_budget_floor_not_max_epochs(tiny):
    # 8 examples at batch 8 are 1 step an epoch: max_epochs 3 alone would stop at 3 steps
    # while the loss still falls; the floor lets it train 12 (and 3 without the floor)
    model, tok = tiny
    train, val = _pairs(tok, 8, "good"), _pairs(tok, 4, "good", offset=100)
    steps = {}
    for floor in (12, 0):
        m = copy.deepcopy(model)
        for p in m.parameters():
            p.requires_grad_(True)
        cfg = TrainConfig(batch_size=8, lr=3e-3, eval_every=1, patience=50, max_epochs=3,
                          min_budget=floor)
        steps[floor] = train_loop(m, tok, train, cfg, seed=0, val=val).steps
    assert steps == {12: 12, 0: 3}


def test_an_arm_that_barely_moved_is_flagged(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    cfg = TrainConfig(batch_size=8, lr=1e-9, eval_every=1, patience=2, max_steps=8)
    stats = train_loop(m, tok, _pairs(tok, 8, "good"), cfg, seed=0, val=_pairs(tok, 4, "good", 100))
    assert stats.converged is False and "barely moved" in stats.convergence_note


def test_without_validation_auto_trains_one_epoch(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    stats = train_loop(m, tok, _pairs(tok, 16, "good"), TrainConfig(batch_size=4), seed=0)
    assert stats.steps == 4 and stats.stop_reason == "no_validation" and stats.converged is None


def test_seconds_budget_stops_training(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    cfg = TrainConfig(batch_size=8, lr=1e-3, max_seconds=1e-6, max_steps=50)
    stats = train_loop(m, tok, _pairs(tok, 8, "good"), cfg, seed=0, val=_pairs(tok, 2, "good", 100))
    assert stats.steps == 1 and stats.stop_reason == "budget"


@pytest.mark.parametrize("budget, steps, val_steps", [
    (20.0, 10, [0, 4, 8, 10]),  # stops at the last step that fits (the old rule: 12 steps, 24 s)
    (18.5, 8, [0, 4, 8]),  # step 8's validation used the room: no step 9, no second validation
    (6.0, 3, [0, 3]),  # the step-0 validation is not counted as a step's time (else: 1 step)
])
def test_seconds_budget_ends_at_the_last_step_that_fits(tiny, monkeypatch, budget, steps, val_steps):
    """On a fake clock (a step costs 1 s, a validation 3 s), training under `max_seconds`
    ends within the budget plus its final validation, never one step and one more
    validation past it."""
    import types

    import tunelab.train.loop as tr

    model, tok = tiny
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    clock = [0.0]

    def ticking(fn, seconds):
        def run(*a, **k):
            clock[0] += seconds
            return fn(*a, **k)
        return run

    monkeypatch.setattr(tr, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(tr, "accumulate", ticking(tr.accumulate, 1.0))
    monkeypatch.setattr(tr, "validation_loss", ticking(tr.validation_loss, 3.0))
    cfg = TrainConfig(batch_size=2, lr=1e-3, eval_every=4, patience=50, max_steps=50,
                      max_seconds=budget)
    stats = train_loop(m, tok, _pairs(tok, 8, "good"), cfg, seed=0, val=_pairs(tok, 2, "good", 100))
    assert (stats.steps, stats.val_steps, stats.stop_reason) == (steps, val_steps, "budget")
    assert clock[0] <= budget + 3.0  # the final validation is the only overrun


@pytest.mark.parametrize("bad, msg", [("epochs: some", "epochs: must be a number >= 0 or 'auto'"),
                                      ("schedule: cyclic", "schedule: unknown 'cyclic'"),
                                      ("patience: -1", "patience: must be at least 0"),
                                      ("min_budget: -5", "min_budget: must be at least 0")])
def test_bad_training_settings_name_file_and_key(tmp_path, bad, msg):
    path = tmp_path / "c.yaml"
    path.write_text(f"methods:\n  - {{name: lora, train: {{{bad}}}}}\n")
    with pytest.raises(TunelabError, match=f"{path}: methods.lora.train.{msg}"):
        load_config(path)


def test_a_grid_cell_stores_its_validation_curve(tmp_path, tiny_model_dir, viggo_dir):
    import json
    import sqlite3

    from typer.testing import CliRunner

    from tests.conftest import write_config
    from tunelab.cli.main import app

    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store,
                       "  - {name: lora, train_sizes: [8], train: {eval_every: 1, max_steps: 4}}\n")
    r = CliRunner().invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    info = json.loads(sqlite3.connect(store).execute("SELECT info FROM runs").fetchone()[0])
    assert info["val_steps"] == [0, 1, 2, 3, 4] and len(info["val_losses"]) == 5
    assert info["stop_reason"] in ("budget", "early_stop") and "converged" in info
    assert torch.isfinite(torch.tensor(info["val_losses"])).all()


def test_a_stored_curve_is_judged_by_the_current_rule():
    """The prompt tuning arm of configs/alternatives.yaml (2026-12-02) ran out of its 420 s
    one step after an evaluation: 1.385 -> 1.376 over that step is under 1%, and it was
    stored as converged, but over the last whole interval (6 steps) the loss fell 3.2%.
    The report judges the stored curve, so the corrected rule reaches stored runs."""
    from tunelab.decide.arms import judged as judged_info
    from tunelab.eval.predictor import PredictorInfo

    def judged(stored: dict):  # as read back from the store
        return judged_info(PredictorInfo.from_json(stored))

    info = {"converged": True, "convergence_note": None, "stop_reason": "budget",
            "val_steps": [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60, 61],
            "val_losses": [3.401, 2.460, 2.077, 2.133, 1.893, 1.715, 1.585, 1.515, 1.462,
                           1.422, 1.385, 1.376]}
    converged, note = judged(info)
    assert converged is False and "1.376 at step 61 vs 1.422 at step 54" in note
    # levelled off: the same tail under 1% over a whole interval is converged
    flat = {**info, "val_losses": info["val_losses"][:-3] + [1.462, 1.458, 1.457]}
    assert judged(flat) == (True, None)
    # a run trained in stages is judged on each (the SFT stage of sft+dpo ran out of time)
    staged = {"stages": [{**info, "stage": "sft on task"}, {"stage": "dpo"}], "train_steps": 4}
    assert judged(staged)[1].startswith("its sft on task stage: validation loss still falling")
    # stored before curves were kept: the stored flag
    assert judged({"converged": False, "convergence_note": "x"}) == (False, "x")


def test_a_plateau_brings_the_best_weights_back_and_cuts_the_lr():
    """train.plateau_drops: at `patience` evaluations without a new best the best weights
    come back and the lr is cut by DROP (patience counting again from there), 3 times;
    the next plateau stops."""
    from tunelab.train.stopping import DROP, Stopper

    model = torch.nn.Linear(2, 2)
    script = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.45, 0.5, 0.5, 0.5, 0.46, 0.47, 0.48, 0.49, 0.49, 0.49])
    s = Stopper(model, ["v"], lambda items: (next(script), 1), every=1, patience=3, early=True,
                drops=3)
    scales, stops, weights = [], [], {}
    for step in range(15):
        with torch.no_grad():
            model.weight.fill_(float(step))  # the weights "at" this evaluation
        s.evaluate(step)
        stops.append(s.should_stop())
        scales.append(round(s.scale, 4))
        weights[step] = float(model.weight.detach()[0, 0])
    # plateau after the best at step 1 (steps 2-4 worse): step 1's weights back, lr x0.3
    assert weights[4] == 1.0 and scales[4] == DROP and not stops[4]
    # step 5 is a new best; 6-8 are not: weights of step 5, lr x0.09
    assert weights[8] == 5.0 and scales[8] == round(DROP ** 2, 4)
    # 9-11 after the drop at 8 (none beats 0.45): third drop at 11, then the next plateau stops
    assert scales[11] == round(DROP ** 3, 4) and stops.index(True) == 14
    # with drops, bests that creep by under MIN_GAIN do not reset patience (the best is still
    # kept): a drop at step 4 brings step 3's weights back, the next creeping plateau stops
    script = iter([1.0, 0.5, 0.499, 0.498, 0.499, 0.497, 0.496, 0.495, 0.494])
    s = Stopper(model, ["v"], lambda items: (next(script), 1), every=1, patience=3, early=True,
                drops=1)
    stops, weights = [], {}
    for step in range(9):
        with torch.no_grad():
            model.weight.fill_(float(step))
        s.evaluate(step)
        stops.append(s.should_stop())
        weights[step] = float(model.weight.detach()[0, 0])
    assert weights[4] == 3.0 and s.scale == DROP and stops.index(True) == 7
    # without drops, the first plateau stops
    script = iter([1.0, 0.5, 0.6, 0.7, 0.8])
    s = Stopper(model, ["v"], lambda items: (next(script), 1), every=1, patience=3, early=True)
    assert [s.evaluate(i) is None or s.should_stop() for i in range(5)] == [False] * 4 + [True]


def test_the_loop_trains_on_at_a_cut_lr_after_a_plateau(tiny, monkeypatch):
    """The early-stop setup above (validation wants the other answer) with 3 plateau drops:
    instead of stopping at the first plateau the loop goes on at 0.3x the lr (then
    0.09x, 0.027x), and the best weights are still the ones left behind."""
    model, tok = tiny
    lrs = []
    real = torch.optim.AdamW.step

    def spy(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    train = _pairs(tok, 8, "good")
    val = [encode(tok, messages("Convert.", f"Game number {i} is fun."), "Sorry, no.", 256, f"v{i}")
           for i in range(4)]
    runs = {}
    for drops in (0, 3):
        m = copy.deepcopy(model)
        for p in m.parameters():
            p.requires_grad_(True)
        cfg = TrainConfig(batch_size=8, lr=3e-3, eval_every=1, patience=2, max_steps=200, max_epochs=200,
                          plateau_drops=drops, warmup_ratio=0.0, schedule="constant")
        lrs.clear()
        runs[drops] = (train_loop(m, tok, train, cfg, seed=0, val=val), list(lrs), m)
    (cos, _, _), (plat, plat_lrs, m) = runs[0], runs[3]
    assert cos.stop_reason == plat.stop_reason == "early_stop"
    cuts = sorted({round(lr / 3e-3, 4) for lr in plat_lrs})
    assert cuts == [0.027, 0.09, 0.3, 1.0]
    best = min(range(len(plat.val_losses)), key=plat.val_losses.__getitem__)
    assert _val_loss(m, tok, val) == pytest.approx(plat.val_losses[best], rel=1e-4)
