"""Methods, looked up by name. Each module's build(ctx) returns a Predictor."""

from collections.abc import Callable

from tunelab import TunelabError
from tunelab.methods import few_shot, full, lora, zero_shot
from tunelab.methods.base import Context, Predictor

METHODS: dict[str, Callable[[Context], Predictor]] = {
    "zero_shot": zero_shot.build,
    "few_shot": few_shot.build,
    "lora": lora.build,
    "full": full.build,
}

TRAINED = {"lora", "full"}
"""Methods that change weights (the rest only choose a prompt)."""


def get_method(name: str) -> Callable[[Context], Predictor]:
    if name not in METHODS:
        raise TunelabError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "TRAINED", "Context", "Predictor", "get_method"]
