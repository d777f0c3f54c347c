"""dpo: preference tuning with TRL's DPOTrainer on pairs built from the task itself.

chosen = the reference answer, rejected = the model's own wrong answer to a training
input (greedy, generated once with tunelab.backends.generate and cached on disk by weights and
prompts). Pairs where the model was already right are dropped: there is no preference
to learn; an empty answer is a wrong answer. A LoRA adapter is trained (the reference
model is the same weights with the adapter off, so no second copy is held) and merged
for evaluation. Put an `sft` stage
before it (`stages: [{kind: sft}]`) for "DPO after SFT"; `tune` is the `dpo` stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from tunelab import TunelabError
from tunelab.backends.device import of, out_of_memory
from tunelab.backends.generate import generate
from tunelab.backends.hf import fingerprint
from tunelab.backends.local_model import cache_root
from tunelab.backends.prompt import messages, render
from tunelab.core.cache import cached_json, digest
from tunelab.core.ui import progress
from tunelab.data.readers import Example
from tunelab.eval.predictor import Predictor, PredictorInfo
from tunelab.methods.base import Context, MethodSpec, Prompted, chat_predictor, instruction
from tunelab.methods.finetune import trainable_copy
from tunelab.methods.lora import lora_config
from tunelab.tasks.base import Task


@dataclass
class Settings(Prompted):
    beta: float = 0.1
    """Strength of the KL pull towards the reference model."""

    def __post_init__(self):
        super().__post_init__()
        if not self.beta > 0:
            raise TunelabError(f"beta: must be above 0, got {self.beta}")


def is_wrong(task: Task, output: str, ex: Example) -> bool:
    """The output scores worse than the reference itself on the task's primary metric."""
    metric = task.metrics[task.primary]
    got, best = task.score(output, ex)[task.primary], task.score(ex.target, ex)[task.primary]
    return got < best if metric.higher_is_better else got > best


def pairs(task: Task, system: str, examples: list[Example], outputs: list[str]) -> list[dict]:
    """Conversational preference records, one per example the model got wrong; the
    prompt is the example's whole conversation (task.turns), as every method sees it."""
    return [
        {"prompt": messages(system, task.turns(ex)),
         "chosen": [{"role": "assistant", "content": ex.target}],
         "rejected": [{"role": "assistant", "content": out}]}
        for ex, out in zip(examples, outputs, strict=True)
        if is_wrong(task, out, ex)
    ]


def own_outputs(ctx: Context, model, system: str, max_new: int) -> list[str]:
    """The model's greedy answers to the training inputs, cached on disk."""
    prompts = [render(ctx.tok, messages(system, ctx.task.turns(e))) for e in ctx.train]
    path = cache_root() / "own_outputs" / f"{digest([fingerprint(model), max_new, prompts], 20)}.json"
    return cached_json(path, lambda: [g.text for g in generate(model, ctx.tok, prompts, max_new,
                                                                   label="dpo: own outputs")])


def _trainer(ctx: Context, model, data: list[dict]):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    cfg = ctx.train_cfg
    # TRL's DPOTrainer runs its own loop: epochs auto (validation-driven in train_loop) is one
    # epoch here.
    epochs = 1.0 if cfg.epochs == "auto" else cfg.epochs
    # ceil, as train_loop counts steps: a partial last batch is still a step
    steps = max(cfg.min_steps, math.ceil(len(data) * epochs / (cfg.batch_size * cfg.grad_accum)), 1)
    args = DPOConfig(
        output_dir=str(ctx.run_dir / "dpo"), beta=ctx.settings.beta, learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        max_steps=steps, warmup_steps=int(steps * cfg.warmup_ratio), weight_decay=cfg.weight_decay,
        max_length=cfg.max_length, seed=ctx.seed, logging_steps=1, save_strategy="no",
        report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        # bf16 is TRL's default and hundreds of times slower on CPUs without bf16 units;
        # the trainer runs where model.device put the model (device.resolve)
        bf16=False, fp16=False, use_cpu=of(model).type == "cpu",
        activation_checkpointing=False,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(data),
                         processing_class=ctx.tok, peft_config=lora_config(cfg))
    # with its tqdm bar off, transformers prints every log dict to stdout (PrinterCallback),
    # which broke `tunelab run --json`; tunelab's own bar (stderr, in tune) takes both places
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    return trainer


def _bar_callback(bar):
    """A TrainerCallback driving `bar` (a tunelab progress bar): steps, and the last loss."""
    from transformers import TrainerCallback

    class Bar(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.task = bar.add_task("dpo", total=state.max_steps, info="")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                bar.update(self.task, info=f"loss {float(logs['loss']):.4f}")

        def on_step_end(self, args, state, control, **kwargs):
            bar.update(self.task, completed=state.global_step)

    return Bar()


def tune(ctx: Context, system: str | None = None, user=None):
    """DPO on ctx.train; returns (merged model, info, system prompt)."""
    if user is not None:
        raise TunelabError("dpo stage: pairs come from the task; a dpo stage cannot take `data`")
    system = instruction(ctx, "short") if system is None else system
    model = trainable_copy(ctx.model)
    outputs = own_outputs(ctx, model, system, ctx.task.max_new_tokens)
    data = pairs(ctx.task, system, ctx.train, outputs)
    if not data:
        raise TunelabError(f"dpo: the model answered all {len(ctx.train)} training inputs right; "
                           "no preference pairs to train on")
    trainer = _trainer(ctx, model, data)
    t0 = time.perf_counter()
    t = ctx.train_cfg
    with out_of_memory(model, "dpo training", f"train.batch_size ({t.batch_size}) or "
                       f"train.max_length ({t.max_length})"), progress() as bar:
        trainer.add_callback(_bar_callback(bar))  # the bar stops on an error too
        trainer.train()
    seconds = time.perf_counter() - t0
    tuned = trainer.model
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    info = PredictorInfo(
        train_seconds=seconds, train_steps=trainer.state.global_step,
        trainable_params=sum(p.numel() for p in tuned.parameters() if p.requires_grad),
        pairs=len(data), right_already=len(ctx.train) - len(data), beta=ctx.settings.beta,
        losses=losses, final_loss=losses[-1] if losses else None,
        rejected_example=data[0]["rejected"][0]["content"],
    )
    if ctx.train_cfg.save:
        path = ctx.run_dir / "adapter"
        tuned.save_pretrained(path)
        info.artifact = str(path)
    merged = tuned.merge_and_unload()
    merged.eval()
    for p in merged.parameters():
        p.requires_grad_(False)
    return merged, info, system


def build(ctx: Context) -> Predictor:
    model, info, system = tune(ctx)
    return chat_predictor(ctx, model, system, info=info)


SPEC = MethodSpec("dpo", Settings, trains=True, needs_local_model=True, build=build,
                  lr=1e-4, saved="adapter", mergeable=True, stage="dpo", tune=tune)
