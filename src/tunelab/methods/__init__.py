"""Methods, looked up by name: METHODS = {"lora": lora.SPEC, ...}.

Each module declares a MethodSpec (methods/base.py): everything about the method, its
settings dataclass and default lr included. Adding a method is its module plus one line,
`register(SPEC)` (below for the shipped ones; tests/plugins holds methods registered from
outside the package); tests/test_specs.py walks every entry through config validation, a
tiny-model cell and the report. Any method may carry `stages:` (training stages run
first, see stages.py).
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tunelab import TunelabError
from tunelab.core.config import (
    SEARCH_TRAIN,
    MethodConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    merged_train,
    read_config,
    to_dict,
)
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
from tunelab.methods.base import REGISTRY, Context, MethodSpec, register
from tunelab.methods.search_run import with_search
from tunelab.methods.stages import check_stages, with_stages

METHODS: dict[str, MethodSpec] = REGISTRY  # one dict: a method reading REGISTRY sees these
for _spec in (zero_shot.SPEC, few_shot.SPEC, dynamic_few_shot.SPEC, rag.SPEC, prompt_search.SPEC,
              prompt_tuning.SPEC, lora.SPEC, full.SPEC, dpo.SPEC, distill.SPEC):
    register(_spec)


def get_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise TunelabError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}")
    return METHODS[name]


def resolve(method: MethodConfig) -> MethodConfig:
    """The entry with its own settings made into its spec's dataclass (one line naming a
    key it lacks or a bad value); an entry already resolved is returned as it is."""
    spec = get_spec(method.name)
    if isinstance(method.settings, spec.settings):
        return method
    return replace(method, settings=spec.settings_of(method))


def method_train(cfg: RunConfig, method: MethodConfig) -> TrainConfig:
    """The top-level train settings with the method's overrides applied; an lr set
    nowhere is the method's own (its spec's `lr`)."""
    return merged_train(cfg, method, get_spec(method.name).lr)


def default_lrs() -> dict[str, float]:
    """Each training method's default lr (its spec's), by name: the note `tunelab init` writes."""
    return {n: s.lr for n, s in METHODS.items() if s.trains and s.lr is not None}


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
    valid settings, stages and train overrides (so a bad one fails before any cell runs).
    Each entry's settings are made into its spec's dataclass, in place."""
    entries = entries if isinstance(entries, list) else [entries]
    for i, (m, raw) in enumerate(zip(cfg.methods, entries, strict=False)):
        where = f"methods[{i}]"
        if m.name not in METHODS:
            raise TunelabError(f"{where}.name: Unknown method '{m.name}'. Available: {', '.join(METHODS)}")
        spec = METHODS[m.name]
        if isinstance(raw, dict):
            spec.check_keys(raw, f"{where} ({m.name})")
        cfg.methods[i] = m = resolve(m)
        if spec.check is not None:
            try:
                spec.check(m.settings, cfg)
            except TunelabError as e:
                raise TunelabError(f"methods.{m.label or m.name}.{e}") from None
        check_search(spec, m)
        check_stages(m.stages, method_train(cfg, m), f"methods.{m.label or m.name}")  # both checked


def check_search(spec: MethodSpec, m: MethodConfig) -> None:
    """`search:` over the method's own settings: each a setting of its spec (training's were
    checked by MethodConfig), each value valid for it; else one line naming the key."""
    for key, values in m.search.items():
        where = f"methods.{m.label or m.name}.search.{key}"
        if key in SEARCH_TRAIN:
            continue
        if key not in spec.names:
            raise TunelabError(f"{where}: not a searchable setting of {m.name}. Its settings: "
                               f"{', '.join(spec.names)} (and training's: {', '.join(sorted(SEARCH_TRAIN))})")
        for v in values:
            from_dict(spec.settings, {**to_dict(m.settings), key: v}, where)


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
           "get_spec", "is_trained", "method_train", "needs_local_model", "register", "resolve"]
