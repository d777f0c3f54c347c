"""The shipped tasks: splits, scoring, multi-turn loss mask, and one end-to-end run."""

import json

import pytest
from typer.testing import CliRunner

from tunelab.backends.prompt import messages
from tunelab.cli.main import app
from tunelab.core.config import TaskConfig
from tunelab.data.datasource import data_dir
from tunelab.tasks import TASKS, get_task
from tunelab.train.loop import encode

runner = CliRunner()


def test_every_task_lists_one_line():
    r = runner.invoke(app, ["tasks"])
    assert r.exit_code == 0
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert [x.split()[0] for x in lines] == list(TASKS)


@pytest.mark.parametrize("name", ["sql", "gsm8k", "tone", "chat", "viggo_act"])
def test_task_loads_disjoint_splits_and_describes_itself(name):
    task = get_task(TaskConfig(name=name, n_test=20))
    s = task.load()
    assert s.train and s.validation and len(s.test) == 20 and s.source
    assert not {e.input for e in s.test} & {e.input for e in s.train}
    assert task.primary in task.all_metrics
    show = runner.invoke(app, ["tasks", name])
    assert show.exit_code == 0 and "higher_is_better=True (primary)" in show.output
    assert "plit" in show.output  # how splits are made


def test_sql_scores_gold_and_keeps_errors():
    task = get_task(TaskConfig(name="sql", n_test=30))
    test = task.load().test
    gold = [task.score(e.target, e) for e in test]
    assert sum(g["execution_accuracy"] for g in gold) >= 27 and all(g["sql_exact"] == 1 for g in gold)
    bad = task.score("SELECT nonexistent FROM nowhere", test[0])
    assert bad["execution_accuracy"] == 0 and "no such" in bad["sql_error"]
    assert task.score("```sql\n" + test[0].target + "\n```", test[0])["sql_exact"] == 1


def test_gsm8k_strips_calculator_and_scores_final_number():
    task = get_task(TaskConfig(name="gsm8k", n_test=5))
    ex = task.load().test[0]
    assert "<<" not in ex.target and "####" in ex.target
    answer = ex.target.rsplit("####", 1)[1].strip()
    assert task.score(f"Some reasoning. So the answer is {answer}.", ex)["number_match"] == 1
    assert task.score("I do not know.", ex)["number_match"] == 0


def test_tone_pairs_are_modernised_originals():
    task = get_task(TaskConfig(name="tone", n_test=5))
    s = task.load()
    for e in s.test:
        assert e.input != e.target and "thou " not in e.input.lower()


@pytest.mark.slow
def test_tone_scores_order_gold_above_copy_above_unrelated():
    task = get_task(TaskConfig(name="tone", n_test=30))
    test = task.load().test
    mean = lambda preds: sum(r["tone"] for r in task.score_all(preds, test)) / len(test)  # noqa: E731
    gold, copy = mean([e.target for e in test]), mean([e.input for e in test])
    unrelated = mean([e.target for e in test[1:] + test[:1]])
    assert gold > copy > unrelated


def test_classify_macro_f1_and_labels_in_prompt(tmp_path):
    rows = [{"text": f"great product number {i}", "label": "pos"} for i in range(10)]
    rows += [{"text": f"awful thing number {i}", "label": "neg"} for i in range(10)]
    path = tmp_path / "l.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    task = get_task(TaskConfig(name="classify", train=str(path), split_fraction=0.2, n_test=0))
    s = task.load()
    assert "neg, pos" in task.instruction and "macro_f1" in task.all_metrics
    assert task.score("Label: POS.", s.test[0])["label_match"] == float(s.test[0].target == "pos")


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am Vicuna."},
    {"role": "user", "content": "Have a nice day!"},
    {"role": "assistant", "content": "You too!"},
]


def test_multi_turn_mask_supervises_every_assistant_turn_only(tiny):
    _, tok = tiny
    e = encode(tok, CONVERSATION, None, 256, "conv")
    pieces, cur, inside = [], [], None
    for t, s in zip(e.ids, e.supervised, strict=True):
        if s != inside and cur:
            pieces.append((inside, tok.decode(cur)))
            cur = []
        inside = s
        cur.append(t)
    pieces.append((inside, tok.decode(cur)))
    supervised = [text for s, text in pieces if s]
    assert [x.split("<|im_end|>")[0] for x in supervised] == ["I am Vicuna.", "You too!"]
    masked = "".join(text for s, text in pieces if not s)
    for m in CONVERSATION:
        if m["role"] != "assistant":
            assert m["content"] in masked
    assert "Vicuna" not in masked and "too" not in masked


def test_chat_task_trains_on_the_whole_conversation(tiny):
    _, tok = tiny
    task = get_task(TaskConfig(name="chat", n_test=5))
    ex = next(e for e in task.load().train if len(e.meta["messages"]) >= 4)
    e = encode(tok, messages("sys", task.turns(ex)), ex.target, 512, ex.id)
    text = tok.decode([t for t, s in zip(e.ids, e.supervised, strict=True) if s])
    for m in ex.meta["messages"]:
        if m["role"] == "assistant":
            assert m["content"][:10] in text


def test_sql_end_to_end_on_tiny_model(tmp_path, tiny_model_dir):
    src = data_dir() / "sql_create_context" / "sql_create_context_subset.jsonl"
    rows = [json.loads(x) for x in src.read_text().splitlines()[:120]]
    data = tmp_path / "sql"
    data.mkdir()
    (data / "sql_create_context_subset.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"task: {{name: sql, data_dir: '{data}', n_test: 4}}\nmodel: {{name: '{tiny_model_dir}'}}\n"
        f"train: {{batch_size: 4, min_steps: 1, min_budget: 0, save: false}}\n"
        f"eval: {{max_new_tokens: 8, bootstrap: 50}}\n"
        f"store: '{tmp_path / 's.db'}'\nout_dir: '{tmp_path}'\n"
        "methods: [{name: zero_shot}, {name: lora, train_sizes: [4]}]\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "execution_accuracy" in r.output
