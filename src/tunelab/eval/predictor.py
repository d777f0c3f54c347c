"""What evaluation needs of a method's result: a Predictor, and the one place prompts are made.

A Predictor is defined by `messages(example)`: the chat messages the model answers.
Every method, local or API, is rendered here and only here (`prompt_text`), so a method
cannot build text a remote model never sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from tunelab.backends.prompt import render
from tunelab.data.readers import Example


@dataclass(init=False, eq=False)
class PredictorInfo:
    """What a method reports about its predictor, stored as JSON in the run's `info` (with
    what evaluation adds). Every key is a typed field: setting or reading a name that is not
    one raises AttributeError, where a dict would silently give None. A field never set is
    None and left out of the JSON, so the stored keys are exactly the ones set, as before.

    Built with keywords (`PredictorInfo(trainable_params=0)`, a wrong one: TypeError), set
    by attribute; `to_json` / `from_json` convert, the latter ignoring keys of other versions.
    """

    # what training cost and how it ended (methods/finetune.py stats_info, dpo)
    train_seconds: float | None = None
    """Seconds of this arm's one-off work: training, a prompt search, a teacher's labelling."""
    train_tokens: int | None = None
    train_steps: int | None = None
    tokens_per_s: float | None = None
    trainable_params: int | None = None
    losses: list[float] | None = None
    """Training loss per optimizer step."""
    val_steps: list[int] | None = None
    val_losses: list[float] | None = None
    best_step: int | None = None
    """The step whose weights were kept (None where nothing was restored)."""
    stop_reason: str | None = None
    converged: bool | None = None
    convergence_note: str | None = None
    precision: str | None = None
    precision_reason: str | None = None
    supervised_tokens: int | None = None
    truncated_examples: int | None = None
    processes: int | None = None
    parallel: str | None = None
    final_loss: float | None = None
    epochs_trained: float | None = None
    masked_example: Any = None
    """One training example as the loss sees it (train/loop.py masked_view)."""
    train_prompt: str | None = None
    """The rendered training prompt of the first example, which evaluation must match."""
    artifact: str | None = None
    """Where the trained adapter or weights were saved (train.save)."""
    virtual_tokens: int | None = None
    """prompt_tuning: soft-prompt tokens run in front of every prompt."""
    # dpo
    pairs: int | None = None
    right_already: int | None = None
    beta: float | None = None
    rejected_example: str | None = None
    # prompting methods
    shots: Any = None
    """few_shot: the shots' ids; dynamic_few_shot: example id -> its shots' ids."""
    passages: int | None = None
    """rag: passages in the index."""
    index: str | None = None
    retrieved: dict[str, list[str]] | None = None
    """rag: example id -> the passage ids retrieved for it."""
    recall_examples: int | None = None
    chosen_prompt: dict | None = None
    """prompt_search: the instruction and shots it chose, with their dev score."""
    search: list[dict] | None = None
    dev_examples: list[str] | None = None
    dev_metric: str | None = None
    # around any method: search (methods/search_run.py) and stages (methods/stages.py)
    settings_search: dict | None = None
    final_train_seconds: float | None = None
    """A searched arm's last run alone (train_seconds is the whole search)."""
    stages: list[dict] | None = None
    # distill (methods/distill.py)
    teacher: str | None = None
    teacher_model: str | None = None
    labelled: int | None = None
    k: int | None = None
    teacher_labelled: int | None = None
    teacher_empty: int | None = None
    teacher_cut: int | None = None
    student_examples: int | None = None
    keep_cut: bool | None = None
    teacher_seconds: float | None = None
    student_seconds: float | None = None
    teacher_prompt_tokens: int | None = None
    teacher_gen_tokens: int | None = None
    teacher_device: str | None = None
    teacher_prices: list[float | None] | None = None
    teacher_chunks_cached: str | None = None
    teacher_agreement: dict | None = None
    teacher_examples: list[dict] | None = None
    # added by evaluation (run/compute_cell.py)
    prompts: list[str] | None = None
    """The exact rendered prompts of the first test examples."""
    template_hash: str | None = None
    api_cost_usd: float | None = None
    latency_s_mean: float | None = None
    device: str | None = None
    """Where it ran: "api", or the weights' device type (the cost table's price)."""
    # added by sequential evaluation (run/sequential.py)
    n_scored: int | None = None
    """Test examples scored (sequential evaluation may stop before the slice's end)."""
    stopped: str | None = None
    """Why scoring stopped (the headline decided, the slice used up, the run ended)."""
    round_size: int | None = None
    """Examples per round of sequential evaluation."""
    looks: int | None = None
    """Planned looks at the slice (its size over the round size): the look adjustment's K."""
    extra: dict[str, Any] | None = None
    """Keys named at run time (rag's recall_at_<k>), stored beside the fields."""

    def __init__(self, **given: Any):
        object.__setattr__(self, "extra", {})
        for name, value in given.items():
            if name not in FIELDS:
                raise TypeError(f"PredictorInfo has no field '{name}'")
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in FIELDS:
            raise AttributeError(f"PredictorInfo has no field '{name}'")
        object.__setattr__(self, name, value)

    def is_set(self, name: str) -> bool:
        """Whether the field was set (to None too): it is then stored."""
        return name in vars(self)

    def update(self, **given: Any) -> None:
        for name, value in given.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """The fields that were set (in the order they were), then `extra`."""
        return {**{k: v for k, v in vars(self).items() if k != "extra"}, **self.extra}

    @classmethod
    def from_json(cls, stored: dict | None) -> PredictorInfo:
        """A stored run's info; keys that are no field here (another version's) are ignored."""
        return cls(**{k: v for k, v in (stored or {}).items() if k in FIELDS and k != "extra"})


FIELDS = frozenset(f.name for f in fields(PredictorInfo))


def stored_info(run: dict) -> PredictorInfo:
    """A stored run's info (the store's `info` JSON), typed; keys of other versions ignored."""
    return PredictorInfo.from_json(json.loads(run["info"]) if run.get("info") else {})


class Predictor(Protocol):
    """A model plus the chat messages it is asked for each example."""

    model: object
    tok: object
    """The local tokenizer; None for an API model (the server applies its own template)."""
    info: PredictorInfo
    """What the method wants stored: cost, trainable params, artifacts, chosen prompt."""

    def messages(self, example: Example) -> list[dict]: ...


@dataclass
class ChatPredictor:
    """The Predictor every method returns: `messages` is the method's own function."""

    model: object
    tok: object
    messages: Callable[[Example], list[dict]]
    info: PredictorInfo = field(default_factory=PredictorInfo)


def as_text(tok, msgs: list[dict]) -> str:
    """The exact text a model reads for these messages: the chat template applied
    locally, or, for an API model (no local tokenizer, tok None), the messages as sent."""
    if tok is None:
        return json.dumps(msgs, ensure_ascii=False)
    return render(tok, msgs)


def prompt_text(pred: Predictor, ex: Example) -> str:
    """The prompt text of one example (as_text of its messages)."""
    return as_text(pred.tok, pred.messages(ex))
