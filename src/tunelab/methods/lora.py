"""lora: low-rank adapters (peft) on the chosen linear layers, trained by the shared loop.

The adapter is saved with the run; for evaluation it is merged into the private copy,
so generation costs the same as the base model.
"""

from peft import LoraConfig, get_peft_model

from tunelab.methods.base import Context, Predictor
from tunelab.methods.finetune import fine_tune, trainable_copy


def build(ctx: Context) -> Predictor:
    cfg = ctx.train_cfg
    peft_cfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(trainable_copy(ctx), peft_cfg)
    pred, info = fine_tune(ctx, model, label=f"lora n={len(ctx.train)}")
    if cfg.save:
        path = ctx.run_dir / "adapter"
        model.save_pretrained(path)
        info["artifact"] = str(path)
    pred.model = model.merge_and_unload()
    pred.info.update(info)
    return pred
