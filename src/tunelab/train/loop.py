"""The one training loop shared by LoRA, full fine-tuning and (later) soft prompts.

Methods differ only in which parameters are trainable. Loss is on completion tokens
only: the mask comes from the character offset where the rendered prompt ends, and
every example must have some, but not all, tokens supervised (else we fail naming it).
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
from tunelab.backends.device import Tensors, cuda_bf16, frozen_in, of, tensors
from tunelab.backends.prompt import render
from tunelab.core.config import DEFAULT_LR, TrainConfig
from tunelab.core.ui import budget_text, console, train_progress
from tunelab.train.precision import Decision, autocast, block_shape, choose, loss_agrees
from tunelab.train.stopping import (
    Stopper,
    convergence,
    in_trial,
    lr_factor,
    out_of_seconds,
    schedule_position,
    train_budget,
)


@dataclass
class Encoded:
    ids: list[int]
    supervised: list[bool]
    """supervised[i]: token i is a completion token whose prediction is trained."""
    name: str
    truncated: bool = False


@dataclass
class TrainStats:
    steps: int = 0
    tokens: int = 0
    """Real (non-padding) tokens processed."""
    supervised_tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    truncated: int = 0
    trainable_params: int = 0
    processes: int = 1
    """Data-parallel processes that trained (accelerate launch / torchrun)."""
    parallel: str = "none"
    """How they shared the model: none, ddp (replicated) or fsdp (sharded)."""
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    """Validation loss (completion tokens) at val_steps; step 0 is before training."""
    best_step: int | None = None
    """epochs auto: the step whose weights were kept (the lowest validation loss)."""
    stop_reason: str = "epochs"
    """early_stop (patience), budget (max_epochs/max_steps/max_seconds), epochs (the fixed
    epochs), or no_validation (epochs auto without validation examples: one epoch)."""
    converged: bool | None = None
    """False when the validation loss was still falling at the budget's end, or barely
    moved; None when not measured."""
    convergence_note: str | None = None
    precision: str = "fp32"
    """What the steps ran in (train.precision resolved on this machine: fp32 or bf16)."""
    precision_reason: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def assistant_spans(tok, msgs: list[dict], name: str) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of every assistant turn in it
    (from the end of the generation prompt before it to the end of the turn, closing
    token included). Rendering each prefix of the conversation finds the spans without
    guessing at template markers; a template that renders a prefix differently fails."""
    full = render(tok, msgs, add_generation_prompt=False)
    spans = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before = render(tok, msgs[:i], add_generation_prompt=True)
        upto = render(tok, msgs[: i + 1], add_generation_prompt=False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise TunelabError(f"example {name}: chat template renders turn {i} differently "
                               "inside the conversation; cannot mask the loss")
        spans.append((len(before), len(upto)))
    return full, spans


def encode(tok, msgs: list[dict], completion: str | None, max_length: int, name: str) -> Encoded:
    """Tokenize a conversation; supervise the tokens that start inside an assistant turn.

    `completion` is appended as the final assistant turn (None: `msgs` already hold every
    assistant turn, as in multi-turn chat data). Offsets, not token matching, decide the
    mask, so tokenizer merges across a boundary cannot shift it.
    """
    if completion is not None:
        msgs = [*msgs, {"role": "assistant", "content": completion}]
    full, spans = assistant_spans(tok, msgs, name)
    if not spans:
        raise TunelabError(f"example {name}: no assistant turn to train on")
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    sup = [any(a <= start < b for a, b in spans) for start, _ in offsets]
    truncated = len(ids) > max_length
    ids, sup = ids[:max_length], sup[:max_length]
    if not any(sup):
        why = "truncated away (raise train.max_length)" if truncated else "empty"
        raise TunelabError(f"example {name}: no supervised tokens: completion {why}")
    if all(sup):
        raise TunelabError(f"example {name}: every token supervised: prompt not masked")
    return Encoded(ids, sup, name, truncated)


def plain_text(ids: list[int], name: str) -> Encoded:
    """A document for language-model training (the probes' corpora): every token after
    the first is a target.

    >>> plain_text([5, 6, 7], "doc").supervised
    [False, True, True]
    """
    if len(ids) < 2:
        raise TunelabError(f"{name}: fewer than 2 tokens, nothing to train on")
    return Encoded(list(ids), [False] + [True] * (len(ids) - 1), name)


BUCKET = 8
"""Batches are formed within shuffled pools of BUCKET batches, sorted by length there:
padding (computed for nothing) drops while batch order stays random."""


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * BUCKET
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


MICRO_TOKENS = TrainConfig.micro_tokens
"""Padded-token budget of one micro-batch (train.micro_tokens). A step's examples are
sorted by length and cut into micro-batches under this budget: padding is computed for
nothing, and accumulation over the window gives the same gradient as one batch. Matmuls
of ~100-600 rows still run near the CPU's peak, so small micro-batches cost little."""


def micro_batches(items: list[Encoded], max_tokens: int = MICRO_TOKENS) -> list[list[Encoded]]:
    """Length-sorted micro-batches of at most max_tokens padded tokens (at least one
    example each).

    >>> e = lambda n: Encoded([0] * n, [False] * n, str(n))
    >>> [[len(x.ids) for x in b] for b in micro_batches([e(5), e(90), e(10), e(80)], 200)]
    [[90, 80], [10, 5]]
    """
    out: list[list[Encoded]] = []
    for e in sorted(items, key=lambda e: -len(e.ids)):
        if out and (len(out[-1]) + 1) * len(out[-1][0].ids) <= max_tokens:
            out[-1].append(e)
        else:
            out.append([e])
    return out


def collate(items: list[Encoded], pad_id: int, at=None):
    """Right-padded (ids, attention mask, supervised mask), on the device of `at` (the
    model; None: torch's default device)."""
    width = max(len(e.ids) for e in items)
    make = tensors(at) if at is not None else Tensors(None)
    ids = make.full((len(items), width), pad_id)
    att = make.zeros((len(items), width))
    sup = make.zeros((len(items), width), dtype=torch.bool)
    for j, e in enumerate(items):
        ids[j, : len(e.ids)] = make.tensor(e.ids)
        att[j, : len(e.ids)] = 1
        sup[j, : len(e.ids)] = make.tensor(e.supervised)
    return ids, att, sup


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
    shard = Shard(model, cfg.fsdp)
    if on_step is not None and shard.module is not model:
        raise TunelabError("train.fsdp: per-step callbacks (the probes) need unsharded weights")
    params = [p for p in shard.module.parameters() if p.requires_grad]
    stats = TrainStats(trainable_params=sum(p.numel() for p in params),
                       truncated=sum(e.truncated for e in data), processes=shard.world,
                       parallel=shard.kind)
    window = cfg.batch_size * cfg.grad_accum
    auto = cfg.epochs == "auto"
    epochs = 1.0 if auto and not val else cfg.epochs
    total = train_budget(cfg, len(data), epochs)
    # fused: one kernel over all parameters; measured 4.9x faster than the default AdamW
    # step for full fine-tuning here (bench/breakdown.py). Not for FSDP's sharded tensors.
    peak = cfg.lr if cfg.lr is not None else DEFAULT_LR
    opt = torch.optim.AdamW(params, lr=peak, weight_decay=cfg.weight_decay,
                            fused=shard.kind != "fsdp")
    warm = max(1, int(total * cfg.warmup_ratio))
    rng = random.Random(seed)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    every = cfg.eval_every or max(1, math.ceil(len(data) / window) // 2)
    prec = decide_precision(cfg, shard, (val or data)[:PROBE], pad_id)
    stats.precision, stats.precision_reason = prec.precision, prec.reason

    def val_loss(items):
        with autocast(prec.precision, shard.module):
            return validation_loss(shard, items, pad_id, cfg.micro_tokens)

    def no_room() -> bool:  # the same answer on every process (a collective, so all call it)
        return bool(cfg.max_seconds) and shard.total(
            out_of_seconds(time.perf_counter() - t0, stats.steps, cfg.max_seconds, setup)) > 0

    stopper = Stopper(shard.module, val or [], val_loss, every, cfg.patience, early=auto and bool(val),
                      drops=cfg.plateau_drops)
    stats.stop_reason = "no_validation" if auto and not val else ("budget" if auto else "epochs")
    micro = []
    t0 = time.perf_counter()
    if stopper.active:
        stopper.evaluate(0)
    setup = time.perf_counter() - t0  # the step-0 validation: not part of a step's mean time
    shard.module.train()
    # On a bf16 CUDA card the frozen weights train in bf16 (device.frozen_in); FSDP owns its copy.
    half = prec.precision == "bf16" and cuda_bf16(of(model)) and shard.kind != "fsdp"
    with train_progress() as bar, frozen_in(shard.module, torch.bfloat16 if half else None):
        task = bar.add_task(label, total=total, budget=budget_text(0, total, 0.0, cfg.max_seconds), info="")
        while stats.steps < total:
            if not micro:
                micro = _batches([len(e.ids) for e in data], cfg.batch_size, rng)
            group, micro = micro[: cfg.grad_accum], micro[cfg.grad_accum :]
            window = [data[i] for b in group for i in b]
            # The schedule runs over the budget: steps, or seconds where those end first,
            # so a seconds budget still ends with the decay (the same on every process).
            elapsed = shard.total(time.perf_counter() - t0) / shard.world
            pos = schedule_position(stats.steps, total, elapsed, cfg.max_seconds)
            for g in opt.param_groups:
                g["lr"] = peak * lr_factor(pos, total, warm, cfg.schedule) * stopper.scale
            parts = micro_batches(window, cfg.micro_tokens)
            step_loss, n_sup, n_tok = accumulate(shard.module, parts, pad_id, shard, prec.precision)
            step_loss, n_tok = shard.total(step_loss), int(shard.total(n_tok))
            stats.tokens += n_tok
            opt.step()
            opt.zero_grad(set_to_none=True)
            stats.steps += 1
            stats.supervised_tokens += n_sup
            stats.losses.append(step_loss)
            rate = stats.tokens / (time.perf_counter() - t0)
            out_of_time = no_room()
            last = stats.steps == total or out_of_time
            val_info = ""
            if stopper.due(stats.steps, last):
                val_info = f"  val {stopper.evaluate(stats.steps):.3f}"
                # a regular validation that used the next step's room makes this step the
                # last (already validated), not one more step and a second validation
                if not last:
                    out_of_time = no_room()
            spent = time.perf_counter() - t0  # the bar: the budget that binds (schedule_position)
            done = min(total, schedule_position(stats.steps, total, spent, cfg.max_seconds))
            bar.update(task, completed=done,
                       budget=budget_text(stats.steps, total, spent, cfg.max_seconds),
                       info=f"loss {step_loss:.3f}{val_info}  {rate:.0f} tok/s")
            if on_step is not None:
                paused = time.perf_counter()
                stats.seconds = paused - t0
                model.eval()
                on_step(stats)
                model.train()
                t0 += time.perf_counter() - paused
            if stopper.should_stop():
                stats.stop_reason = "early_stop"
                break
            if out_of_time:
                stats.stop_reason = "budget"
                break
    stats.best_step = stopper.restore_best()
    stats.seconds = time.perf_counter() - t0
    stats.val_steps, stats.val_losses = stopper.curve.steps, stopper.curve.losses
    stats.converged, stats.convergence_note = convergence(stopper.curve, stats.stop_reason)
    if stats.converged is False and not in_trial():  # a search's rung stops short by design
        console.print(f"[yellow]warning:[/] {label} did not converge: {stats.convergence_note}",
                      highlight=False, soft_wrap=True)
    shard.finish(model)
    model.eval()
    return stats
