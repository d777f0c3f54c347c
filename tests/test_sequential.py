"""Sequential evaluation: a grid stops scoring once the headline is decided, goes on when it
is not, stores how far it got; the look adjustment keeps the null's wrong verdicts at 5%."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import zlib
from pathlib import Path

import pytest

from tests.conftest import viggo_rows, write_config, write_csv
from tunelab.backends.generation import Generation
from tunelab.core.store import Store
from tunelab.decide.arms import load_arms
from tunelab.decide.sequential import rule, simulate
from tunelab.decide.verdict import recommend
from tunelab.eval.predictor import ChatPredictor
from tunelab.methods import METHODS, load_config
from tunelab.methods.base import MethodSpec, Prompted
from tunelab.report.build import build
from tunelab.report.json_results import arm
from tunelab.run.grid import run_grid

N_TEST = 60
BENCH = Path(__file__).parents[1] / "bench"
MARK = "ORACLE-ARM"


def _data(tmp_path: Path) -> Path:
    d = tmp_path / "viggo"
    d.mkdir(exist_ok=True)
    write_csv(d / "train.csv", viggo_rows("train", 24))
    write_csv(d / "validation.csv", viggo_rows("validation", 6))
    write_csv(d / "test.csv", viggo_rows("test", N_TEST))
    return d


def _right(arm: str, ref: str, rate: int) -> bool:
    """Whether an arm answers this example right: a fixed draw per (arm, example)."""
    return zlib.crc32(f"{arm}|{ref}".encode()) % 100 < rate


@pytest.fixture
def fake(monkeypatch):
    """An 'oracle' trained method (its prompts carry MARK) and a generator that answers the
    reference MR at a set rate per arm (tuned, prompted), so arms differ as a test wants."""
    mrs = {r["ref"]: r["mr"] for r in viggo_rows("test", N_TEST)}
    rates = {"tuned": 90, "prompted": 10}

    def build(ctx):
        return ChatPredictor(ctx.model, ctx.tok,
                             lambda ex: [{"role": "system", "content": MARK}, *ctx.task.turns(ex)])

    def generate(model, tok, prompts, max_new, batch_size=16, label="", one_line=False, **_):
        out = []
        for p in prompts:
            ref = next(r for r in mrs if r in p)
            arm = "tuned" if MARK in p else "prompted"
            text = mrs[ref] if _right(arm, ref, rates[arm]) else "inform(name[nothing])"
            out.append(Generation(text, 10, 5, 0.5))
        return out

    monkeypatch.setitem(METHODS, "oracle", MethodSpec("oracle", Prompted, True, True, build))
    monkeypatch.setattr("tunelab.backends.hf.generate", generate)  # what the local backend calls
    return rates


def _grid(tmp_path, model_dir, extra: str = "") -> Path:
    cfg = write_config(tmp_path / "c.yaml", model_dir, _data(tmp_path), tmp_path / "s.db",
                       "  - {name: zero_shot}\n  - {name: oracle, train_sizes: [8]}\n")
    text = cfg.read_text().replace("n_test: 6}", f"n_test: {N_TEST}}}")
    cfg.write_text(text.replace("bootstrap: 200}", f"bootstrap: 200, round_size: 10{extra}}}"))
    return cfg


def _scored(db: Path) -> dict[str, tuple[int, str]]:
    rows = sqlite3.connect(db).execute("SELECT method, info FROM runs WHERE status='done'")
    return {m: (json.loads(i)["n_scored"], json.loads(i).get("stopped")) for m, i in rows}


def test_a_clear_winner_stops_early_and_a_fixed_slice_run_scores_it_in_full(
        tmp_path, tiny_model_dir, fake):
    cfg = load_config(_grid(tmp_path, tiny_model_dir))
    run_grid(cfg, fail_fast=True, settle=rule)
    got = _scored(tmp_path / "s.db")
    assert {n for n, _ in got.values()} == {got["oracle"][0]} and got["oracle"][0] < N_TEST, got
    assert got["oracle"][1].startswith(f"the headline was decided after {got['oracle'][0]} examples")
    arms = load_arms(Store(tmp_path / "s.db"))
    assert {a.looks for a in arms} == {6} and {a.n_scored for a in arms} == {got["oracle"][0]}
    said = recommend(arms, "slot_f1")
    assert said[1].startswith("Recommendation: fine-tune (oracle n=8)"), said
    assert "look-adjusted 95% CI" in said[0] and any("up to 6 times" in x for x in said), said
    n = got["oracle"][0]
    md = build(tmp_path / "s.db", tmp_path / "report")[0].read_text()
    assert f"- oracle n=8: scored on {n} of {N_TEST} test examples; the headline was decided after {n}" in md
    assert "look-adjusted 95% CI" in md
    js = {a["method"]: a for a in map(arm, arms)}
    assert js["zero_shot"]["n_scored"] == n and js["zero_shot"]["stopped"].startswith("the headline")
    # the same store, a fixed-slice run: the cells stopped early are scored again in full
    fixed = load_config(_grid(tmp_path, tiny_model_dir, ", sequential: false"))
    run_grid(fixed, fail_fast=True, settle=rule)
    assert {n for n, _ in _scored(tmp_path / "s.db").values()} == {N_TEST}


def test_equal_arms_are_scored_on_the_whole_slice(tmp_path, tiny_model_dir, fake):
    fake.update(tuned=50, prompted=50)  # different examples right, the same rate: undecided
    run_grid(load_config(_grid(tmp_path, tiny_model_dir)), fail_fast=True, settle=rule)
    got = _scored(tmp_path / "s.db")
    assert got == {m: (N_TEST, "test slice used up") for m in ("zero_shot", "oracle")}, got


def test_without_a_rule_or_with_one_round_nothing_is_adjusted(tmp_path, tiny_model_dir, fake):
    # a slice no larger than a round: one look, the verdict exactly as a fixed slice gives it
    cfg = load_config(_grid(tmp_path, tiny_model_dir))
    cfg.eval.round_size = N_TEST
    run_grid(cfg, fail_fast=True, settle=rule)
    one = load_arms(Store(tmp_path / "s.db"))
    assert {a.looks for a in one} == {1}
    said = recommend(one, "slot_f1")
    assert "look-adjusted" not in " ".join(said) and "(95% CI" in said[0], said
    md = build(tmp_path / "s.db", tmp_path / "report")[0].read_text()
    assert "Sequential evaluation" not in md and "scored on" not in md


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_the_null_simulation_declares_a_winner_at_most_5_percent_of_the_time(kind):
    # Break check: with adjust=False (every look at the plain 95% interval) the same draws
    # give about 14% wrong verdicts (Armitage et al. 1969), so this fails
    got = simulate(kind, 0.0, n=100, round_size=20, draws=300, seed=1)
    assert got["wrong"] <= 0.05, got
    unadjusted = simulate(kind, 0.0, n=100, round_size=20, draws=300, seed=1, adjust=False)
    assert unadjusted["wrong"] > 0.05, unadjusted  # the simulation can see the inflation


def test_a_large_difference_stops_well_before_the_slice_ends():
    got = simulate("binary", 0.4, n=100, round_size=20, draws=40, seed=2)
    assert got["better"] >= 0.95 and got["examples_mean"] <= 60, got


def test_replaying_a_fixed_slice_store_stops_where_a_sequential_run_does(tmp_path, tiny_model_dir, fake):
    spec = importlib.util.spec_from_file_location("bench_sequential", BENCH / "sequential.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = _grid(tmp_path, tiny_model_dir, ", sequential: false")
    run_grid(load_config(path), fail_fast=True, settle=rule)
    assert {n for n, _ in _scored(tmp_path / "s.db").values()} == {N_TEST}
    figures, per = bench.replay(str(tmp_path / "s.db"), str(path))
    live = load_config(_grid(tmp_path, tiny_model_dir))
    live.store = str(tmp_path / "live.db")
    run_grid(live, fail_fast=True, settle=rule)
    stopped = {n for n, _ in _scored(tmp_path / "live.db").values()}
    assert stopped == {figures["stopped_after"]} and figures["stopped_after"] < N_TEST, (stopped, figures)
    left = N_TEST - figures["stopped_after"]
    assert figures["examples_saved"] == 2 * left and figures["examples_total"] == 2 * N_TEST
    assert figures["eval_seconds_saved"] == pytest.approx(2 * left * 0.5)  # the fake's latency
    assert figures["why"].startswith("the headline was decided") and len(per) == 2


def test_a_run_that_dies_between_rounds_keeps_what_it_scored(tmp_path, tiny_model_dir, fake, monkeypatch):
    fake.update(tuned=50, prompted=50)  # undecided after round 1: a second round starts
    import tunelab.backends.hf as ev  # what the local backend calls

    calls, real = [], ev.generate

    def dies_in_round_two(*a, **kw):
        calls.append(1)
        if len(calls) == 3:  # both cells scored their first round and were stored
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(ev, "generate", dies_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        run_grid(load_config(_grid(tmp_path, tiny_model_dir)), fail_fast=True, settle=rule)
    got = _scored(tmp_path / "s.db")
    why = "the run ended after 10 examples, before the headline was decided"
    assert got == {"zero_shot": (10, why), "oracle": (10, why)}, got
    # resumed, the cells left between rounds are scored on until the headline is decided or
    # the slice is used up: a resumed GSM8k run once drew its verdict on the 20 examples its
    # prompted arms were scored on before a crash, its split holding 50
    monkeypatch.setattr(ev, "generate", real)
    run_grid(load_config(_grid(tmp_path, tiny_model_dir)), fail_fast=True, settle=rule)
    got = _scored(tmp_path / "s.db")
    assert got == {m: (N_TEST, "test slice used up") for m in ("zero_shot", "oracle")}, got


def test_a_rerun_of_a_cell_stopped_early_scores_the_examples_it_was_scored_on(
        tmp_path, tiny_model_dir, fake):
    # `tunelab rerun` scored the whole slice (60) against a cell stored on the first 10-50:
    # every metric differed and a reproduced run read "NOT reproduced"
    from tunelab.run.rerun import rerun

    run_grid(load_config(_grid(tmp_path, tiny_model_dir)), fail_fast=True, settle=rule)
    n = _scored(tmp_path / "s.db")["oracle"][0]
    assert n < N_TEST
    cell = next(r for r in Store(tmp_path / "s.db").runs("done") if r["method"] == "oracle")
    got = rerun(str(tmp_path / "s.db"), cell["id"], tmp_path / "re")
    assert got.predictions_total == n and got.identical, got


def test_trained_copies_that_would_not_fit_in_memory_fall_back_to_the_whole_slice(
        tmp_path, tiny_model_dir, fake, monkeypatch, capsys):
    # lockstep rounds keep every trained cell's copy of the weights until the last round:
    # ten trained arms of a 1B model are ten copies. Where they would not fit, each arm is
    # scored in full one after another, and the run says why
    cfg = _grid(tmp_path, tiny_model_dir)
    cfg.write_text(cfg.read_text().replace("train_sizes: [8]", "train_sizes: [4, 8]"))
    monkeypatch.setattr("tunelab.run.sequential.free_bytes", lambda model: 2**20)  # 1 MiB free
    run_grid(load_config(cfg), fail_fast=True, settle=rule)
    said = capsys.readouterr()
    assert "sequential evaluation would hold 2 trained copies of the weights at once" in said.out + said.err
    s = Store(tmp_path / "s.db")
    assert {len(s.predictions(r["id"])) for r in s.runs("done")} == {N_TEST}
    assert len(s.runs("done")) == 3
