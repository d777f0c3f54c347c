"""What the probes measure on a model: continuation log-probabilities, perplexity of
held-out text, and names counted in sampled generations.

Scores come straight from the model's logits (transformers has no helper that scores a
given continuation); everything runs in batches under no_grad.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from tunelab.core.ui import progress
from tunelab.tasks.metrics import bootstrap_ci
from tunelab.train.loop import Encoded, collate, plain_text


@torch.no_grad()
def continuation_logprob(model, tok, prefixes: list[str], continuations: list[str],
                         batch_size: int = 16) -> list[float]:
    """log p(continuation | prefix), summed over the continuation's tokens.

    The pair is tokenized as one text and the scored tokens are those that end after
    len(prefix), so a merge across the boundary cannot shift which tokens are scored
    (the prefix should not end in a space)."""
    rows = []
    for i, (p, c) in enumerate(zip(prefixes, continuations, strict=True)):
        enc = tok(p + c, add_special_tokens=False, return_offsets_mapping=True)
        first = max(1, next(j for j, (_, b) in enumerate(enc["offset_mapping"]) if b > len(p)))
        ids = enc["input_ids"]
        rows.append(Encoded(ids, [j >= first for j in range(len(ids))], f"continuation {i}"))
    return [float(x) for x in _target_logprobs(model, rows, batch_size, sum)]


def margins(model, tok, prefixes: list[str], new: list[str], old: list[str]) -> list[float]:
    """log p(new) - log p(old) after each prefix: > 0 where the model prefers the new name."""
    a = continuation_logprob(model, tok, prefixes, new)
    b = continuation_logprob(model, tok, prefixes, old)
    return [x - y for x, y in zip(a, b, strict=True)]


def blocks(tok, text: str, length: int, limit: int | None = None) -> list[list[int]]:
    """Consecutive windows of `length` tokens (the last partial one dropped)."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    out = [ids[i : i + length] for i in range(0, len(ids) - length + 1, length)]
    return out[:limit] if limit else out


def block_nll(model, seqs: list[list[int]], batch_size: int = 8, label: str = "perplexity") -> list[float]:
    """Mean next-token negative log-likelihood of each token sequence."""
    rows = [plain_text(ids, f"sequence {i}") for i, ids in enumerate(seqs)]
    means = _target_logprobs(model, rows, batch_size, lambda x: x.mean(), label)
    return [-float(x) for x in means]


@torch.no_grad()
def _target_logprobs(model, rows: list[Encoded], batch_size: int, reduce, label: str = ""):
    """reduce(log-probabilities of each row's supervised tokens), in input order; rows
    are batched by length and right-padded (train.collate), so positions stay as in the text."""
    out = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
    with progress() as bar:
        task = bar.add_task(label, total=len(rows), info="", visible=bool(label))
        for s in range(0, len(order), batch_size):
            batch = order[s : s + batch_size]
            ids, att, sup = collate([rows[i] for i in batch], pad_id=0, at=model)
            logp = F.log_softmax(model(input_ids=ids, attention_mask=att).logits[:, :-1].float(), -1)
            picked = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            for j, i in enumerate(batch):
                out[i] = reduce(picked[j][sup[j, 1:]])
            bar.advance(task, len(batch))
    return out


def perplexity_ci(nll: list[float]) -> tuple[float, float, float]:
    """exp of the mean per-block NLL, with the bootstrap interval over blocks.

    >>> [round(x, 3) for x in perplexity_ci([1.0, 1.0])]
    [2.718, 2.718, 2.718]
    """
    m, lo, hi = bootstrap_ci(nll)
    return math.exp(m), math.exp(lo), math.exp(hi)


def moved(ci: tuple[float, float, float]) -> bool:
    """A change counts only when its 95% interval excludes zero.

    >>> moved((0.4, 0.1, 0.7)), moved((0.4, -0.1, 0.9))
    (True, False)
    """
    return ci[1] > 0 or ci[2] < 0


def mentions(text: str, name: str) -> bool:
    """Whole-word, case-insensitive.

    >>> mentions("Bob's here", "bob"), mentions("Bobby", "Bob")
    (True, False)
    """
    return re.search(rf"\b{re.escape(name)}\b", text, re.I) is not None


@torch.no_grad()
def sample(model, tok, prompt: str, n: int, max_new_tokens: int, seed: int,
           temperature: float = 0.8) -> list[str]:
    """n sampled continuations of a plain-text prompt (seeded)."""
    torch.manual_seed(seed)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=0.95,
                         max_new_tokens=max_new_tokens, num_return_sequences=n,
                         pad_token_id=tok.pad_token_id or tok.eos_token_id)
    return [tok.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True) for o in out]


def answer_logprob(model, tok, prompts: list[str], answers: list[str], batch_size: int = 16,
                   label: str = "") -> list[float]:
    """Mean per-token log-probability of each answer after its prompt, teacher-forced:
    (1/T) sum_t log p(a_t | prompt, a_<t) over the T tokens of the answer text (the reply
    as generated, stop token excluded), tokenized on its own after the prompt's tokens as
    `generate` feeds them. NaN for an empty answer (no token to score)."""
    rows, where = [], []
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        head = tok(p, add_special_tokens=False)["input_ids"]
        tail = tok(a, add_special_tokens=False)["input_ids"] if a else []
        if head and tail:
            rows.append(Encoded(head + tail, [False] * len(head) + [True] * len(tail), f"answer {i}"))
            where.append(i)
    out = [math.nan] * len(prompts)
    for i, x in zip(where, _target_logprobs(model, rows, batch_size, lambda v: v.mean(), label), strict=True):
        out[i] = float(x)
    return out
