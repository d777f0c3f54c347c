"""What the probes measure on a model: continuation log-probabilities, perplexity of
held-out text, and names counted in sampled generations.

Scores come straight from the model's logits (transformers has no helper that scores a
given continuation); everything runs in batches under no_grad.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from tunelab.metrics import bootstrap_ci, paired_bootstrap
from tunelab.ui import progress


@torch.no_grad()
def continuation_logprob(model, tok, prefixes: list[str], continuations: list[str],
                         batch_size: int = 16) -> list[float]:
    """log p(continuation | prefix), summed over the continuation's tokens.

    The pair is tokenized as one text and the continuation's tokens are those whose
    characters start at or after len(prefix), so a merge across the boundary cannot
    shift which tokens are scored (the prefix should not end in a space)."""
    rows = []
    for p, c in zip(prefixes, continuations, strict=True):
        enc = tok(p + c, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        first = next(i for i, (a, b) in enumerate(offs) if b > len(p))
        rows.append((ids, max(1, first)))
    out = [0.0] * len(rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    for s in range(0, len(order), batch_size):
        batch = order[s : s + batch_size]
        width = max(len(rows[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        att = torch.zeros_like(ids)
        for j, i in enumerate(batch):  # right padding: positions stay as in the text
            ids[j, : len(rows[i][0])] = torch.tensor(rows[i][0])
            att[j, : len(rows[i][0])] = 1
        logp = F.log_softmax(model(input_ids=ids, attention_mask=att).logits.float(), -1)
        for j, i in enumerate(batch):
            seq, first = rows[i]
            targets = torch.tensor(seq[first:])
            out[i] = float(logp[j, first - 1 : len(seq) - 1].gather(1, targets[:, None]).sum())
    return out


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


@torch.no_grad()
def block_nll(model, seqs: list[list[int]], batch_size: int = 8, label: str = "perplexity") -> list[float]:
    """Mean next-token negative log-likelihood of each token sequence."""
    out = [0.0] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    with progress() as bar:
        task = bar.add_task(label, total=len(seqs), info="")
        for s in range(0, len(order), batch_size):
            batch = order[s : s + batch_size]
            width = max(len(seqs[i]) for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.bool)
            for j, i in enumerate(batch):
                ids[j, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[j, : len(seqs[i])] = True
            logits = model(input_ids=ids, attention_mask=mask.long()).logits[:, :-1].float()
            nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            keep = mask[:, 1:]
            for j, i in enumerate(batch):
                out[i] = float(nll[j][keep[j]].mean())
            bar.advance(task, len(batch))
    return out


def perplexity_ci(nll: list[float]) -> tuple[float, float, float]:
    """exp of the mean per-block NLL, with the bootstrap interval over blocks.

    >>> [round(x, 3) for x in perplexity_ci([1.0, 1.0])]
    [2.718, 2.718, 2.718]
    """
    m, lo, hi = bootstrap_ci(nll)
    return math.exp(m), math.exp(lo), math.exp(hi)


def change(after: list[float], before: list[float]) -> tuple[float, float, float]:
    """Mean paired change after - before with its bootstrap CI over the same items."""
    return paired_bootstrap(after, before)


def excess(a, b, seed: int = 0, n_resamples: int = 1000) -> tuple[float, float, float]:
    """mean(a) - mean(b) for two independent samples, with a bootstrap interval that
    resamples each one separately.

    >>> d, lo, hi = excess([2.0, 2.2, 1.8] * 10, [0.1, -0.1, 0.0] * 10)
    >>> round(d, 3), lo > 1.5
    (2.0, True)
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, a.size, (n_resamples, a.size))].mean(1)
    db = b[rng.integers(0, b.size, (n_resamples, b.size))].mean(1)
    lo, hi = np.quantile(da - db, [0.025, 0.975])
    return float(a.mean() - b.mean()), float(lo), float(hi)


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
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=0.95,
                         max_new_tokens=max_new_tokens, num_return_sequences=n,
                         pad_token_id=tok.pad_token_id or tok.eos_token_id)
    return [tok.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True) for o in out]


def share(flags: list[bool]) -> tuple[float, float, float]:
    """A proportion with its bootstrap interval."""
    return bootstrap_ci(np.asarray(flags, dtype=float))
