"""What evaluation needs of a method's result: a Predictor, and the one place prompts are made.

A Predictor is defined by `messages(example)`: the chat messages the model answers.
Every method, local or API, is rendered here and only here (`prompt_text`), so a method
cannot build text a remote model never sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tunelab.backends.prompt import render
from tunelab.data.readers import Example


class Predictor(Protocol):
    """A model plus the chat messages it is asked for each example."""

    model: object
    tok: object
    """The local tokenizer; None for an API model (the server applies its own template)."""
    info: dict
    """What the method wants stored: cost, trainable params, artifacts, chosen prompt."""

    def messages(self, example: Example) -> list[dict]: ...


@dataclass
class ChatPredictor:
    """The Predictor every method returns: `messages` is the method's own function."""

    model: object
    tok: object
    messages: Callable[[Example], list[dict]]
    info: dict = field(default_factory=dict)


def as_text(tok, msgs: list[dict]) -> str:
    """The exact text a model reads for these messages: the chat template applied
    locally, or, for an API model (no local tokenizer, tok None), the messages as sent."""
    if tok is None:
        return json.dumps(msgs, ensure_ascii=False)
    return render(tok, msgs)


def prompt_text(pred: Predictor, ex: Example) -> str:
    """The prompt text of one example (as_text of its messages)."""
    return as_text(pred.tok, pred.messages(ex))
