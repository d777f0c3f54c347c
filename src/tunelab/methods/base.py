"""What a method receives (Context) and returns (Predictor)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import TunelabError
from tunelab.config import EvalConfig, MethodConfig, TrainConfig
from tunelab.data import Example
from tunelab.prompt import messages, render
from tunelab.tasks.base import Task

PROMPTS = ("full", "short")


@dataclass
class Context:
    model: object
    tok: object
    task: Task
    train: list[Example]
    """The training subset of this cell (train_size examples, seeded)."""
    method: MethodConfig
    train_cfg: TrainConfig
    seed: int
    run_dir: Path
    validation: list[Example] = field(default_factory=list)
    """The task's validation split (prompt search scores candidates here, never on test)."""
    eval_cfg: EvalConfig = field(default_factory=EvalConfig)
    """Generation settings (prompt search scores candidates with the run's own)."""
    checkpoint: Callable[[str, Predictor], dict] | None = None
    """Scores an intermediate predictor (a training stage) on the test slice and returns
    its metrics; set by the grid, so methods themselves never see the test split."""


@dataclass
class Predictor:
    """A model plus how to turn an example into its prompt text."""

    model: object
    tok: object
    render: Callable[[Example], str]
    info: dict = field(default_factory=dict)
    """What the method wants stored: cost, trainable params, artifacts, chosen prompt."""
    messages: Callable[[Example], list[dict]] | None = None
    """The chat messages behind render(); an API model is sent these, not text."""


def instruction(ctx: Context, default: str) -> str:
    which = ctx.method.prompt or default
    if which not in PROMPTS:
        raise TunelabError(f"methods.{ctx.method.name}.prompt: unknown '{which}'. "
                           f"Available: {', '.join(PROMPTS)}")
    return ctx.task.instruction if which == "full" else ctx.task.short_instruction


def chat_predictor(ctx: Context, model, system: str, shots=(), info=None) -> Predictor:
    """A predictor that renders system + shots + the example through the chat template."""
    tok, task = ctx.tok, ctx.task

    def to_msgs(ex: Example) -> list[dict]:
        return messages(system, task.turns(ex), list(shots))

    def to_text(ex: Example) -> str:
        if tok is None:  # API model: the server applies its own template; store the messages
            return json.dumps(to_msgs(ex), ensure_ascii=False)
        return render(tok, to_msgs(ex))

    return Predictor(model, tok, to_text, info or {}, to_msgs)
