"""What a method is (MethodSpec), receives (Context) and returns (a Predictor).

A method declares its own settings (a small dataclass, checked when the config is read),
whether it trains weights, whether it needs the weights here (not an API model), and its
`build(ctx)`. Adding a method is its module plus one line in methods.METHODS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tunelab import TunelabError
from tunelab.backends.prompt import messages
from tunelab.core.config import EvalConfig, MethodConfig, RunConfig, TrainConfig
from tunelab.data.readers import Example
from tunelab.eval.predictor import ChatPredictor, Predictor, PredictorInfo
from tunelab.tasks.base import Task

PROMPTS = ("full", "short")

COMMON = ("name", "train_sizes", "label", "train", "models", "stages", "search")
"""MethodConfig keys every method takes; every other key belongs to a method's settings."""


def at_least(settings, low: int, *names: str) -> None:
    """Each named setting is at least `low`, or one line naming it."""
    for name in names:
        if getattr(settings, name) < low:
            raise TunelabError(f"{name}: must be at least {low}, got {getattr(settings, name)}")


@dataclass
class Prompted:
    """Settings of every method: which instruction the prompt carries."""

    prompt: str | None = None
    """'full' (the task's long instruction) or 'short'. Default: full for prompting
    methods, short for fine-tuned ones (a tuned model learned the format)."""

    counts: ClassVar[tuple[str, ...]] = ()
    """Settings that must be at least 1 (checked here for every method's settings)."""

    def __post_init__(self):
        if self.prompt is not None and self.prompt not in PROMPTS:
            raise TunelabError(f"prompt: unknown '{self.prompt}'. Available: {', '.join(PROMPTS)}")
        at_least(self, 1, *self.counts)


@dataclass
class Shots(Prompted):
    k: int = 5
    """Number of in-context examples (or retrieved passages)."""
    counts: ClassVar[tuple[str, ...]] = ("k",)


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
    settings: Prompted | None = None
    """The method's own settings (its spec's dataclass); filled by methods.get_method."""
    pool: list[Example] = field(default_factory=list)
    """The whole training split (distill draws its gold and unlabelled examples from it in
    the seeded order `train` is the start of)."""
    load: Callable[[str], tuple] | None = None
    """(model, tokenizer) of a model of the grid by name (distill's teacher); set by the grid."""


@dataclass(frozen=True)
class MethodSpec:
    """Everything tunelab needs to know about a method."""

    name: str
    settings: type[Prompted]
    """Its own settings: the only method keys that are valid for it and enter its cell key."""
    trains: bool
    """Changes weights (its cells carry training settings and train sizes)."""
    needs_local_model: bool
    """Needs the weights in this process (it trains or generates itself); False: it only
    chooses messages, so it also runs against an API model."""
    build: Callable[[Context], Predictor]
    check: Callable[[Prompted, RunConfig], None] | None = None
    """Checks of settings against the rest of the config (e.g. a model name of the grid),
    run when the config is read; one line naming the key."""

    @property
    def names(self) -> list[str]:
        """The method's own setting names (its settings dataclass's fields)."""
        return [f.name for f in dataclasses.fields(self.settings)]

    def settings_of(self, method: MethodConfig) -> Prompted:
        """The method's settings read off a config entry (validated by the dataclass)."""
        try:
            return self.settings(**{n: getattr(method, n) for n in self.names})
        except TunelabError as e:
            raise TunelabError(f"methods.{method.label or method.name}.{e}") from None

    def check_keys(self, entry: dict, where: str) -> None:
        """A config entry's keys: common ones, or this method's settings; else one line."""
        own = self.names
        for key in entry:
            if key not in COMMON and key not in own:
                raise TunelabError(f"{where}.{key}: not a setting of {self.name}. Its settings: "
                                   f"{', '.join(own)} (and {', '.join(COMMON)})")


REGISTRY: dict[str, MethodSpec] = {}
"""Every method's spec by name: the registry (methods/__init__.py, METHODS) fills this very
dict when the package is imported, which happens before any method module runs. A method
that names another (distill's teacher) reads it here instead of importing the registry,
which imports that method: no import circle."""


def instruction(ctx: Context, default: str) -> str:
    which = (ctx.settings.prompt if ctx.settings is not None else ctx.method.prompt) or default
    if which not in PROMPTS:
        raise TunelabError(f"methods.{ctx.method.name}.prompt: unknown '{which}'. "
                           f"Available: {', '.join(PROMPTS)}")
    return ctx.task.instruction if which == "full" else ctx.task.short_instruction


def chat_predictor(ctx: Context, model, system: str, shots=(), info=None) -> ChatPredictor:
    """A predictor of system + shots + the example's conversation (task.turns)."""
    task, shots = ctx.task, list(shots)

    def to_msgs(ex: Example) -> list[dict]:
        return messages(system, task.turns(ex), shots)

    return ChatPredictor(model, ctx.tok, to_msgs, info or PredictorInfo())


def with_user_prefix(turns: list[dict], prefix: str) -> list[dict]:
    """The conversation with `prefix` put before its last user message (rag's passages)."""
    last = max(i for i, t in enumerate(turns) if t["role"] == "user")
    return [*turns[:last], {**turns[last], "content": prefix + turns[last]["content"]}, *turns[last + 1:]]
