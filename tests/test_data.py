"""Readers: real line numbers for JSON arrays, role names and order, tool calls refused."""

import json

import pytest
from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.data.readers import DataError, UnsupportedData, read_examples

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_json_array_errors_and_examples_carry_the_real_line(tmp_path):
    path = tmp_path / "data.json"
    recs = [{"prompt": "a", "completion": "1"}, {"prompt": "b", "completion": "2"},
            {"prompt": "c"}, "not an object", {"prompt": "d\n", "completion": "4"}]
    # indent=2 spreads each record over 4 lines: record 3 starts on line 10, record 4 on 13
    path.write_text(json.dumps(recs, indent=2))
    text_lines = path.read_text().split("\n")
    assert text_lines[9].strip() == "{" and text_lines[10].strip() == '"prompt": "c"'
    errors: list[DataError] = []
    good = read_examples(path, "prompt_completion", errors)
    assert [str(e) for e in errors] == [f"{path}:10: completion: missing field",
                                        f"{path}:13: (record): expected an object"]
    assert [ex.meta["line"] for ex in good] == [2, 6, 14]
    with pytest.raises(DataError, match=f"^{path}:10: completion: missing field$"):
        read_examples(path, "prompt_completion")


def test_json_array_on_one_line_and_with_blank_lines(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('\n\n[{"prompt": "a", "completion": "1"},\n\n\n   {"prompt": "b"}]')
    errors: list[DataError] = []
    assert [ex.meta["line"] for ex in read_examples(path, "prompt_completion", errors)] == [3]
    assert [str(e) for e in errors] == [f"{path}:6: completion: missing field"]


USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}
SYSTEM = {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("msgs, error", [
    ([USER, {"role": "bot", "content": "x"}, USER, ASSISTANT],
     "messages[1].role: unknown role 'bot'. Available: system, user, assistant, tool"),
    ([SYSTEM, ASSISTANT], "messages[1].role: assistant turn before any user turn"),
    ([SYSTEM, ASSISTANT, USER, ASSISTANT], "messages[1].role: assistant turn before any user turn"),
    ([SYSTEM, USER], "messages: last message must be from the assistant"),
])
def test_messages_roles_and_order(tmp_path, msgs, error):
    path = _jsonl(tmp_path / "chat.jsonl", [{"messages": [USER, ASSISTANT]}, {"messages": msgs}])
    with pytest.raises(DataError) as e:
        read_examples(path)
    assert str(e.value) == f"{path}:2: {error}"
    r = runner.invoke(app, ["data", "check", str(path)])
    assert r.exit_code == 1 and f"{path}:2: {error}" in r.output
    assert "train: 1 records, 1 bad" in r.output and "FAILED: 1 bad record(s)" in r.output


def test_sharegpt_turn_order(tmp_path):
    rec = {"conversations": [{"from": "system", "value": "s"}, {"from": "gpt", "value": "x"}]}
    path = _jsonl(tmp_path / "sg.jsonl", [rec])
    with pytest.raises(DataError, match=r":1: conversations\[1\]\.role: assistant turn before any user"):
        read_examples(path)


def test_system_user_assistant_reads(tmp_path):
    path = _jsonl(tmp_path / "ok.jsonl", [{"messages": [SYSTEM, USER, ASSISTANT]}])
    [ex] = read_examples(path)
    assert ex.input == "system: Be brief.\nuser: hi" and ex.target == "hello"


CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("rec, where", [
    ({"messages": [USER, CALL], "tools": TOOLS}, "tools"),
    ({"messages": [USER, {**CALL, "content": ""}]}, "messages[1].tool_calls"),
    ({"messages": [USER, CALL, {"role": "tool", "tool_call_id": "c1", "content": "9C"}, ASSISTANT]},
     "messages[1].tool_calls"),
    ({"messages": [USER, {"role": "tool", "content": "9C"}, ASSISTANT]}, "messages[1].role"),
])
def test_tool_calls_refuse_the_file_in_one_line(tmp_path, rec, where):
    path = _jsonl(tmp_path / "tools.jsonl", [{"messages": [USER, ASSISTANT]}, rec, rec])
    want = (f"{path}:2: {where}: this file has tool calls; tool-call fine-tuning is not "
            "supported yet (remove the tools/tool_calls records)")
    with pytest.raises(UnsupportedData) as e:
        read_examples(path, "auto", [])  # even a lenient reader refuses the file
    assert str(e.value) == want
    r = runner.invoke(app, ["data", "check", str(path)])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert [x for x in lines if "tool" in x] == [want]
    assert lines[-1] == "FAILED: 1 file(s) refused"


def test_run_refuses_tool_calls(tmp_path, tiny_model_dir):
    path = _jsonl(tmp_path / "tools.jsonl",
                  [{"messages": [USER, ASSISTANT]}] * 3 + [{"messages": [USER, CALL], "tools": TOOLS}])
    store = tmp_path / "s.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task: {{name: jsonl, train: '{path}'}}\nmodel: {{name: '{tiny_model_dir}'}}\n"
                   f"store: '{store}'\nout_dir: '{tmp_path}'\nmethods:\n  - {{name: zero_shot}}\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 2
    assert f"{path}:4: tools: this file has tool calls; tool-call fine-tuning is not supported" in r.output
