"""full: every weight trainable, same loop as LoRA. Saves the weights as safetensors."""

from tunelab.eval.predictor import Predictor
from tunelab.methods.base import Context, MethodSpec, Prompted, chat_predictor
from tunelab.methods.finetune import fine_tune, trainable_copy


def build(ctx: Context) -> Predictor:
    model = trainable_copy(ctx.model)
    for p in model.parameters():
        p.requires_grad_(True)
    system, info = fine_tune(ctx, model, label=f"full n={len(ctx.train)}")
    if ctx.train_cfg.save:
        path = ctx.run_dir / "model"
        model.save_pretrained(path, safe_serialization=True)
        ctx.tok.save_pretrained(path)
        info.artifact = str(path)
    return chat_predictor(ctx, model, system, info=info)


SPEC = MethodSpec("full", Prompted, trains=True, needs_local_model=True, build=build,
                  lr=5e-5, saved="model", mergeable=True, floor_exact=True)
