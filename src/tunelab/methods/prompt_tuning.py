"""prompt_tuning: trainable soft-prompt embeddings (PEFT prompt tuning), base frozen.

Trained by the same train_loop as lora/full; only what is trainable differs. The loop
and tunelab.backends.generate call the decoder directly (for speed and prefix-KV reuse), which
would skip PeftModel's virtual-token injection, so the tuned model is wrapped in
SoftPrompted: every forward that starts a sequence puts the virtual tokens first and
shifts masks and positions; later (cached) steps only shift. Soft prompts usually want
a far higher learning rate than LoRA (e.g. `train: {lr: 0.03}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from peft import PromptTuningConfig, get_peft_model

from tunelab.backends.device import tensors
from tunelab.backends.generate import CACHE_KW
from tunelab.eval.predictor import Predictor
from tunelab.methods.base import Context, MethodSpec, Prompted, chat_predictor
from tunelab.methods.finetune import fine_tune, trainable_copy
from tunelab.train.loop import Prefixed


@dataclass
class Settings(Prompted):
    virtual_tokens: int = 20
    """Number of trainable soft-prompt embeddings."""
    counts: ClassVar[tuple[str, ...]] = ("virtual_tokens",)


class SoftPrompted(Prefixed):
    """A causal LM whose every sequence starts with the PEFT model's virtual tokens."""

    def __init__(self, peft_model):
        super().__init__()
        self.peft = peft_model
        self.base = peft_model.get_base_model()
        self.n = peft_model.active_peft_config.num_virtual_tokens
        self.config = self.base.config

    def virtual(self, batch: int) -> torch.Tensor:
        return self.peft.get_prompt(batch_size=batch).to(self.base.dtype)

    def get_output_embeddings(self):
        return self.base.get_output_embeddings()

    def hidden_states(self, ids: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """Last hidden states at the positions of `ids` (train.completion_loss_sum)."""
        b = ids.shape[0]
        emb = torch.cat([self.virtual(b), self.base.get_input_embeddings()(ids)], dim=1)
        att = torch.cat([att.new_ones((b, self.n)), att], dim=1)
        out = self.base.get_decoder()(inputs_embeds=emb, attention_mask=att)
        return out.last_hidden_state[:, self.n:]

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kwargs):
        # generate passes the cache under transformers' current name (CACHE_KW)
        cache = kwargs.pop(CACHE_KW, None)
        b, n = input_ids.shape[0], self.n
        fresh = cache is None or cache.get_seq_length() == 0
        emb = self.base.get_input_embeddings()(input_ids)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones((b, n)), attention_mask], dim=1)
        if position_ids is not None:
            position_ids = position_ids + n
        if fresh:
            emb = torch.cat([self.virtual(b), emb], dim=1)
            if position_ids is not None:
                first = torch.arange(n, device=emb.device).expand(b, n)
                position_ids = torch.cat([first, position_ids], dim=1)
        out = self.base(inputs_embeds=emb, attention_mask=attention_mask, position_ids=position_ids,
                        **{CACHE_KW: cache}, **kwargs)
        if fresh and out.logits.shape[1] > input_ids.shape[1]:
            out.logits = out.logits[:, n:]
        return out


def init_from_text(peft_model, tok, text: str) -> None:
    """Start the soft prompt at the embeddings of `text` (repeated to fill), as PEFT's TEXT
    init does, without it re-loading the tokenizer from a path."""
    n = peft_model.active_peft_config.num_virtual_tokens
    ids = tok(text, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
    ids = (ids * (n // len(ids) + 1))[:n]
    table = peft_model.get_base_model().get_input_embeddings().weight
    enc = peft_model.prompt_encoder[peft_model.active_adapter].embedding
    with torch.no_grad():
        enc.weight.copy_(table[tensors(table).tensor(ids)])


def build(ctx: Context) -> Predictor:
    cfg = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=ctx.settings.virtual_tokens)
    peft_model = get_peft_model(trainable_copy(ctx.model), cfg)
    init_from_text(peft_model, ctx.tok, ctx.task.short_instruction)
    model = SoftPrompted(peft_model)
    system, info = fine_tune(ctx, model, f"prompt_tuning n={len(ctx.train)}")
    if ctx.train_cfg.save:
        path = ctx.run_dir / "soft_prompt"
        peft_model.save_pretrained(path)
        info.artifact = str(path)
    info.virtual_tokens = model.n
    model.eval()
    return chat_predictor(ctx, model, system, info=info)


# a soft prompt is not a weight change: it ships as its adapter only, never merged
SPEC = MethodSpec("prompt_tuning", Settings, trains=True, needs_local_model=True, build=build,
                  lr=3e-2, saved="soft_prompt", floor_exact=True)
