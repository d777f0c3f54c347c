"""`tunelab data check`, `tunelab data from-logs`, and the near-duplicate leakage guard of run."""

import json

from typer.testing import CliRunner

from tests.conftest import write_config
from tunelab.cli.main import app

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_check_reports_every_bad_record_duplicates_and_leakage(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [
        {"prompt": "Hello there", "completion": "hi"},
        '{"prompt": "broken',
        {"prompt": "", "completion": "x"},
        {"prompt": "a", "completion": 3},
        {"prompt": "Hello there", "completion": "hi"},
        {"prompt": "hello, THERE!", "completion": "hi"},
        {"prompt": "What is 2+2?", "completion": "4"},
    ])
    test = _jsonl(tmp_path / "test.jsonl", [{"prompt": "what is 2 + 2", "completion": "4"},
                                            {"prompt": "Fresh question", "completion": "x"}])
    r = runner.invoke(app, ["data", "check", str(train), "--test", str(test)])
    assert r.exit_code == 1
    out = r.output
    assert f"{train}:2: (record): invalid JSON" in out
    assert f"{train}:3: prompt: empty" in out
    assert f"{train}:4: completion: expected a string" in out
    assert f"{train}:5: input: exact duplicate of {train}:1" in out
    assert f"{train}:6: input: near duplicate of {train}:1" in out
    assert f"{test}:1: input: leaked: near-duplicate of train {train}:7" in out
    assert "3 bad" in out and "p50" in out and "FAILED" in out


def test_check_clean_file_passes_with_label_balance(tmp_path):
    train = _jsonl(tmp_path / "t.jsonl", [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(10)])
    r = runner.invoke(app, ["data", "check", str(train)])
    assert r.exit_code == 0, r.output
    assert "labels: a 5 (50%), b 5 (50%)" in r.stdout and "OK" in r.stdout  # results: stdout
    assert "labels:" not in r.stderr


def test_check_counts_verdict_and_exit_code_agree(tmp_path, tiny_model_dir):
    long = " ".join(["the game"] * 40)
    train = _jsonl(tmp_path / "t.jsonl", [{"prompt": "short one", "completion": "x"},
                                          {"prompt": long, "completion": "y"}])
    test = _jsonl(tmp_path / "s.jsonl", [{"prompt": "another", "completion": "z"},
                                         {"prompt": long + " again", "completion": "w"}, '{"bad'])
    r = runner.invoke(app, ["data", "check", str(train), "--test", str(test),
                            "--model", str(tiny_model_dir), "--max-tokens", "30"])
    assert r.exit_code == 1, r.output
    out = r.output.splitlines()
    assert f"{train}:2: (record): " in r.output and "over --max-tokens 30" in r.output
    assert any(x.startswith("train: 2 records, 0 bad, 1 over --max-tokens 30,") for x in out)
    assert any(x.startswith("test: 2 records, 1 bad, 1 over --max-tokens 30;") for x in out)
    assert out[-1] == "FAILED: 1 bad record(s), 2 record(s) over --max-tokens 30"
    r = runner.invoke(app, ["data", "check", str(train), "--model", str(tiny_model_dir),
                            "--max-tokens", "1000"])
    assert r.exit_code == 0 and r.output.splitlines()[-1] == "OK"
    r = runner.invoke(app, ["data", "check", str(train), "--max-tokens", "30"])
    assert r.exit_code == 2 and "--max-tokens needs --model" in r.output
    help_text = " ".join(runner.invoke(app, ["data", "check", "--help"]).output.split())
    assert "1 the data failed: bad records, a file refused" in help_text
    assert "records over --max-tokens, or test records leaked into train" in help_text


def test_check_task_format_and_missing_file(tmp_path):
    bad = tmp_path / "v.csv"
    bad.write_text("mr,ref\ninform(name[X]),X is fun\n,empty mr\n")
    r = runner.invoke(app, ["data", "check", str(bad), "--task", "viggo_act"])
    assert r.exit_code == 1 and f"{bad}:3: mr: empty" in r.output
    r = runner.invoke(app, ["data", "check", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 1 and "file not found" in r.output


def test_run_refuses_near_duplicate_leakage_unless_allowed(tmp_path, tiny_model_dir, viggo_dir):
    lines = (viggo_dir / "train.csv").read_text().splitlines()
    mr, ref = lines[1].split(",", 1)
    test_lines = (viggo_dir / "test.csv").read_text().splitlines()
    test_lines[1] = f"{mr},{ref.upper().replace('.', ' !')}"
    (viggo_dir / "test.csv").write_text("\n".join(test_lines) + "\n")
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "s.db",
                       "  - {name: zero_shot}\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code != 0 and "1 near-duplicate leaked" in r.output
    assert runner.invoke(app, ["run", str(cfg), "--allow-leakage"]).exit_code == 0


def _logs(tmp_path):
    sys_m = {"role": "system", "content": "Support bot."}
    u1 = {"role": "user", "content": "My email is jo.doe@example.com, reset my password"}
    a1 = {"role": "assistant", "content": "Done. Call +1 555 123 4567 if not."}
    u2 = {"role": "user", "content": "Thanks!"}
    a2 = {"role": "assistant", "content": "You're welcome."}
    return _jsonl(tmp_path / "logs.jsonl", [
        # the same conversation logged at turn 1 and turn 2 (chat-completions format)
        {"messages": [sys_m, u1], "choices": [{"message": a1}], "rating": 5},
        {"request": {"messages": [sys_m, u1, a1, u2]}, "response": {"choices": [{"message": a2}]},
         "rating": 5},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
         "rating": 1},
        {"prompt": "2+2?", "completion": "4", "rating": 4},
        {"prompt": "2+2?", "completion": "4", "rating": 4, "conversation_id": "other"},
        {"messages": [{"role": "user", "content": "secret token ABC"},
                      {"role": "assistant", "content": "ok"}], "rating": 5},
        '{"messages": [',
        {"messages": [{"role": "robot", "content": "x"}]},
        *[{"prompt": f"question {i}", "completion": f"answer {i}", "rating": 5} for i in range(20)],
    ])


def test_from_logs_filters_redacts_dedupes_and_reports(tmp_path):
    logs, out = _logs(tmp_path), tmp_path / "train.jsonl"
    r = runner.invoke(app, ["data", "from-logs", str(logs), "-o", str(out), "--min-rating", "4",
                            "--drop-regex", "secret"])
    assert r.exit_code == 0, r.output
    convs = [json.loads(x)["messages"] for x in out.read_text().splitlines()]
    assert len(convs) == 22  # support conversation (longest version), 2+2 once, 20 questions
    support = next(c for c in convs if c[0]["role"] == "system")
    assert len(support) == 5 and "[EMAIL]" in support[1]["content"] and "[PHONE]" in support[2]["content"]
    for reason in ("rating missing or below 4", "matches --drop-regex", "shorter version",
                   "duplicate conversation", "invalid record", "role: expected"):
        assert reason in r.stdout, reason


def test_from_logs_drops_tool_calls_and_reply_before_question(tmp_path):
    user, sys_m = {"role": "user", "content": "Weather in Oslo?"}, {"role": "system", "content": "S."}
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "1", "type": "function",
                            "function": {"name": "weather", "arguments": "{}"}}]}
    logs = _jsonl(tmp_path / "logs.jsonl", [
        {"messages": [user], "choices": [{"message": call}]},
        {"messages": [user, {**call, "content": ""}, {"role": "user", "content": "and?"}],
         "choices": [{"message": {"role": "assistant", "content": "9C"}}]},
        {"request": {"messages": [user], "tools": [{"type": "function"}]},
         "response": {"choices": [{"message": {"role": "assistant", "content": "9C"}}]}},
        {"messages": [sys_m, {"role": "assistant", "content": "Hi!"}]},
        {"prompt": "2+2?", "completion": "4"},
    ])
    out = tmp_path / "train.jsonl"
    r = runner.invoke(app, ["data", "from-logs", str(logs), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["messages"][-1]["content"] for x in out.read_text().splitlines()] == ["4"]
    text = " ".join(r.output.split())
    for reason in (f"choices[0].message.tool_calls: a tool call; tool-call fine-tuning is not "
                   f"supported yet (e.g. {logs}:1)",
                   f"messages[1].tool_calls: this file has tool calls; tool-call fine-tuning is not "
                   f"supported yet (remove the tools/tool_calls records) (e.g. {logs}:2)",
                   "dropped 1: tools: this file has tool calls",
                   f"messages[1].role: assistant turn before any user turn (e.g. {logs}:4)"):
        assert reason in text, reason


def test_from_logs_split_keeps_conversations_whole(tmp_path):
    logs, out = _logs(tmp_path), tmp_path / "chat.jsonl"
    r = runner.invoke(app, ["data", "from-logs", str(logs), "-o", str(out), "--split", "0.6,0.2,0.2",
                            "--seed", "3"])
    assert r.exit_code == 0, r.output
    parts = {n: (tmp_path / f"chat.{n}.jsonl").read_text().splitlines() for n in ("train", "val", "test")}
    assert all(parts.values())
    firsts = {n: {json.dumps(json.loads(x)["messages"][:2]) for x in v} for n, v in parts.items()}
    assert not firsts["train"] & firsts["val"] and not firsts["train"] & firsts["test"]
    bad = runner.invoke(app, ["data", "from-logs", str(logs), "-o", str(out), "--split", "0.5,0.5"])
    assert bad.exit_code != 0 and "--split" in bad.output
