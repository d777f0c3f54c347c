"""Which backend runs a model: one lookup by name (ModelConfig.backend) and one by model object.

Kept apart from the backends themselves so that the API backend (openai_api.py) imports
neither this module nor torch."""

from __future__ import annotations

import time

from tunelab import TunelabError
from tunelab.backends.base import BACKEND_ATTR, Backend
from tunelab.backends.hf import HFBackend
from tunelab.backends.openai_api import OpenAIBackend
from tunelab.core.config import ModelConfig

BACKENDS: dict[str, Backend] = {
    "hf": HFBackend(),
    "openai": OpenAIBackend(),
}
"""ModelConfig.backend -> the backend that loads and asks such a model."""


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise TunelabError(f"Unknown backend '{name}'. Available: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def backend_of(model) -> Backend:
    """The backend of a loaded model object (base.BACKEND_ATTR; a torch module names none)."""
    return backend(getattr(model, BACKEND_ATTR, "hf"))


def timed_load(cfg: ModelConfig):
    """(model, tokenizer, seconds); an API model has no local tokenizer (None)."""
    chosen = backend(cfg.backend)
    t = time.perf_counter()
    model, tok = chosen.load(cfg)
    return model, tok, time.perf_counter() - t
