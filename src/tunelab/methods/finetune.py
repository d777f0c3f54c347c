"""Shared by every fine-tuning method: copy the base model, encode, train, predict.

lora.py / full.py only decide what is trainable and what is saved.
"""

from __future__ import annotations

import copy

from tunelab.backends.device import out_of_memory
from tunelab.backends.prompt import messages, render
from tunelab.core.ui import console
from tunelab.data.readers import sample
from tunelab.eval.predictor import PredictorInfo
from tunelab.methods.base import Context, instruction
from tunelab.train.loop import encode, train_loop


def trainable_copy(model):
    """A private copy of the base model, so cells never see each other's weights."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def stats_info(stats) -> dict:
    """What a training run cost and how it ended (TrainStats), as stored with the run."""
    return {"train_seconds": stats.seconds, "train_tokens": stats.tokens,
            "train_steps": stats.steps, "tokens_per_s": stats.tokens_per_s,
            "trainable_params": stats.trainable_params, "losses": stats.losses,
            "val_steps": stats.val_steps, "val_losses": stats.val_losses,
            "best_step": stats.best_step, "stop_reason": stats.stop_reason,
            "converged": stats.converged, "convergence_note": stats.convergence_note,
            "precision": stats.precision, "precision_reason": stats.precision_reason}


VAL_SEED = 0
"""The validation examples are drawn with one seed, so every cell (size, seed, method)
is stopped on the same ones."""


def fine_tune(ctx: Context, model, label: str, system: str | None = None,
              user=None) -> tuple[str, PredictorInfo]:
    """Train `model` (its trainable parameters) on ctx.train; returns (system prompt, info).

    `system` and `user` (example -> user message) default to the task's; a stage trained
    on another dataset (e.g. alpaca) passes its own.
    """
    system = instruction(ctx, "short") if system is None else system
    own_data = user is None  # the task's own examples, which its validation split matches
    user = user or ctx.task.turns
    cfg = ctx.train_cfg
    data = [encode(ctx.tok, messages(system, user(e)), e.target, cfg.max_length, e.id)
            for e in ctx.train]
    # A stage trained on other data (user given) is not validated on the task's examples.
    pool = ctx.validation if own_data and cfg.val_size else []
    val = [encode(ctx.tok, messages(system, user(e)), e.target, cfg.max_length, e.id)
           for e in sample(pool, cfg.val_size, VAL_SEED)]
    if cfg.epochs == "auto" and not val:
        console.print(f"[yellow]warning:[/] {label}: no validation examples, so epochs auto "
                      "trains one epoch (give the task a validation split)", highlight=False)
    lower = (f"train.batch_size ({cfg.batch_size}), train.micro_tokens ({cfg.micro_tokens}) "
             f"or train.max_length ({cfg.max_length})")
    with out_of_memory(model, f"training ({label})", lower):
        stats = train_loop(model, ctx.tok, data, cfg, ctx.seed, label=label, val=val)
    info = PredictorInfo(
        **stats_info(stats),
        supervised_tokens=stats.supervised_tokens,
        truncated_examples=stats.truncated,
        processes=stats.processes,
        parallel=stats.parallel,
        final_loss=stats.losses[-1] if stats.losses else None,
        epochs_trained=stats.steps * cfg.batch_size * cfg.grad_accum / max(1, len(data)),
        masked_example=masked_view(ctx.tok, data[0]),
    )
    if own_data:  # what evaluation must render for this example too (lint.check_predictor)
        info.train_prompt = render(ctx.tok, messages(system, user(ctx.train[0])))
    return system, info


def masked_view(tok, enc) -> str:
    """One training example with its supervised part in [[...]], for the report."""
    out, inside = [], False
    for tid, sup in zip(enc.ids, enc.supervised, strict=True):
        if sup != inside:
            out.append("[[" if sup else "]]")
            inside = sup
        out.append(tok.decode([tid]))
    return "".join(out) + ("]]" if inside else "")
