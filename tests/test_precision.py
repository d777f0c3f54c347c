"""Training precision: decided by measuring the machine, checked against fp32's loss,
recorded with the run; bf16 autocast trains to the same place as fp32."""

import copy

import pytest

from tunelab.backends.prompt import messages
from tunelab.core.config import TrainConfig
from tunelab.train import loop as train
from tunelab.train import precision
from tunelab.train.loop import encode, train_loop


def _data(tok, n=8):
    return [encode(tok, messages("Convert.", f"Game number {i} is fun."),
                   f"inform(name[Game {i}], rating[good])", 256, f"ex{i}") for i in range(n)]


def _trainable(model):
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def test_bf16_autocast_trains_like_fp32_and_is_recorded(tiny):
    model, tok = tiny
    data = _data(tok)
    runs = {}
    for prec in ("fp32", "bf16"):
        cfg = TrainConfig(batch_size=4, lr=3e-3, epochs=3, precision=prec)
        runs[prec] = train_loop(_trainable(model), tok, data, cfg, seed=0)
    assert runs["fp32"].precision == "fp32" and runs["bf16"].precision == "bf16"
    assert runs["bf16"].precision_reason == "set in the config"
    # bf16 rounds (the losses differ), but follows the same trajectory.
    assert runs["bf16"].losses != runs["fp32"].losses
    assert runs["bf16"].losses == pytest.approx(runs["fp32"].losses, rel=0.05)
    assert runs["bf16"].losses[-1] < 0.85 * runs["bf16"].losses[0]


def _decide(monkeypatch, cache, bf16_s, fp32_s=1.0):
    precision._measured.cache_clear()
    monkeypatch.setenv("TUNELAB_CACHE", str(cache))
    monkeypatch.setattr(precision, "_block_seconds",
                        lambda prec, *a, **k: bf16_s if prec == "bf16" else fp32_s)
    return precision.choose("auto", 8, 32)


def test_auto_picks_bf16_only_where_measured_faster(monkeypatch, tmp_path):
    assert _decide(monkeypatch, tmp_path / "fast", 0.5).precision == "bf16"
    slow = _decide(monkeypatch, tmp_path / "slow", 500.0)
    assert slow.precision == "fp32" and "slower" in slow.reason
    assert _decide(monkeypatch, tmp_path / "meh", 0.9).precision == "fp32"  # 1.1x: not worth it
    precision._measured.cache_clear()


def test_the_decision_is_kept_per_machine(monkeypatch, tmp_path):
    """A busy moment must not flip a later run (or a resumed grid's next cell) to the
    other precision: the first measurement on a machine is the decision."""
    first = _decide(monkeypatch, tmp_path, 0.5)
    again = _decide(monkeypatch, tmp_path, 500.0)  # the same machine, timed while busy
    assert first.precision == again.precision == "bf16" and "cached" in again.reason
    assert _decide(monkeypatch, tmp_path / "other", 500.0).precision == "fp32"
    precision._measured.cache_clear()


def test_auto_falls_back_to_fp32_when_the_bf16_loss_drifts(tiny, monkeypatch):
    model, tok = tiny
    monkeypatch.setattr(train, "choose", lambda *a: precision.Decision("bf16", "measured faster"))
    cfg = TrainConfig(batch_size=4, lr=3e-3, epochs=1, precision="auto")
    kept = train_loop(_trainable(model), tok, _data(tok), cfg, seed=0)
    assert kept.precision == "bf16" and "vs fp32" in kept.precision_reason
    monkeypatch.setattr(train, "loss_agrees", lambda a, b: False)
    drift = train_loop(_trainable(model), tok, _data(tok), cfg, seed=0)
    assert drift.precision == "fp32" and "drifts" in drift.precision_reason
