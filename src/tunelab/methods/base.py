"""What a method is (MethodSpec), receives (Context) and returns (a Predictor).

A method declares everything about itself on its spec: its own settings (a small
dataclass, checked when the config is read), whether it trains weights, whether it needs
the weights here (not an API model), its `build(ctx)`, and, for a training method, its
default lr, what its cell saves for export, whether it runs as a stage, and how the
min_budget floor applies. Adding a method is its module plus one line: `register(SPEC)`
(methods/__init__.py does it for the shipped ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tunelab import TunelabError
from tunelab.backends.prompt import messages
from tunelab.core.config import EvalConfig, MethodConfig, RunConfig, TrainConfig, from_dict
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


def full(ctx: Context) -> str:
    return "full"


def short(ctx: Context) -> str:
    return "short"


PROMPTING = {"prompt": full}
"""A prompting method's unset prompt: the task's full instruction."""
TRAINED = {"prompt": short}
"""A training method's unset prompt: the short one (a tuned model learned the format)."""


@dataclass(frozen=True)
class MethodSpec:
    """Everything tunelab needs to know about a method: the one place it is described."""

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
    lr: float | None = None
    """Its default peak lr (`train.lr` overrides it); None: config.DEFAULT_LR."""
    saved: str | None = None
    """The folder its cell saves (train.save) under the cell's folder, which `tunelab export`
    ships: adapter, model or soft_prompt; None: nothing to export."""
    mergeable: bool = False
    """What it saved merges into the base weights (exports as merged weights and GGUF)."""
    floor_exact: bool = False
    """It trains on the cell's training subset itself (more with replay, never fewer), so
    whether train.min_budget raises its budget is known from the size (run/keys.floor_binds)."""
    stage: str | None = None
    """The stage kind it runs as under `stages:` (sft, dpo), through `tune`."""
    tune: Callable | None = None
    """tune(ctx, system, user) -> (model, info, system): its training alone, for stages."""
    unset: dict[str, Callable[[Context], object]] | None = None
    """What a setting left unset (None) means, by name; None: PROMPTING or TRAINED."""
    seeded: bool = True
    """Its output depends on the cell's seed (a seeded draw of shots or of the training
    subset, training itself). False: the same prompt decoded greedily whatever the seed, so
    the grid runs it once (the first seed) and that cell stands for every seed."""

    @property
    def names(self) -> list[str]:
        """The method's own setting names (its settings dataclass's fields)."""
        return [f.name for f in dataclasses.fields(self.settings)]

    def resolve_unset(self, name: str, ctx: Context):
        """The value an unset setting `name` stands for in this context (None: no rule)."""
        rules = self.unset if self.unset is not None else TRAINED if self.trains else PROMPTING
        return rules[name](ctx) if name in rules else None

    def settings_of(self, method: MethodConfig) -> Prompted:
        """The method's settings of a config entry (a mapping as read, or already its
        dataclass), validated: a key it lacks or a bad value is one line naming the key."""
        if isinstance(method.settings, self.settings):
            return method.settings
        raw = method.settings if isinstance(method.settings, dict) else dataclasses.asdict(method.settings)
        where = f"methods.{method.label or method.name}"
        self.check_keys(raw, where, common=False)
        return from_dict(self.settings, raw, where)

    def check_keys(self, entry: dict, where: str, common: bool = True) -> None:
        """A config entry's keys: common ones, or this method's settings; else one line."""
        own = self.names
        for key in entry:
            if (key not in COMMON or not common) and key not in own:
                raise TunelabError(f"{where}.{key}: not a setting of {self.name}. Its settings: "
                                   f"{', '.join(own)} (and {', '.join(COMMON)})")


REGISTRY: dict[str, MethodSpec] = {}
"""Every method's spec by name: the registry (methods/__init__.py, METHODS) fills this very
dict when the package is imported, which happens before any method module runs. A method
that names another (distill's teacher) reads it here instead of importing the registry,
which imports that method: no import circle."""


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry: the one line a new method needs (its module may live
    anywhere, e.g. a plugin or a test folder)."""
    REGISTRY[spec.name] = spec
    return spec


def stage_kinds() -> dict[str, MethodSpec]:
    """Stage kind -> the method that runs as it (a spec declaring `stage` and `tune`)."""
    return {s.stage: s for s in REGISTRY.values() if s.stage and s.tune is not None}


def setting(ctx: Context, name: str):
    """A setting of this cell's method, its unset value resolved by its spec's rule."""
    value = getattr(own_settings(ctx), name, None)
    if value is None and ctx.method.name in REGISTRY:
        value = REGISTRY[ctx.method.name].resolve_unset(name, ctx)
    return value


def own_settings(ctx: Context):
    """ctx.settings, else the ones of ctx.method read by its spec."""
    spec = REGISTRY.get(ctx.method.name)
    return ctx.settings if ctx.settings is not None or spec is None else spec.settings_of(ctx.method)


def instruction(ctx: Context, default: str | None = None) -> str:
    """The task's instruction the prompt carries: the setting `prompt`, else `default`,
    else what the method's spec says an unset prompt means."""
    which = getattr(own_settings(ctx), "prompt", None) or default or setting(ctx, "prompt") or "full"
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
