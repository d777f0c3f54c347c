"""Methods, looked up by name. Each module's build(ctx) returns a Predictor.

Any method may carry `stages:` (training stages run first, see stages.py).
"""

from collections.abc import Callable

from tunelab import TunelabError
from tunelab.config import MethodConfig
from tunelab.methods import (
    dpo,
    dynamic_few_shot,
    few_shot,
    full,
    lora,
    prompt_search,
    prompt_tuning,
    rag,
    zero_shot,
)
from tunelab.methods.base import Context, Predictor
from tunelab.methods.stages import with_stages
from tunelab.methods.sweep import with_search

METHODS: dict[str, Callable[[Context], Predictor]] = {
    "zero_shot": zero_shot.build,
    "few_shot": few_shot.build,
    "dynamic_few_shot": dynamic_few_shot.build,
    "rag": rag.build,
    "prompt_search": prompt_search.build,
    "prompt_tuning": prompt_tuning.build,
    "lora": lora.build,
    "full": full.build,
    "dpo": dpo.build,
}

TRAINED = {"lora", "full", "prompt_tuning", "dpo"}
"""Methods that change weights (the rest only choose a prompt)."""


def is_trained(method: MethodConfig | dict) -> bool:
    """Whether a method config changes weights (a trained method, or any stages)."""
    m = method if isinstance(method, dict) else {"name": method.name, "stages": method.stages}
    return m["name"] in TRAINED or bool(m.get("stages"))


def get_method(name: str) -> Callable[[Context], Predictor]:
    if name not in METHODS:
        raise TunelabError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}")
    return with_search(with_stages(METHODS[name]), is_trained)


__all__ = ["METHODS", "TRAINED", "Context", "Predictor", "get_method", "is_trained"]
