"""norm_tune: fine-tune only the normalisation weights (a few thousand numbers), through
the shared training loop; the whole model is saved, so it exports like full fine-tuning,
and it runs as a training stage (`stages: [{kind: norm}]`).

Written outside the package to show what a new training method takes: this module and
one registration line (its lr, what it saves, its stage kind are on its spec).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.eval.predictor import Predictor
from tunelab.methods.base import Context, MethodSpec, Prompted, chat_predictor
from tunelab.methods.finetune import fine_tune, trainable_copy


@dataclass
class Settings(Prompted):
    last_layers: int = 0
    """Train the norms of the last this many decoder layers only (0: every norm)."""


def norms(model, last: int) -> list:
    """The model's norm weights (of the last `last` layers, and the final norm)."""
    layers = model.config.num_hidden_layers
    keep = []
    for name, p in model.named_parameters():
        if "norm" not in name:
            continue
        layer = next((int(x) for x in name.split(".") if x.isdigit()), None)
        if not last or layer is None or layer >= layers - last:
            keep.append(p)
    return keep


def tune(ctx: Context, system: str | None = None, user=None):
    """Train the norms on ctx.train; returns (model, info, system prompt)."""
    model = trainable_copy(ctx.model)
    for p in norms(model, getattr(ctx.settings, "last_layers", 0)):
        p.requires_grad_(True)
    system, info = fine_tune(ctx, model, f"norm_tune n={len(ctx.train)}", system, user)
    if ctx.train_cfg.save:
        path = ctx.run_dir / "model"
        model.save_pretrained(path, safe_serialization=True)
        ctx.tok.save_pretrained(path)
        info.artifact = str(path)
    return model, info, system


def build(ctx: Context) -> Predictor:
    model, info, system = tune(ctx)
    return chat_predictor(ctx, model, system, info=info)


SPEC = MethodSpec("norm_tune", Settings, trains=True, needs_local_model=True, build=build,
                  lr=1e-2, saved="model", mergeable=True, floor_exact=True, stage="norm", tune=tune)
