"""Staged training: a method config's `stages:` run in order, then the method itself.

Each stage trains on the model the previous one left (sft: LoRA through the shared
loop, merged; dpo: TRL), on the task's examples or on another dataset (`data:`), and is
scored on the test slice through the grid's checkpoint, so the report shows what each
stage added. Examples: alpaca SFT then task LoRA; SFT then DPO; SFT then RAG ("RAG + FT").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tunelab import TunelabError
from tunelab.core.config import (
    DEFAULT_LR,
    MethodConfig,
    RunConfig,
    StageConfig,
    TrainConfig,
    from_dict,
    merged_train,
    to_dict,
)
from tunelab.data.datasource import data_dir
from tunelab.data.readers import Example, read_examples, sample
from tunelab.methods.base import REGISTRY, Context, chat_predictor, stage_kinds

GENERIC = "Follow the instruction and reply with the answer only."
"""System prompt of stages trained on another dataset than the task's."""


def staged(cfg: RunConfig, method: MethodConfig) -> MethodConfig:
    """The method with each stage's lr written into its train overrides where it differs
    from the method's resolved lr (see StageConfig.train). Stages that train at the
    method's rate are left as they were, so their cells keep their keys."""
    if not method.stages:
        return method
    inherited = merged_train(cfg, method, REGISTRY[method.name].lr if method.name in REGISTRY else None).lr
    kinds, stages = stage_kinds(), []
    for s in method.stages:
        if s.train.get("lr") is None:
            kind_lr = kinds[s.kind].lr if s.kind in kinds else None
            lr = cfg.train.lr if cfg.train.lr is not None else kind_lr if kind_lr is not None else DEFAULT_LR
            if lr != inherited:
                s = replace(s, train={**s.train, "lr": lr})
        stages.append(s)
    return replace(method, stages=stages)


def _examples(ctx: Context, stage: StageConfig, where: str) -> list[Example]:
    if stage.data is None:
        return ctx.train
    path = Path(stage.data)
    if not path.is_absolute() and not path.exists():
        path = data_dir() / path
    if not path.exists():
        raise TunelabError(f"{where}.data: {stage.data}: file not found (also not under {data_dir()})")
    return sample(read_examples(path), stage.n, ctx.seed)


def check_stages(stages: list[StageConfig], train: TrainConfig, where: str) -> None:
    """Each stage's kind (a method of the registry that runs as a stage) and train
    overrides, checked when the config is read."""
    kinds = stage_kinds()
    for i, stage in enumerate(stages):
        if stage.kind not in kinds:
            raise TunelabError(f"{where}.stages[{i}].kind: Unknown stage '{stage.kind}'. "
                               f"Available: {', '.join(kinds)}")
        from_dict(TrainConfig, {**to_dict(train), **stage.train}, f"{where}.stages[{i}].train")


def label(stage: StageConfig) -> str:
    return stage.label or f"{stage.kind} on {stage.data or 'task'}"


def run_stages(ctx: Context) -> tuple[Context, list[dict]]:
    """The context with ctx.model replaced by the staged model, and one record per stage."""
    records, model = [], ctx.model
    for i, stage in enumerate(ctx.method.stages):
        where = f"methods.{ctx.method.name}.stages[{i}]"
        check_stages([stage], ctx.train_cfg, f"methods.{ctx.method.name}")
        spec = stage_kinds()[stage.kind]
        # the method's own settings when they are of the stage's kind, else that kind's
        # defaults with the method's prompt
        settings = ctx.settings if isinstance(ctx.settings, spec.settings) else \
            spec.settings(prompt=ctx.settings.prompt)
        train_cfg = from_dict(TrainConfig, {**to_dict(ctx.train_cfg), **stage.train}, f"{where}.train")
        sctx = replace(ctx, model=model, train=_examples(ctx, stage, where), train_cfg=train_cfg,
                       run_dir=ctx.run_dir / f"stage{i}", settings=settings)
        sctx.run_dir.mkdir(parents=True, exist_ok=True)
        foreign = stage.data is not None
        model, info, system = spec.tune(
            sctx, GENERIC if foreign else None, (lambda e: e.input) if foreign else None)
        record = {"stage": label(stage), "n_train": len(sctx.train), "lr": train_cfg.lr, **info.to_json()}
        if ctx.checkpoint:
            record["metrics"] = ctx.checkpoint(record["stage"], chat_predictor(ctx, model, system))
        records.append(record)
    return replace(ctx, model=model), records


def with_stages(build):
    """Wrap a method's build so its config's stages run first; costs add up."""

    def staged(ctx: Context):
        if not ctx.method.stages:
            return build(ctx)
        sctx, records = run_stages(ctx)
        pred = build(sctx)
        info = pred.info
        info.stages = [{k: v for k, v in r.items() if k not in ("losses", "masked_example")}
                       for r in records]
        for key in ("train_seconds", "trainable_params", "train_tokens"):
            setattr(info, key, (getattr(info, key) or 0) + sum(r.get(key, 0) for r in records))
        if not info.is_set("masked_example"):  # the first stage's, for a method that trains none
            info.masked_example = records[0].get("masked_example")
        return pred

    return staged
