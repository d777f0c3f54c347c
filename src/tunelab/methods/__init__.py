"""Methods, looked up by name: METHODS = {"lora": lora.SPEC, ...}.

Each module declares a MethodSpec (methods/base.py): its settings dataclass, whether it
trains, whether it needs local weights, and build(ctx) -> Predictor. Adding a method is
its module plus one line here; tests/test_specs.py walks every entry through config
validation, a tiny-model cell and the report. Any method may carry `stages:` (training
stages run first, see stages.py).
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tunelab import TunelabError
from tunelab.core.config import SEARCH_METHOD, MethodConfig, RunConfig, method_train, read_config
from tunelab.eval.predictor import Predictor
from tunelab.methods import (
    distill,
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
from tunelab.methods.base import REGISTRY, Context, MethodSpec
from tunelab.methods.search_run import with_search
from tunelab.methods.stages import check_stages, with_stages

METHODS: dict[str, MethodSpec] = REGISTRY  # one dict: a method reading REGISTRY sees these
METHODS.update({
    "zero_shot": zero_shot.SPEC,
    "few_shot": few_shot.SPEC,
    "dynamic_few_shot": dynamic_few_shot.SPEC,
    "rag": rag.SPEC,
    "prompt_search": prompt_search.SPEC,
    "prompt_tuning": prompt_tuning.SPEC,
    "lora": lora.SPEC,
    "full": full.SPEC,
    "dpo": dpo.SPEC,
    "distill": distill.SPEC,
})


def get_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise TunelabError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}")
    return METHODS[name]


def is_trained(method: MethodConfig) -> bool:
    """Whether a method config changes weights (a training method, or any stages)."""
    return get_spec(method.name).trains or bool(method.stages)


def needs_local_model(method: MethodConfig) -> bool:
    return get_spec(method.name).needs_local_model or bool(method.stages)


def get_method(name: str) -> Callable[[Context], Predictor]:
    """The method's build, with its settings read off ctx.method, its stages run first,
    and its `search:` (if any) run around it (each candidate's settings read afresh)."""
    spec = get_spec(name)

    def run(ctx: Context) -> Predictor:
        if ctx.settings is None:
            ctx = replace(ctx, settings=spec.settings_of(ctx.method))
        return with_stages(spec.build)(ctx)

    return with_search(run, is_trained)


def check_methods(cfg: RunConfig, entries: list) -> None:
    """Every method entry of a config read from a file: known name, only its own keys,
    valid settings, stages and train overrides (so a bad one fails before any cell runs)."""
    entries = entries if isinstance(entries, list) else [entries]
    for i, (m, raw) in enumerate(zip(cfg.methods, entries, strict=False)):
        where = f"methods[{i}]"
        if m.name not in METHODS:
            raise TunelabError(f"{where}.name: Unknown method '{m.name}'. Available: {', '.join(METHODS)}")
        spec = METHODS[m.name]
        if isinstance(raw, dict):
            spec.check_keys(raw, f"{where} ({m.name})")
        own_settings = spec.settings_of(m)
        if spec.check is not None:
            try:
                spec.check(own_settings, cfg)
            except TunelabError as e:
                raise TunelabError(f"methods.{m.label or m.name}.{e}") from None
        own = spec.names
        for key in m.search:
            if key in SEARCH_METHOD and key not in own:
                raise TunelabError(f"methods.{m.label or m.name}.search.{key}: not a setting of "
                                   f"{m.name}. Its settings: {', '.join(sorted(own))} (and training's)")
        check_stages(m.stages, method_train(cfg, m), f"methods.{m.label or m.name}")  # both checked


def load_config(path: str | Path) -> RunConfig:
    """A config file read and checked in full: the shared keys (core.config.read_config),
    then each method entry's own keys, settings, stages and train overrides, so the file is
    named and a bad entry fails before any cell runs. The registry checks, not the config
    module, because config sits below every method."""
    cfg, data = read_config(path)
    try:
        check_methods(cfg, data.get("methods", []))
    except TunelabError as e:
        raise TunelabError(f"{Path(path)}: {e}") from None
    return cfg


__all__ = ["METHODS", "Context", "MethodSpec", "Predictor", "check_methods", "get_method", "load_config",
           "get_spec", "is_trained", "needs_local_model"]
