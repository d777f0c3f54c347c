"""One generated answer: its text, token counts and latency. Both backends return it (the
local model's batched generate and the OpenAI-compatible endpoint); it lives apart from
generate.py so the API backend imports no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    gen_tokens: int
    latency_s: float
    """Wall time of the example's batch divided by the batch size."""
