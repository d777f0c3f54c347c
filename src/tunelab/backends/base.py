"""The one interface every backend implements: load a model, generate answers, count tokens,
say where it ran and what it cost. Callers pick a backend from registry.BACKENDS (by
ModelConfig.backend, or by the model object: registry.backend_of) and never test a model's
type. This module imports no torch, so the API backend can implement it without torch."""

from __future__ import annotations

from typing import Protocol

from tunelab.backends.generation import Generation
from tunelab.core.config import ModelConfig

BACKEND_ATTR = "tunelab_backend"
"""The attribute a model object names its backend by; a model without it is a local torch
module (an HF model, peft-wrapped or not), so the methods' derived models need not set it."""


class Backend(Protocol):
    """How one kind of model is loaded and asked. Stateless: the model object it returns
    from `load` is passed back to every other call."""

    name: str
    """Its ModelConfig.backend value ("hf", "openai")."""
    is_local: bool
    """Weights in this process: it can train, be fingerprinted and exported; else remote."""

    def load(self, cfg: ModelConfig) -> tuple[object, object | None]:
        """(model, tokenizer); the tokenizer is None where the server applies its own template."""
        ...

    def generate(self, model, tok, conversations: list[list[dict]], texts: list[str], max_new: int, *,
                 batch_size: int, label: str, one_line: bool) -> list[Generation]:
        """One answer per conversation, in order. `texts` are the same conversations as the
        model reads them (eval/predictor.as_text): a local model is given those, so the stored
        prompt is the one generated from."""
        ...

    def count_tokens(self, tok, text: str) -> int | None:
        """Tokens of `text` for this model (None where only the server knows)."""
        ...

    def device(self, model) -> str:
        """Where it ran, for the cost table's price: "api", or the weights' device type."""
        ...

    def cost(self, model, prompt_tokens: int, gen_tokens: int) -> float | None:
        """Dollars for this many tokens at the model's per-token prices; None where the cost
        is device time instead (decide/cost.py prices it)."""
        ...

    def prices(self, model) -> list[float | None] | None:
        """[$ per million prompt tokens, $ per million generated tokens] (None where unset),
        or None for a model priced by device time."""
        ...

    def identity(self, model) -> dict:
        """What decides its answers besides the prompt (the endpoint, or the weights), for
        cache keys of generated text."""
        ...
