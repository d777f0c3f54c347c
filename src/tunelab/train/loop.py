"""The one training loop shared by LoRA, full fine-tuning and soft prompts.

Methods differ only in which parameters are trainable. Loss is on completion tokens
only (train/batches.py builds the mask and the batches; this module re-exports them).
The LM head and cross-entropy run only at supervised positions: scoring all 49k-way
logits at every position costs seconds per step on CPU and GBs of memory, for nothing.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tunelab import TunelabError
from tunelab.backends.device import cuda_bf16, frozen_in, of, tensors
from tunelab.core.config import DEFAULT_LR, TrainConfig
from tunelab.core.ui import budget_text, console, train_progress
from tunelab.train.batches import (
    BUCKET,
    MICRO_TOKENS,
    Encoded,
    assistant_spans,
    collate,
    encode,
    micro_batches,
    plain_text,
    shuffled_batches,
)
from tunelab.train.precision import Decision, autocast, block_shape, choose, loss_agrees
from tunelab.train.stats import TrainStats
from tunelab.train.stopping import (
    Stopper,
    convergence,
    in_trial,
    lr_factor,
    out_of_seconds,
    schedule_position,
    train_budget,
)

__all__ = ["BUCKET", "MICRO_TOKENS", "Encoded", "Prefixed", "Shard", "TrainStats", "accumulate",
           "assistant_spans", "collate", "completion_loss_sum", "encode", "micro_batches",
           "plain_text", "seed_everything", "train_loop", "validation_loss"]
"""The loop's API, the tokenised-example and batch helpers of train/batches.py included."""


def seed_everything(seed: int) -> None:
    """Same seed, same cell: adapter init and dropout must not depend on which cells ran
    before in this process (a resumed grid runs a different sequence)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Prefixed(torch.nn.Module):
    """A model that runs learned vectors in front of every sequence (prompt tuning's
    methods/prompt_tuning.SoftPrompted): the loss reads its hidden states at the positions
    of the real tokens, so it declares them instead of the loop guessing by attribute."""

    def hidden_states(self, ids: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_output_embeddings(self):
        raise NotImplementedError


def _parts(model):
    """(backbone returning hidden states, LM head), through a peft wrapper if any."""
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return base.get_decoder(), base.get_output_embeddings()


def completion_loss_sum(model, ids, att, sup) -> torch.Tensor:
    """Summed next-token cross-entropy over supervised positions only."""
    if isinstance(model, Prefixed):  # soft-prompt models prepend virtual tokens
        hidden, head = model.hidden_states(ids, att), model.get_output_embeddings()
    else:
        decoder, head = _parts(model)
        hidden = decoder(input_ids=ids, attention_mask=att).last_hidden_state
    target_mask = sup[:, 1:]
    h = hidden[:, :-1][target_mask]
    logits = head(h).float()
    return F.cross_entropy(logits, ids[:, 1:][target_mask], reduction="sum")


class Shard:
    """This process's share of data-parallel training (torchrun / accelerate launch):
    rank r of w takes items r, r+w, ... of every micro-batch. Single process: (0, 1).

    DDP (accelerate) replicates the model. With `fsdp`, a copy of it is sharded with
    torch's FSDP2 (`fully_shard` per decoder layer, then the rest) and trained; `finish`
    gathers the trained weights into the caller's model on rank 0, which evaluates.
    """

    def __init__(self, model, fsdp: bool = False):
        self.rank, self.world, self.loss_fn = 0, 1, None
        self.accelerator, self.module, self.kind = None, model, "none"
        if model is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            # On CPU accelerate must be told, or it ignores WORLD_SIZE and runs alone; on
            # CUDA it uses LOCAL_RANK's card, where load_model (device.resolve) put the model.
            self.accelerator = Accelerator(cpu=of(model).type == "cpu")
            self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
            if fsdp:  # accelerate's FSDP is GPU-only; torch's fully_shard also runs over gloo
                from torch.distributed.fsdp import fully_shard

                self.module = copy.deepcopy(model)
                self.loss_fn = _LossModule(self.module)
                for m in self.module.modules():
                    if type(m).__name__.endswith("DecoderLayer"):
                        fully_shard(m)
                fully_shard(self.loss_fn)  # embeddings, final norm, head: gathered per forward
                self.kind = "fsdp"
            else:  # DDP syncs gradients only for a forward run through its wrapper.
                self.loss_fn = self.accelerator.prepare_model(_LossModule(model))
                self.kind = "ddp"

    def finish(self, model) -> None:
        """FSDP: the full trained weights into `model` on rank 0 (a collective call)."""
        if self.module is model:
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True,
                                                                          cpu_offload=True))
        if self.rank == 0:
            model.load_state_dict(full)

    def loss_sum(self, model, ids, att, sup) -> torch.Tensor:
        if self.loss_fn is None:
            return completion_loss_sum(model, ids, att, sup)
        return self.loss_fn(ids, att, sup)

    def total(self, x: float) -> float:
        """Sum of a per-process number over all processes."""
        if self.accelerator is None:
            return x
        x = tensors(self.accelerator.device).tensor([x])  # NCCL reduces CUDA tensors only
        return float(self.accelerator.reduce(x, reduction="sum")[0])


class _LossModule(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, att, sup):
        return completion_loss_sum(self.model, ids, att, sup)


def accumulate(model, batches: list[list[Encoded]], pad_id: int,
               shard: Shard | None = None, precision: str = "fp32") -> tuple[float, int, int]:
    """Backward over one optimizer step's micro-batches; returns (loss, supervised, tokens).

    The loss is normalised by the supervised tokens of the whole window, so accumulated
    micro-batches give the same gradient as one large batch. Data-parallel: every process
    knows the whole window, takes its share, and scales by the world size because DDP
    averages gradients; the sum over processes is then the single-process gradient.
    """
    shard = shard or Shard(None)
    world = shard.world
    n_sup = sum(sum(e.supervised[1:]) for b in batches for e in b)
    total, tokens = 0.0, 0
    for b in batches:
        mine = b[shard.rank :: world]
        # A process with nothing left still joins the gradient all-reduce, with zero weight.
        weight = 1.0 if mine else 0.0
        ids, att, sup = collate(mine or b[:1], pad_id, model)
        with autocast(precision, model):  # the forward only: backward follows the forward's dtypes
            loss = shard.loss_sum(model, ids, att, sup) * (weight * world / max(1, n_sup))
        loss.backward()
        total += loss.item() / world
        tokens += int(att.sum()) if mine else 0
    return total, n_sup, tokens


def validation_loss(shard: Shard, items: list[Encoded], pad_id: int, micro_tokens: int) -> tuple[float, int]:
    """(summed completion loss, supervised tokens) over `items`, shared by the processes
    like training micro-batches (every process joins every forward, FSDP needs it)."""
    total, n_sup = 0.0, 0
    for b in micro_batches(items, micro_tokens):
        mine = b[shard.rank :: shard.world]
        ids, att, sup = collate(mine or b[:1], pad_id, shard.module)
        loss = shard.loss_sum(shard.module, ids, att, sup)
        if mine:
            total += float(loss.detach())
            n_sup += int(sup[:, 1:].sum())
    return shard.total(total), int(shard.total(n_sup))


PROBE = 16
"""Examples on which bf16's loss is compared with fp32's before training (precision auto)."""


@torch.no_grad()
def decide_precision(cfg: TrainConfig, shard: Shard, probe: list[Encoded], pad_id: int) -> Decision:
    """train.precision resolved: auto keeps bf16 only if every process measured it faster
    and its loss on `probe` equals fp32's (precision.loss_agrees)."""
    d = choose(cfg.precision, *block_shape(shard.module), of(shard.module))
    if cfg.precision != "auto":
        return d
    if shard.total(1.0 if d.precision == "bf16" else 0.0) < shard.world:  # every rank votes
        return d if d.precision == "fp32" else Decision(
            "fp32", "bf16 not faster on every process", d.fp32_ms, d.bf16_ms)
    was_training = shard.module.training
    shard.module.eval()
    f32, n = validation_loss(shard, probe, pad_id, cfg.micro_tokens)
    with autocast("bf16", shard.module):
        b16, _ = validation_loss(shard, probe, pad_id, cfg.micro_tokens)
    shard.module.train(was_training)
    f32, b16 = f32 / max(1, n), b16 / max(1, n)
    if not loss_agrees(f32, b16):
        return Decision("fp32", f"bf16 loss {b16:.4f} drifts from fp32's {f32:.4f} on {len(probe)} "
                        "examples", d.fp32_ms, d.bf16_ms)
    return Decision("bf16", f"{d.reason}; loss {b16:.4f} vs fp32 {f32:.4f} on {len(probe)} examples",
                    d.fp32_ms, d.bf16_ms)


@dataclass
class _Run:
    """One training run's moving parts, shared by its steps (see train_loop)."""

    shard: Shard
    cfg: TrainConfig
    data: list[Encoded]
    stats: TrainStats
    opt: torch.optim.Optimizer
    stopper: Stopper
    prec: Decision
    total: int
    peak: float
    pad_id: int
    rng: random.Random
    t0: float = 0.0
    setup: float = 0.0
    """Seconds before the first step (the step-0 validation): not part of a step's mean."""
    micro: list[list[int]] = field(default_factory=list)

    def no_room(self) -> bool:
        """Out of train.max_seconds: the same answer on every process (a collective, so
        all call it)."""
        c = self.cfg
        return bool(c.max_seconds) and self.shard.total(out_of_seconds(
            time.perf_counter() - self.t0, self.stats.steps, c.max_seconds, self.setup)) > 0

    def step(self) -> float:
        """One optimizer step over the next grad_accum batches; returns its loss."""
        c, shard, stats = self.cfg, self.shard, self.stats
        if not self.micro:
            self.micro = shuffled_batches([len(e.ids) for e in self.data], c.batch_size, self.rng)
        group, self.micro = self.micro[: c.grad_accum], self.micro[c.grad_accum :]
        window = [self.data[i] for b in group for i in b]
        # The schedule runs over the budget: steps, or seconds where those end first,
        # so a seconds budget still ends with the decay (the same on every process).
        elapsed = shard.total(time.perf_counter() - self.t0) / shard.world
        pos = schedule_position(stats.steps, self.total, elapsed, c.max_seconds)
        warm = max(1, int(self.total * c.warmup_ratio))
        for g in self.opt.param_groups:
            g["lr"] = self.peak * lr_factor(pos, self.total, warm, c.schedule) * self.stopper.scale
        parts = micro_batches(window, c.micro_tokens)
        step_loss, n_sup, n_tok = accumulate(shard.module, parts, self.pad_id, shard, self.prec.precision)
        step_loss, n_tok = shard.total(step_loss), int(shard.total(n_tok))
        stats.tokens += n_tok
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        stats.steps += 1
        stats.supervised_tokens += n_sup
        stats.losses.append(step_loss)
        return step_loss

    def paused(self, model, on_step) -> None:
        """on_step(stats) with the model in eval mode; its time is not training time."""
        paused = time.perf_counter()
        self.stats.seconds = paused - self.t0
        model.eval()
        on_step(self.stats)
        model.train()
        self.t0 += time.perf_counter() - paused


def _start(model, tok, data: list[Encoded], cfg: TrainConfig, seed: int,
           val: list[Encoded] | None, on_step) -> _Run:
    """Shard, optimizer, budget, precision and stopper of a run, before its first step."""
    shard = Shard(model, cfg.fsdp)
    if on_step is not None and shard.module is not model:
        raise TunelabError("train.fsdp: per-step callbacks (the probes) need unsharded weights")
    params = [p for p in shard.module.parameters() if p.requires_grad]
    stats = TrainStats(trainable_params=sum(p.numel() for p in params),
                       truncated=sum(e.truncated for e in data), processes=shard.world,
                       parallel=shard.kind)
    auto = cfg.epochs == "auto"
    total = train_budget(cfg, len(data), 1.0 if auto and not val else cfg.epochs)
    # fused: one kernel over all parameters; measured 4.9x faster than the default AdamW
    # step for full fine-tuning here (bench/breakdown.py). Not for FSDP's sharded tensors.
    peak = cfg.lr if cfg.lr is not None else DEFAULT_LR
    opt = torch.optim.AdamW(params, lr=peak, weight_decay=cfg.weight_decay,
                            fused=shard.kind != "fsdp")
    rng = random.Random(seed)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    every = cfg.eval_every or max(1, math.ceil(len(data) / (cfg.batch_size * cfg.grad_accum)) // 2)
    prec = decide_precision(cfg, shard, (val or data)[:PROBE], pad_id)
    stats.precision, stats.precision_reason = prec.precision, prec.reason

    def val_loss(items):
        with autocast(prec.precision, shard.module):
            return validation_loss(shard, items, pad_id, cfg.micro_tokens)

    stopper = Stopper(shard.module, val or [], val_loss, every, cfg.patience, early=auto and bool(val),
                      drops=cfg.plateau_drops)
    stats.stop_reason = "no_validation" if auto and not val else ("budget" if auto else "epochs")
    return _Run(shard, cfg, data, stats, opt, stopper, prec, total, peak, pad_id, rng)


def _finish(run: _Run, model, label: str) -> TrainStats:
    """Best weights back, the curve and its convergence into the stats, a warning if it
    did not converge; the trained weights in `model` (FSDP gathers them), in eval mode."""
    stats, stopper = run.stats, run.stopper
    stats.best_step = stopper.restore_best()
    stats.seconds = time.perf_counter() - run.t0
    stats.val_steps, stats.val_losses = stopper.curve.steps, stopper.curve.losses
    stats.converged, stats.convergence_note = convergence(stopper.curve, stats.stop_reason)
    if stats.converged is False and not in_trial():  # a search's rung stops short by design
        console.print(f"[yellow]warning:[/] {label} did not converge: {stats.convergence_note}",
                      highlight=False, soft_wrap=True)
    run.shard.finish(model)
    model.eval()
    return stats


def train_loop(model, tok, data: list[Encoded], cfg: TrainConfig, seed: int,
               label: str = "train", on_step=None, val: list[Encoded] | None = None) -> TrainStats:
    """Train the parameters of `model` that require grad; returns what it cost.

    With `val` (validation examples), the validation loss is measured before training and
    every `cfg.eval_every` steps; with `epochs: auto` training stops `patience`
    evaluations after the best one (or at the budget) and the best weights are restored.
    `on_step(stats)`, if given, is called after every optimizer step with the model in
    eval mode and the stats so far (the probes measure at checkpoints of one run); its
    own time is not counted as training time.
    """
    torch.manual_seed(seed)
    run = _start(model, tok, data, cfg, seed, val, on_step)
    stats, stopper, total = run.stats, run.stopper, run.total
    run.t0 = time.perf_counter()
    if stopper.active:
        stopper.evaluate(0)
    run.setup = time.perf_counter() - run.t0
    run.shard.module.train()
    # On a bf16 CUDA card the frozen weights train in bf16 (device.frozen_in); FSDP owns its copy.
    half = run.prec.precision == "bf16" and cuda_bf16(of(model)) and run.shard.kind != "fsdp"
    with train_progress() as bar, frozen_in(run.shard.module, torch.bfloat16 if half else None):
        task = bar.add_task(label, total=total, budget=budget_text(0, total, 0.0, cfg.max_seconds), info="")
        while stats.steps < total:
            step_loss = run.step()
            rate = stats.tokens / (time.perf_counter() - run.t0)
            out_of_time = run.no_room()
            last = stats.steps == total or out_of_time
            val_info = ""
            if stopper.due(stats.steps, last):
                val_info = f"  val {stopper.evaluate(stats.steps):.3f}"
                # a regular validation that used the next step's room makes this step the
                # last (already validated), not one more step and a second validation
                if not last:
                    out_of_time = run.no_room()
            spent = time.perf_counter() - run.t0  # the bar: the budget that binds (schedule_position)
            done = min(total, schedule_position(stats.steps, total, spent, cfg.max_seconds))
            bar.update(task, completed=done, budget=budget_text(stats.steps, total, spent, cfg.max_seconds),
                       info=f"loss {step_loss:.3f}{val_info}  {rate:.0f} tok/s")
            if on_step is not None:
                run.paused(model, on_step)
            stop = "early_stop" if stopper.should_stop() else "budget" if out_of_time else None
            if stop:
                stats.stop_reason = stop
                break
    return _finish(run, model, label)
