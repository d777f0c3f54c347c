"""lora: low-rank adapters (peft) on the chosen linear layers, trained by the shared loop.

The adapter is saved with the run; for evaluation it is merged into the private copy,
so generation costs the same as the base model. `tune` is also the `sft` training stage.
"""

from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

from tunelab.backends.device import is_quantized
from tunelab.core.config import TrainConfig
from tunelab.eval.predictor import Predictor
from tunelab.methods.base import Context, MethodSpec, Prompted, chat_predictor
from tunelab.methods.finetune import fine_tune, trainable_copy


def lora_config(cfg: TrainConfig) -> LoraConfig:
    """The peft adapter the train settings describe (also used by dpo and the probes)."""
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, task_type="CAUSAL_LM")


def tune(ctx: Context, system: str | None = None, user=None):
    """Train a LoRA adapter on ctx.train; returns (merged model, info, system prompt)."""
    cfg = ctx.train_cfg
    base = trainable_copy(ctx.model)
    if is_quantized(base):  # QLoRA: norms in fp32, inputs that carry gradients (peft)
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    model = get_peft_model(base, lora_config(cfg))
    system, info = fine_tune(ctx, model, f"lora n={len(ctx.train)}", system, user)
    if cfg.save:
        path = ctx.run_dir / "adapter"
        model.save_pretrained(path)
        info.artifact = str(path)
    # a quantized base keeps the adapter beside it: merging into 8/4-bit weights rounds it
    return (model if is_quantized(base) else model.merge_and_unload()), info, system


def build(ctx: Context) -> Predictor:
    model, info, system = tune(ctx)
    return chat_predictor(ctx, model, system, info=info)


SPEC = MethodSpec("lora", Prompted, trains=True, needs_local_model=True, build=build,
                  lr=2e-3, saved="adapter", mergeable=True, floor_exact=True, stage="sft", tune=tune)
"""lr: the rate the shipped configs were tuned with on ViGGO (against 1e-3 on the demo's grid)."""
