"""Your own data, the first hour: init -> config -> run on the tiny model; scoring chosen from
the data; shortfall warnings; results on stdout, logs on stderr; --json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.core.config import TaskConfig
from tunelab.methods import load_config
from tunelab.tasks import get_task

runner = CliRunner()
SHIPPED = Path("examples/viggo_acts.jsonl")


def _init(tmp_path: Path, data: Path = SHIPPED, name: str = "c.yaml") -> tuple[Path, object]:
    cfg = tmp_path / name
    r = runner.invoke(app, ["init", str(data), "-o", str(cfg)])
    return cfg, r


def test_your_data_yaml_is_what_init_writes_and_loads():
    """The template is tested: it validates, and it is exactly init's output for the shipped
    file (so the template and `tunelab init` cannot drift apart)."""
    cfg = load_config("configs/your_data.yaml")
    assert cfg.task.name == "jsonl" and cfg.task.train == str(SHIPPED) and cfg.task.scoring == "auto"
    text = Path("configs/your_data.yaml").read_text()
    from tunelab.data.init_config import inspect_file, render
    from tunelab.methods import default_lrs

    assert render(inspect_file(SHIPPED), "configs/your_data.yaml", default_lrs()) == text
    # every key that takes a value says what it does
    keyed = [line for line in text.splitlines() if re.match(r"\s*-? ?\{?\w+: \S", line)]
    assert len(keyed) >= 15 and all("#" in line for line in keyed), [x for x in keyed if "#" not in x]
    # no lr is written: every method trains at its own default (a config-wide 1e-3 would be 20x
    # too high for full fine-tuning and 30x too low for a soft prompt)
    from tunelab.core.config import MethodConfig
    from tunelab.methods import METHODS, method_train

    for name in ("lora", "full", "prompt_tuning"):
        assert method_train(cfg, MethodConfig(name=name)).lr == METHODS[name].lr


def _tiny_config(tmp_path: Path, init_cfg: Path, model: Path) -> Path:
    """init's config with only the model and where results go changed (the real model is
    not for tests)."""
    text = init_cfg.read_text()
    text = text.replace("name: smollm2-135m", f"name: '{model}'")
    text = re.sub(r"store: \S+", f"store: '{tmp_path / 'runs' / 's.db'}'", text)
    text = re.sub(r"out_dir: \S+", f"out_dir: '{tmp_path / 'runs'}'", text)
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def test_init_config_runs_classification_end_to_end(tmp_path, tiny_model_dir):
    init_cfg, r = _init(tmp_path)
    assert r.exit_code == 0, r.output
    assert "scoring: classification" in r.stdout and "splits (split_fraction 0.2" in r.stdout
    cfg = _tiny_config(tmp_path, init_cfg, tiny_model_dir)
    assert len(init_cfg.read_text().splitlines()) == len(cfg.read_text().splitlines())

    run = runner.invoke(app, ["run", str(cfg)])
    assert run.exit_code == 0, run.output
    # results on stdout, progress and logs on stderr
    table = "| arm | label_match (95% CI) | macro_f1 | training |"  # not a tty: markdown, compact
    assert table in run.stdout and "Recommendation" in run.stdout
    assert "report: " in run.stdout and "report.html" in run.stdout
    assert "cells" in run.stderr and table not in run.stderr
    assert "scoring: classification" in run.stderr
    rep = tmp_path / "runs" / "report"
    md = (rep / "report.md").read_text()
    assert "Scoring: **classification**" in md
    assert "## Classification (" in md and "| inform |" in md and "![confusion matrix](confusion.png)" in md
    assert (rep / "confusion.png").stat().st_size > 1000 and (rep / "losses.png").exists()
    assert "| label_match |" not in md.split("## Results")[0]
    html = (rep / "report.html").read_text()
    assert 'alt="confusion matrix"' in html and 'alt="training and validation loss"' in html
    # every arm's predictions side by side
    side = md.split("## Example predictions")[1].split("\n## ")[0]
    header = side.splitlines()[2]
    for arm in ("zero_shot", "few_shot", "lora n=100", "lora n=128"):
        assert arm in header, header

    again = runner.invoke(app, ["run", str(cfg), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["primary"] == "label_match" and data["scoring"]["kind"] == "classification"
    assert {a["label"] for a in data["arms"]} == {"zero_shot", "few_shot", "lora"}
    assert all("macro_f1" in a["metrics"] for a in data["arms"])
    assert Path(data["report"]["html"]).exists()

    store = str(tmp_path / "runs" / "s.db")
    ls = runner.invoke(app, ["ls", "--store", store, "--json"])
    runs = json.loads(ls.stdout)
    assert len(runs) == 4 and {r["status"] for r in runs} == {"done"}
    zs = next(r for r in runs if r["method"] == "zero_shot")
    show = json.loads(runner.invoke(app, ["show", zs["id"], "--store", store, "--json"]).stdout)
    assert show["metrics"]["label_match"]["lo"] <= show["metrics"]["label_match"]["mean"]
    # sequential evaluation (the default) may stop before the 40th test example: all it scored is kept
    n = show["info"]["n_scored"]
    assert n in (20, 40) and len(show["predictions"]) == n
    assert show["config"]["cell"]["scoring"]["kind"] == "classification"
    # the zero-shot prompt gives the label set, so the model can answer a label
    prompt = show["info"]["prompts"][0]
    for label in ("inform", "request_attribute", "verify_attribute", "give_opinion"):
        assert label in prompt


def _write_jsonl(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs))
    return path


LABELS = ["positive", "negative", "neutral"]


def _label_file(tmp_path, n=60) -> Path:
    return _write_jsonl(tmp_path / "labels.jsonl",
                        [(f"review number {i} of a product", LABELS[i % 3]) for i in range(n)])


def _text_file(tmp_path, n=60) -> Path:
    return _write_jsonl(tmp_path / "text.jsonl",
                        [(f"question {i}", f"a long free text answer number {i} with details")
                         for i in range(n)])


def test_label_set_is_in_the_zero_shot_prompt(tmp_path, tiny):
    from tunelab.core.config import EvalConfig, MethodConfig, TrainConfig
    from tunelab.eval.predictor import prompt_text
    from tunelab.methods import get_method
    from tunelab.methods.base import Context

    task = get_task(TaskConfig(name="jsonl", train=str(_label_file(tmp_path)), n_test=5))
    s = task.load()
    model, tok = tiny
    ctx = Context(model, tok, task, [], MethodConfig(name="zero_shot"), TrainConfig(), 0, tmp_path,
                  eval_cfg=EvalConfig())
    prompt = prompt_text(get_method("zero_shot")(ctx), s.test[0])
    assert all(label in prompt for label in LABELS), prompt
    assert task.primary == "label_match" and "macro_f1" in task.corpus_metrics


def test_scoring_follows_the_data_and_the_override(tmp_path):
    text = get_task(TaskConfig(name="jsonl", train=str(_text_file(tmp_path))))
    text.load()
    # 9-word answers: long free text, scored by overlap and meaning, not exact match
    assert text.scoring.kind == "long_text" and text.primary == "rouge_l" and not text.corpus_metrics
    assert text.metric_names == ["rouge_l", "token_f1", "semantic_sim", "exact_match"]
    assert "60" not in text.instruction and "distinct completions" in text.scoring.why
    assert "average 9.0 words" in text.scoring.why and "more than 5 words is long_text" in text.scoring.why
    forced = get_task(TaskConfig(name="jsonl", train=str(_label_file(tmp_path)), scoring="text"))
    forced.load()
    assert forced.scoring.kind == "text" and forced.primary == "exact_match"
    assert "set in the config" in forced.scoring.why
    # a user instruction is kept; scoring still classification
    own = get_task(TaskConfig(name="jsonl", train=str(_label_file(tmp_path)), instruction="Mine."))
    own.load()
    assert own.instruction == "Mine." and own.primary == "label_match"


def test_unknown_scoring_names_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: {name: jsonl, train: x.jsonl, scoring: labels}\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 2
    assert "task.scoring: unknown 'labels'" in r.stderr and "classification" in r.stderr


def test_warning_when_a_split_is_smaller_than_asked(tmp_path, tiny_model_dir):
    data = _label_file(tmp_path, 60)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"task: {{name: jsonl, train: '{data}', n_test: 50}}\n"
        f"model: {{name: '{tiny_model_dir}'}}\neval: {{batch_size: 8, max_new_tokens: 2, bootstrap: 50}}\n"
        f"store: '{tmp_path / 's.db'}'\nout_dir: '{tmp_path}'\n"
        "methods: [{name: zero_shot}, {name: few_shot, k: 2, train_sizes: [500]}]\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "warning: task.n_test: 50 asked, but the test split has 6 examples; evaluating on 6" in r.stderr
    assert ("methods.few_shot.train_sizes: 500 asked, but the training split has 49 examples; "
            "that cell uses 49") in r.stderr


def test_init_on_messages_csv_and_bad_files(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"tell me about item {i}"},
        {"role": "assistant", "content": f"item {i} is a thing with many words in its answer"}]}) + "\n"
        for i in range(30)))
    cfg, r = _init(tmp_path, chat)
    assert r.exit_code == 0, r.output
    assert "format messages" in r.stdout and "scoring: long_text" in r.stdout  # 11-word answers
    assert yaml.safe_load(cfg.read_text())["task"]["train"] == str(chat)

    csv = tmp_path / "l.csv"
    csv.write_text("text,label\n" + "".join(f"thing {i},{LABELS[i % 3]}\n" for i in range(40)))
    cfg2, r = _init(tmp_path, csv, "l.yaml")
    assert r.exit_code == 0 and "format label" in r.stdout and "scoring: classification" in r.stdout
    assert load_config(cfg2).task.train == str(csv)

    again = runner.invoke(app, ["init", str(csv), "-o", str(cfg2)])
    assert again.exit_code == 2 and "already exists" in again.stderr
    few = _write_jsonl(tmp_path / "few.jsonl", [("a", "b")] * 3)
    r = runner.invoke(app, ["init", str(few), "-o", str(tmp_path / "few.yaml")])
    assert r.exit_code == 2 and "3 usable records, need at least 10" in r.stderr
    assert not (tmp_path / "few.yaml").exists()


def test_tasks_on_stdout_with_config_keys():
    r = runner.invoke(app, ["tasks"])
    assert "sql" in r.stdout and "jsonl" in r.stdout and r.stderr == ""
    one = runner.invoke(app, ["tasks", "jsonl"])
    assert one.exit_code == 0
    assert "scoring [auto]: jsonl task: auto" in one.stdout
    assert "split_fraction [0.1]: Fraction of examples" in one.stdout
    assert "n_test [100]:" in one.stdout


@pytest.mark.parametrize("targets,kind", [
    (["yes", "no"] * 5, "classification"),
    (["yes", "no", "maybe"] + ["yes", "no"] * 5, "text"),  # 'maybe' seen once
    ([f"label{i}" for i in range(51)] * 2, "text"),  # more than 50 values
    (["one two three four five six", "no"] * 5, "text"),  # six words
    ([f"label{i}" for i in range(50)] * 2, "classification"),
])
def test_label_rule(targets, kind):
    from tunelab.data.scoring import choose

    assert choose(targets).kind == kind


def test_classification_scoring_enters_the_cell_key():
    """Cells scored as classification (new prompt, new metrics) never resume from a store
    whose cells were scored as text; other tasks keep their keys."""
    from tunelab.core.config import RunConfig
    from tunelab.run.cells import cells

    cfg = RunConfig(task=TaskConfig(name="jsonl", train="x.jsonl"))
    assert cells(cfg, 10)[0].key == cells(cfg, 10, "text")[0].key
    assert cells(cfg, 10)[0].key != cells(cfg, 10, "classification")[0].key
    assert cells(cfg, 10)[0].key != cells(cfg, 10, "long_text")[0].key  # new metrics


def test_long_free_text_gets_metrics_that_move(tmp_path):
    """Alpaca-like answers: init chooses ROUGE-L first and says why in the config; the task
    scores meaning with the packaged sentence encoder, so a paraphrase beats a wrong answer
    where exact match gives both 0."""
    from tunelab.data.readers import Example

    out = "Item {} is a small red box made of wood, used to store letters."
    recs = [{"instruction": f"Describe item {i}.", "input": "", "output": out.format(i)} for i in range(40)]
    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps(recs))
    cfg, r = _init(tmp_path, data)
    assert r.exit_code == 0, r.output
    text = cfg.read_text()
    assert "auto decides here: long_text" in text and "# metric: rouge_l" in text
    assert "more than 5 words is long_text" in " ".join(text.replace("#", " ").split())
    task = get_task(load_config(cfg).task)
    task.load()
    assert task.primary == "rouge_l"
    ref = "The capital of France is Paris, a large city on the Seine."
    ex = [Example("q", ref, id=str(i)) for i in range(2)]
    right, wrong = task.score_all(["Paris, on the river Seine, is the French capital.",
                                   "Bananas are yellow fruit rich in potassium."], ex)
    assert right["exact_match"] == wrong["exact_match"] == 0.0
    assert right["semantic_sim"] > wrong["semantic_sim"] + 0.3
    assert list(right) == task.metric_names


def test_classify_task_points_a_prompt_completion_file_to_jsonl(tmp_path):
    from tunelab.data.readers import DataError

    task = get_task(TaskConfig(name="classify", train=str(_label_file(tmp_path))))
    with pytest.raises(DataError, match=r"labels.jsonl:1: text: missing field \(the records are "
                                        r"prompt_completion, not text/label: use task jsonl"):
        task.load()
