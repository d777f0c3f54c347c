"""`search:`: successive halving on validation data only, the chosen setting as the arm,
default vs searched in the report, and the search's cost counted."""

import json
import sqlite3

import pytest
from typer.testing import CliRunner

import tunelab.methods.search as search
from tests.conftest import write_config
from tunelab import TunelabError
from tunelab.cli.main import app
from tunelab.core.config import MethodConfig, from_dict
from tunelab.eval import evaluate
from tunelab.methods import finetune, load_config


@pytest.mark.parametrize("name, space, msg", [
    ("lora", {"lr": []}, "search.lr: must be a non-empty list of values"),
    ("lora", {"colour": [1]}, "search.colour: not a searchable setting of lora"),
    ("lora", {"schedule": ["sideways"]}, "search.schedule.schedule: unknown 'sideways'"),
    ("lora", {"k": [2]}, "search.k: not a searchable setting of lora"),  # few_shot's, not lora's
    ("few_shot", {"k": ["many"]}, "search.k.k: expected int"),
    ("few_shot", {"k": [0]}, "search.k.k: must be at least 1"),
])
def test_a_bad_search_space_is_one_line_naming_the_key(tmp_path, name, space, msg):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"methods": [{"name": "zero_shot"}, {"name": name, "search": space}]}))
    with pytest.raises(TunelabError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ") and msg in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_budget_shares_cut_steps_and_seconds():
    from tunelab.core.config import TrainConfig

    m, t = search.apply(MethodConfig(name="lora", search={"lr": [1e-3]}), TrainConfig(max_seconds=90),
                        {"lr": 1e-2, "lora_r": 4}, 1 / 3, n_train=96)
    # 8 epochs of 96 examples at batch 8 = 96 steps (a shorter rung's share is of the budget
    # without the 256-step min_budget floor); a third of it, and a third of the seconds,
    # validated only before and after (eval_every = the trial's steps)
    assert (t.lr, t.lora_r, t.max_steps, t.max_seconds, t.save) == (1e-2, 4, 32, 30.0, False)
    assert t.eval_every == 32
    assert m.search == {}
    _, full = search.apply(MethodConfig(name="lora"), TrainConfig(), {"lr": 1e-2}, 1.0, n_train=96)
    assert full.max_steps == 0 and full.save and full.eval_every == 0  # the last rung is the arm itself


def test_search_never_scores_a_test_example(tmp_path, tiny_model_dir, viggo_dir, monkeypatch):
    """Every candidate is scored on validation data (its validation loss, or validation
    examples for prompting); the test split is evaluated once per cell, for the arm."""
    seen_eval, seen_val = [], []
    real_eval, real_loop = evaluate.evaluate, finetune.train_loop

    def spy_eval(pred, task, examples, cfg, label="eval", start=0):
        seen_eval.append((label, {e.input for e in examples}))
        return real_eval(pred, task, examples, cfg, label, start)

    def spy_loop(model, tok, data, cfg, seed, label="train", on_step=None, val=None):
        seen_val.append({e.name for e in val or []})
        return real_loop(model, tok, data, cfg, seed, label, on_step, val)

    monkeypatch.setattr(evaluate, "evaluate", spy_eval)
    monkeypatch.setattr("tunelab.run.compute_cell.evaluate", spy_eval)
    monkeypatch.setattr("tunelab.run.sequential.evaluate", spy_eval)  # `tunelab run` scores in rounds
    monkeypatch.setattr(finetune, "train_loop", spy_loop)
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store,
                       "  - {name: few_shot, k: 1, train_sizes: [8]}\n"
                       "  - {name: few_shot, k: 2, train_sizes: [8], search: {k: [1, 2, 3]}}\n"
                       "  - {name: lora, train_sizes: [8]}\n"
                       "  - {name: lora, train_sizes: [8], search: {lr: [0.0001, 0.01], lora_r: [4, 8]}}\n")
    r = CliRunner().invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    from tunelab.core.config import TaskConfig
    from tunelab.tasks import get_task

    splits = get_task(TaskConfig(name="viggo", data_dir=str(viggo_dir), n_test=6)).load()
    test = {e.input for e in splits.test}
    val_ids = {e.id for e in splits.validation}
    assert sum(bool(ex & test) for _, ex in seen_eval) == 4  # once per cell, never in a search
    assert any(label.startswith("search") for label, _ in seen_eval)
    assert all(ids <= val_ids for ids in seen_val) and len(seen_val) == 1 + 4 + 2 + 1

    db = sqlite3.connect(store)
    rows = {lab: json.loads(info) for lab, info in db.execute("SELECT label, info FROM runs")}
    s = rows["lora searched"]["settings_search"]
    assert [t["rung"] for t in s["trace"]] == [0, 0, 0, 0, 1, 1, 2]
    # the rung that keeps one of its two candidates generates on validation (by the task
    # metric); the others rank by validation loss
    assert [t["deciding"] for t in s["trace"]] == [False] * 4 + [True] * 2 + [False]
    decided = [label for label, _ in seen_eval if label.startswith("search") and "lr" in label]
    assert len(decided) == 2 and "on the rung that picks" in s["scored_by"]
    assert s["chosen"] == s["trace"][-1]["setting"] and s["default_runs"] == pytest.approx(4 / 12 + 2 / 4 + 1)
    # The one-off cost is the whole search, not only the last run.
    assert rows["lora searched"]["train_seconds"] > rows["lora searched"]["final_train_seconds"]
    # 3 candidates: the best third is one, which goes straight to the whole budget
    shots = rows["few_shot searched"]["settings_search"]
    assert [t["share"] for t in shots["trace"]] == [1 / 12] * 3 + [1.0]
    # the whole-run rung of a prompting arm is the deciding rung's predictor: not re-scored
    assert len([label for label, _ in seen_eval if label.startswith("search {'k'")]) == 3
    assert shots["trace"][-1]["score"] == next(t["score"] for t in shots["trace"]
                                              if t["setting"] == shots["chosen"] and t["deciding"])
    # the random model scores every candidate alike on validation, so the search keeps
    # the arm's own k (2), not the first of the tied (1)
    assert shots["default"] == {"k": 2} and shots["chosen"] == {"k": 2}
    # (n: the fixture's whole validation split)
    assert shots["kept_default"]["leader"] == {"k": 1} and shots["kept_default"]["n"] == 6

    r = CliRunner().invoke(app, ["report", str(store), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    section = md.split("## Search: default vs searched")[1].split("\n## ")[0]
    assert "| lora searched n=8 |" in section and "| few_shot searched |" in section
    assert "not in this grid" not in section and section.count(" vs ") + section.count("within") >= 2
    assert "The search kept the default (k=2): k=1 led it by 0.0 points on 6 validation" in section


def test_default_setting_resolves_what_the_arm_runs_without_a_search():
    from tunelab.core.config import TrainConfig
    from tunelab.methods import get_spec, method_train
    from tunelab.methods.base import Context
    from tunelab.methods.search_run import default_setting

    def ctx(entry: dict) -> Context:
        m = from_dict(MethodConfig, entry, "m")
        from tunelab.core.config import RunConfig

        return Context(None, None, None, [], m, method_train(RunConfig(methods=[m]), m), 0, None,
                       settings=get_spec(m.name).settings_of(m))

    lora = ctx({"name": "lora", "search": {"lr": [1e-3], "lora_r": [8], "prompt": ["full"]}})
    assert default_setting(lora, lora.method.search) == {"lr": 2e-3, "lora_r": 16, "prompt": "short"}
    shots = ctx({"name": "few_shot", "k": 3, "search": {"k": [1], "prompt": ["short"]}})
    assert default_setting(shots, shots.method.search) == {"k": 3, "prompt": "full"}
    assert TrainConfig().lr is None  # resolved per method above, never matched as None
