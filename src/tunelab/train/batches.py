"""What the training loop feeds on: tokenised examples with their loss mask, and the
batches they are cut into.

The mask comes from the character offset where each assistant turn starts in the rendered
conversation, and every example must have some, but not all, tokens supervised (else we
fail naming it). Batches are drawn within shuffled pools and sorted by length there, then
cut into micro-batches under a padded-token budget, so padding costs little.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from tunelab import TunelabError
from tunelab.backends.device import Tensors, tensors
from tunelab.backends.prompt import render
from tunelab.core.config import TrainConfig


@dataclass
class Encoded:
    ids: list[int]
    supervised: list[bool]
    """supervised[i]: token i is a completion token whose prediction is trained."""
    name: str
    truncated: bool = False



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


def shuffled_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
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
