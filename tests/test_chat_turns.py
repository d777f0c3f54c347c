"""On a multi-turn chat example every method sees the same conversation history."""

from __future__ import annotations

import pytest

from tunelab.core.config import MethodConfig, TaskConfig, TrainConfig
from tunelab.data.readers import Example
from tunelab.tasks import get_task

HISTORY = [{"role": "user", "content": "My name is Ada."},
           {"role": "assistant", "content": "Hello Ada, how can I help?"}]


def _conv(question: str, answer: str, history=()) -> Example:
    msgs = [*history, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return Example(question, answer, id=question, meta={"messages": msgs})


@pytest.fixture
def chat(tmp_path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "ada.md").write_text("Ada Lovelace wrote the first program. " * 4)
    return get_task(TaskConfig(name="chat", corpus=str(tmp_path / "kb")))


def _assert_history(msgs: list[dict]) -> None:
    """The last three messages are the two-turn history, then the question."""
    assert [m["role"] for m in msgs[-3:]] == ["user", "assistant", "user"], msgs
    assert msgs[-3]["content"] == HISTORY[0]["content"]
    assert msgs[-2]["content"] == HISTORY[1]["content"]
    assert msgs[-1]["content"].endswith("What is my name?")


@pytest.mark.parametrize("name,settings", [("zero_shot", {}), ("few_shot", {"k": 2}),
                                           ("dynamic_few_shot", {"k": 2}), ("rag", {"k": 1})])
def test_prompting_methods_see_the_whole_conversation(tmp_path, tiny, chat, name, settings):
    from tunelab.methods import get_method
    from tunelab.methods.base import Context

    model, tok = tiny
    train = [_conv(f"question {i}?", f"answer {i}") for i in range(4)]
    ctx = Context(model, tok, chat, train, MethodConfig(name=name, **settings), TrainConfig(), 0,
                  tmp_path / name)
    pred = get_method(name)(ctx)
    _assert_history(pred.messages(_conv("What is my name?", "Ada.", HISTORY)))


def test_dpo_pairs_and_own_outputs_prompt_with_the_whole_conversation(chat):
    from tunelab.methods.dpo import pairs

    ex = _conv("What is my name?", "Ada.", HISTORY)
    (pair,) = pairs(chat, "Be helpful.", [ex], ["I do not know."])
    _assert_history(pair["prompt"])
