"""hf backend: a local Hugging Face model (packaged GGUF, path or hub id) in this process,
loaded by local_model.py and asked through the batched generate.py."""

from __future__ import annotations

import hashlib

import torch

from tunelab.backends.generate import generate
from tunelab.backends.generation import Generation
from tunelab.backends.local_model import load_model
from tunelab.core.config import ModelConfig


def fingerprint(model) -> str:
    """Cheap identity of a model's weights: a slice and the sum of every tensor."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.state_dict().items():
            h.update(name.encode())
            h.update(p.flatten()[:32].float().cpu().numpy().tobytes())
            h.update(p.float().sum().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class HFBackend:
    """backends.base.Backend for torch models; the model objects are the HF models themselves
    (and whatever a method makes of them: peft-wrapped, merged, soft-prompted)."""

    name = "hf"
    is_local = True

    def load(self, cfg: ModelConfig) -> tuple[object, object]:
        return load_model(cfg)

    def generate(self, model, tok, conversations: list[list[dict]], texts: list[str], max_new: int, *,
                 batch_size: int, label: str, one_line: bool) -> list[Generation]:
        return generate(model, tok, texts, max_new, batch_size, label=label, one_line=one_line)

    def count_tokens(self, tok, text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def device(self, model) -> str:
        p = next(model.parameters(), None)
        return p.device.type if p is not None else "cpu"

    def cost(self, model, prompt_tokens: int, gen_tokens: int) -> None:
        return None  # device time, priced per hour in decide/cost.py

    def prices(self, model) -> None:
        return None

    def identity(self, model) -> dict:
        return {"weights": fingerprint(model)}
