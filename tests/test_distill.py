"""distill: config checks, which examples the teacher holds and labels, and a grid with the
loopback fake OpenAI server (tests/test_api.py) as teacher and the tiny local model as student."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_api import KEY, Fake, server  # noqa: F401 (server: the loopback API fixture)
from tunelab import TunelabError
from tunelab.cli.main import app
from tunelab.core.config import CostConfig, MethodConfig, TrainConfig
from tunelab.core.store import Store
from tunelab.data.readers import Example, sample
from tunelab.decide.cost import table
from tunelab.methods import load_config
from tunelab.methods.base import Context
from tunelab.methods.distill import Distill, examples
from tunelab.report.build import build, load_arms
from tunelab.tasks.metrics import slot_f1

runner = CliRunner()


def _config(path: Path, viggo_dir: Path, entry: str, models: str = "model: {name: tiny}\n") -> Path:
    path.write_text(f"task: {{name: viggo, data_dir: '{viggo_dir}', n_test: 6}}\n{models}"
                    f"methods:\n  - {entry}\n")
    return path


@pytest.mark.parametrize("entry, msg", [
    ("{name: distill, teacher: few_shots, train_sizes: [8]}",
     "methods.distill.teacher: 'few_shots' is not a prompting method. Available: zero_shot, few_shot"),
    ("{name: distill, teacher: lora, train_sizes: [8]}",
     "methods.distill.teacher: 'lora' trains weights; is not a prompting method"),
    ("{name: distill, teacher_model: gpt-x, train_sizes: [8]}",
     "methods.distill.teacher_model: 'gpt-x' is not a model of this grid. Available: tiny"),
    ("{name: distill, labelled: 0, train_sizes: [8]}", "methods.distill.labelled: must be at least 1, got 0"),
])
def test_bad_teacher_settings_fail_when_the_config_is_read(tmp_path, viggo_dir, entry, msg):
    cfg = _config(tmp_path / "c.yaml", viggo_dir, entry)
    with pytest.raises(TunelabError) as e:
        load_config(cfg)
    assert str(e.value).startswith(f"{cfg}: ") and msg in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_a_bad_line_of_the_unlabelled_file_is_named_when_the_config_is_read(tmp_path, viggo_dir):
    inputs = tmp_path / "logs.jsonl"
    inputs.write_text('{"input": "Portal 2 is a puzzle game."}\n{"text": "no input field"}\n')
    entry = f"{{name: distill, unlabelled: '{inputs}', train_sizes: [8]}}"
    cfg = _config(tmp_path / "c.yaml", viggo_dir, entry)
    with pytest.raises(TunelabError) as e:
        load_config(cfg)
    assert str(e.value) == f"{cfg}: methods.distill.{inputs}:2: input: missing field"


def _ctx(pool: list[Example], n: int, settings: Distill, seed: int = 3) -> Context:
    return Context(None, None, None, sample(pool, n, seed), MethodConfig(name="distill"), TrainConfig(),
                   seed, Path("."), settings=settings, pool=pool)


def test_gold_examples_are_the_teacher_arms_and_never_among_the_inputs_it_labels(tmp_path):
    pool = [Example(f"sentence {i}", f"inform(name[{i}])", id=str(i)) for i in range(40)]
    gold, inputs = examples(_ctx(pool, 10, Distill(labelled=5)))
    assert gold == sample(pool, 5, 3)  # what a teacher arm at train size 5 holds (nested samples)
    assert len(inputs) == 10 and not {e.id for e in gold} & {e.id for e in inputs}
    with pytest.raises(TunelabError, match="labelled 30 \\+ train size 10"):
        examples(_ctx(pool, 10, Distill(labelled=30)))
    logs = tmp_path / "logs.jsonl"  # an unlabelled file holding one gold input: left out
    logs.write_text("".join(json.dumps({"input": e.input}) + "\n" for e in [gold[0], *pool[:3], *pool[30:]]))
    gold, inputs = examples(_ctx(pool, 40, Distill(labelled=5, unlabelled=str(logs))))
    assert gold[0].input not in {e.input for e in inputs} and all(e.target == "" for e in inputs)


def _api_config(tmp_path: Path, viggo_dir: Path, tiny_model_dir: Path, url: str, store: Path,
                methods: str) -> Path:
    cfg = tmp_path / "distill.yaml"
    cfg.write_text(
        f"task: {{name: viggo, data_dir: '{viggo_dir}', n_test: 6}}\n"
        f"models:\n  - {{name: '{tiny_model_dir}'}}\n"
        f"  - {{name: fake-gpt, backend: openai, base_url: '{url}', api_key_env: TL_TEST_KEY,\n"
        f"     concurrency: 2, price_prompt: 1.0, price_completion: 2.0}}\n"
        f"train: {{batch_size: 4, min_steps: 2, min_budget: 0, lr: 0.001}}\n"
        f"eval: {{batch_size: 4, max_new_tokens: 12, bootstrap: 200}}\n"
        f"store: '{store}'\nout_dir: '{store.parent}'\nmethods:\n{methods}")
    return cfg


def test_api_teacher_labels_a_local_student_end_to_end(tmp_path, viggo_dir, tiny_model_dir, server,  # noqa: F811
                                                       monkeypatch):
    """The fake server answers inform(name[<first 5 characters of the input>]) with token
    usage 10 per message + 7: the teacher (dynamic few-shot over 4 gold examples, on the
    API) labels 8 other inputs, the tiny local model is trained on exactly those answers,
    and the teacher's calls are counted, priced and reported."""
    monkeypatch.setenv("TL_TEST_KEY", KEY)
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    trained_on = []
    import tunelab.methods.lora as lora

    real = lora.fine_tune
    monkeypatch.setattr(lora, "fine_tune",
                        lambda ctx, *a, **k: trained_on.append(ctx.train) or real(ctx, *a, **k))
    tiny = str(tiny_model_dir)
    distill = ("  - {name: distill, teacher_model: fake-gpt, k: 2, labelled: 4, train_sizes: [8], "
               f"models: ['{tiny}']}}\n")
    others = (f"  - {{name: lora, train_sizes: [8], models: ['{tiny}']}}\n"
              "  - {name: dynamic_few_shot, k: 2, train_sizes: [4], models: [fake-gpt]}\n")
    store = tmp_path / "runs" / "s.db"
    cfg = _api_config(tmp_path, viggo_dir, tiny_model_dir, server, store, distill + others)
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code == 0, r.output

    pool = _viggo_train(viggo_dir)
    gold, inputs = sample(pool, 12, 0)[:4], sample(pool, 12, 0)[4:]
    asked = [q for q in Fake.requests if q["messages"][-1]["content"] in {e.input for e in inputs}]
    assert len(asked) == 8  # once per input
    hidden = {e.target for e in inputs} - {e.target for e in gold}  # ViGGO repeats some labels
    assert hidden
    for q in asked:  # shots are gold examples, never the input being labelled or its label
        shots = [m["content"] for m in q["messages"][1:-1]]
        assert len(shots) == 2 * 2 and q["messages"][-1]["content"] not in shots
        assert not hidden & set(shots), q
    answers = {e.input: f"inform(name[{e.input[:5]}])" for e in inputs}
    student = [ts for ts in trained_on if {e.input for e in ts} == set(answers)]
    assert len(student) == 1 and all(e.target == answers[e.input] for e in student[0])

    con = sqlite3.connect(store)
    (info,) = [json.loads(i) for (i,) in con.execute("SELECT info FROM runs WHERE method = 'distill'")]
    con.close()
    assert info["teacher_labelled"] == 8 and info["teacher_device"] == "api"
    assert info["teacher_prompt_tokens"] == sum(10 * len(q["messages"]) for q in asked)
    assert info["teacher_gen_tokens"] == 7 * 8
    assert info["train_seconds"] == pytest.approx(info["teacher_seconds"] + info["student_seconds"])
    f1 = sum(slot_f1(answers[e.input], e.target) for e in inputs) / 8
    assert info["teacher_agreement"]["slot_f1"] == pytest.approx(f1)

    arms = load_arms(Store(store))
    (d,) = [a for a in arms if a.method == "distill"]
    rows = table(arms, "slot_f1", 2.0, CostConfig(cpu_usd_per_hour=36.0))["rows"]
    (row,) = [x for x in rows if x["arm"] == d.name]
    api_usd = (info["teacher_prompt_tokens"] * 1.0 + info["teacher_gen_tokens"] * 2.0) / 1e6
    assert row["oneoff_usd"] == pytest.approx(info["train_seconds"] * 36.0 / 3600 + api_usd)

    md = (store.parent / "report" / "report.md").read_text()
    section = md.split("## Distillation", 1)[1]
    assert f"| student on gold labels | {tiny} lora n=8 |" in section
    assert "| the teacher itself | fake-gpt dynamic_few_shot |" in section
    assert f"{info['teacher_prompt_tokens']:,} prompt + 56 generated teacher tokens" in section
    # without the comparison arms, the section names what to add (no invented numbers)
    keys = {a.runs[0]["id"] for a in arms if a.method == "distill"}
    md2, _ = build(store, tmp_path / "only", keys=keys)
    only = md2.read_text().split("## Distillation", 1)[1]
    assert "add `{name: lora, train_sizes: [8]}`" in only
    assert "add `{name: dynamic_few_shot, k: 2, train_sizes: [4], models: [fake-gpt]}`" in only

    before = len(Fake.requests)  # a fresh store on the same teacher: its answers come from disk
    again = _api_config(tmp_path, viggo_dir, tiny_model_dir, server, tmp_path / "again" / "s.db", distill)
    r = runner.invoke(app, ["run", str(again), "--fail-fast"])
    assert r.exit_code == 0, r.output
    assert len(Fake.requests) == before  # the student is local: no request at all


def test_teacher_answers_cut_off_at_the_limit_are_not_trained_on(tmp_path, viggo_dir, tiny_model_dir,
                                                                  server, monkeypatch):  # noqa: F811
    """Two of the teacher's 8 answers use more tokens than eval.max_new_tokens (12): the
    student trains on the other 6, the count is stored and the report says so; keep_cut
    trains on all 8."""
    monkeypatch.setenv("TL_TEST_KEY", KEY)
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    pool = _viggo_train(viggo_dir)
    inputs = sample(pool, 12, 0)[4:]
    monkeypatch.setattr(Fake, "long_for", {inputs[0].input, inputs[3].input})
    trained_on = []
    import tunelab.methods.lora as lora

    real = lora.fine_tune
    monkeypatch.setattr(lora, "fine_tune",
                        lambda ctx, *a, **k: trained_on.append(ctx.train) or real(ctx, *a, **k))
    for keep in ("false", "true"):
        entry = (f"  - {{name: distill, teacher_model: fake-gpt, k: 2, labelled: 4, train_sizes: [8], "
                 f"keep_cut: {keep}, models: ['{tiny_model_dir}']}}\n")
        store = tmp_path / keep / "s.db"
        r = runner.invoke(app, ["run", str(_api_config(tmp_path, viggo_dir, tiny_model_dir, server, store,
                                                       entry)), "--fail-fast"])
        assert r.exit_code == 0, r.output
        con = sqlite3.connect(store)
        (info,) = [json.loads(i) for (i,) in con.execute("SELECT info FROM runs WHERE method = 'distill'")]
        con.close()
        want = {e.input for e in inputs} - (set() if keep == "true" else Fake.long_for)
        assert {e.input for e in trained_on[-1]} == want
        assert info["teacher_cut"] == 2 and info["student_examples"] == len(want)
        md = (store.parent / "report" / "report.md").read_text()
        said = "2 answers were cut off at the generation limit"
        assert said + (" (kept: keep_cut)" if keep == "true" else
                       " and dropped, so the student trained on 6") in md


def _viggo_train(viggo_dir: Path) -> list[Example]:
    from tunelab.core.config import TaskConfig
    from tunelab.tasks import get_task

    return get_task(TaskConfig(name="viggo", data_dir=str(viggo_dir), n_test=6)).load().train



def test_an_api_teachers_tokens_are_priced_once_beside_the_training_time():
    from tunelab.decide.cost import Usage, oneoff_usd

    u = Usage("distill n=500", "cpu", 3600.0, 0.1, 50, 7, teacher_tokens=(2e6, 1e5),
              teacher_prices=(1.0, None))
    # an hour of CPU at $36/h, 2M prompt tokens at the model's own $1/M, 0.1M generated at the block's $4/M
    assert oneoff_usd(u, CostConfig(cpu_usd_per_hour=36.0, api_output_usd_per_mtok=4.0)) == pytest.approx(
        36.0 + 2.0 + 0.4)
    assert oneoff_usd(u, CostConfig(cpu_usd_per_hour=36.0)) is None  # a token price missing: no total


def test_the_teachers_endpoint_and_the_unlabelled_files_content_enter_the_cell_key(tmp_path, viggo_dir):
    from tunelab.run.cells import cells

    logs = tmp_path / "logs.jsonl"
    logs.write_text('{"input": "Portal 2 is a puzzle game."}\n')
    entry = f"{{name: distill, teacher_model: gpt, unlabelled: '{logs}', train_sizes: [8], models: [tiny]}}"

    def distill_key(url: str) -> str:
        models = (f"models:\n  - {{name: tiny}}\n  - {{name: gpt, backend: openai, base_url: '{url}'}}\n")
        cfg = load_config(_config(tmp_path / "c.yaml", viggo_dir, entry, models))
        return cells(cfg, 24)[0].key

    first = distill_key("http://a/v1")
    assert distill_key("http://a/v1") == first and distill_key("http://b/v1") != first
    logs.write_text('{"input": "Portal 2 is a puzzle game, and a good one."}\n')
    assert distill_key("http://a/v1") != first
