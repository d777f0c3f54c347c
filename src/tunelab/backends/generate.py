"""Batched greedy generation with shared-prefix KV-cache reuse.

Written by hand because `model.generate` recomputes the prompt prefix that all examples
share (the instruction and few-shot examples) for every row; here the common token
prefix is run once, its KV cache is repeated across each left-padded batch, and rows
leave the batch as soon as they emit a stop token. Outputs equal one-at-a-time
`model.generate` greedy outputs (tests/test_generate.py checks it).

With `one_line`, a row also stops at the end of its first non-empty line: for tasks that
score only that line (ViGGO, labels) the rest is wasted compute; the scored line is the
same as with full generation, only the stored raw text is shorter.

The in-place KV cache (`_Slab`) builds on transformers' `DynamicLayer`, which is not a
stable public API: a feature check at first use (`fast_cache_problem`) and a guard on
every batch fall back to the stock cache, with one warning line, when the installed
transformers does not fit it. Both paths give the same outputs (tests/test_generate.py).
"""

from __future__ import annotations

import copy
import functools
import time

import torch
from transformers.cache_utils import DynamicLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

from tunelab.backends.device import out_of_memory, tensors
from tunelab.backends.generation import Generation
from tunelab.backends.local_model import stop_ids
from tunelab.core.ui import console, progress

# transformers 5.24 renamed the model's `past_key_values` argument and output to `cache`
# (the old name still works there, with a deprecation warning, until 5.40).
CACHE_KW = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by all sequences.

    >>> common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]])
    2
    """
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


@functools.cache
def _line_tokens(tok) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    """Token ids whose text holds a newline; of those, the ones with text before it; and
    the ids that are only whitespace (computed once per tokenizer)."""
    texts = tok.batch_decode([[i] for i in range(len(tok))], skip_special_tokens=True)
    newline = frozenset(i for i, t in enumerate(texts) if "\n" in t)
    before = frozenset(i for i in newline if texts[i].split("\n", 1)[0].strip())
    blank = frozenset(i for i, t in enumerate(texts) if not t.strip())
    return newline, before, blank


class _Slab(DynamicLayer):
    """A layer's KV cache with room for `room` more tokens, written in place.

    transformers' DynamicLayer grows by torch.cat, copying the whole cache of every layer
    at every decoding step (9% of zero-shot generation time in a profile here, more with
    bigger batches); this one allocates once per batch and returns views.
    """

    def __init__(self, layer: DynamicLayer, room: int):
        super().__init__()
        b, h, n, d = layer.keys.shape
        self.device, self.is_initialized = layer.keys.device, True
        self._k = layer.keys.new_empty((b, h, n + room, d))
        self._v = layer.values.new_empty((b, h, n + room, d))
        self._k[:, :, :n], self._v[:, :, :n] = layer.keys, layer.values
        self._n = n
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

    def update(self, key_states, value_states, *args, **kwargs):
        m = key_states.shape[-2]
        if self._n + m > self._k.shape[-2]:
            raise ValueError("KV cache slab is full")  # generate sizes it; cannot happen
        self._k[:, :, self._n : self._n + m] = key_states
        self._v[:, :, self._n : self._n + m] = value_states
        self._n += m
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._views()


def _slab_problem() -> str | None:
    """Why `_Slab` does not behave like the installed `DynamicLayer`, or None: the same
    updates and row selections on both must give the same keys, values and lengths."""
    g = torch.Generator().manual_seed(0)

    def kv(b: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(b, 2, n, 4, generator=g), torch.randn(b, 2, n, 4, generator=g)

    try:
        stock, base = DynamicLayer(), DynamicLayer()
        k, v = kv(3, 5)
        stock.update(k, v)
        base.update(k, v)
        slab = _Slab(base, room=3)
        steps = [kv(3, 1), None, kv(2, 1), kv(2, 1)]  # None: row 1 leaves the batch
        for step in steps:
            if step is None:
                idx = torch.tensor([0, 2])
                stock.batch_select_indices(idx)
                slab.batch_select_indices(idx)
                continue
            want, got = stock.update(*step), slab.update(*step)
            if not all(torch.equal(a, b) for a, b in zip(want, got, strict=True)):
                return "its keys/values differ from DynamicLayer's"
        if slab.get_seq_length() != stock.get_seq_length():
            return "its length differs from DynamicLayer's"
    except Exception as e:  # any drift in the private API means: do not use it
        return f"{type(e).__name__}: {e}"
    return None


_fast: dict[str, bool] = {}  # "ok": the in-place cache passed its check in this process


def fast_cache_ok() -> bool:
    """Whether generation may use the in-place cache; checked once per process, with one
    warning line when it falls back to transformers' stock cache."""
    if "ok" not in _fast:
        why = _slab_problem()
        if why:
            _disable(why)
        else:
            _fast["ok"] = True
    return _fast["ok"]


def _disable(why: str) -> None:
    import transformers

    _fast["ok"] = False
    console.print(f"[yellow]warning:[/] in-place KV cache off, using transformers' stock cache "
                  f"(transformers {transformers.__version__}: {why})", highlight=False, soft_wrap=True)


def _prefill(model, suffixes, prefix_cache, prefix_len, pad_id):
    b, width = len(suffixes), max(len(s) for s in suffixes)
    make = tensors(model)
    ids = make.full((b, width), pad_id)
    mask = make.zeros((b, prefix_len + width))
    mask[:, :prefix_len] = 1
    for j, s in enumerate(suffixes):
        ids[j, width - len(s) :] = make.tensor(s)
        mask[j, prefix_len + width - len(s) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
    cache = None
    if prefix_cache is not None:
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(b)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        use_cache=True,
        logits_to_keep=1,
        **{CACHE_KW: cache},
    )
    return out, mask, pos[:, -1]


@torch.no_grad()
def _batch(model, suffixes, prefix_cache, prefix_len, pad_id, stops, max_new, lines=None,
           fast=True):
    out, mask, last = _prefill(model, suffixes, prefix_cache, prefix_len, pad_id)
    cache = getattr(out, CACHE_KW)
    if fast:
        # Only plain layers: sliding-window ones (gemma3) keep their own update rule.
        cache.layers = [_Slab(x, max_new) if type(x) is DynamicLayer and x.keys is not None
                        and x.keys.numel() else x for x in cache.layers]
    rows = list(range(len(suffixes)))  # batch row -> example, for rows still generating
    tokens: list[list[int]] = [[] for _ in suffixes]
    started = [False] * len(suffixes)  # one_line: the row has written non-blank text
    newline, before, blank = lines or (frozenset(), frozenset(), frozenset())
    nxt = out.logits[:, -1].argmax(-1)
    for step in range(max_new):
        keep = []
        for r, t in enumerate(nxt.tolist()):
            row = rows[r]
            tokens[row].append(t)
            if lines is not None:
                if t in newline and (started[row] or t in before):
                    continue  # its first non-empty line is complete
                started[row] = started[row] or t not in blank
            if t not in stops:
                keep.append(r)
        if not keep or step == max_new - 1:
            break
        if len(keep) < len(rows):
            idx = tensors(mask).tensor(keep)
            cache.batch_select_indices(idx)
            mask, last, nxt = mask[idx], last[idx], nxt[idx]
            rows = [rows[r] for r in keep]
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        last = last + 1
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=last[:, None],
            use_cache=True,
            **{CACHE_KW: cache},
        )
        cache = getattr(out, CACHE_KW)
        nxt = out.logits[:, -1].argmax(-1)
    return tokens


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int = 16,
    reuse_prefix: bool = True,
    label: str = "generate",
    one_line: bool = False,
    fast_cache: bool | None = None,
) -> list[Generation]:
    """Greedy continuations of `prompts` (already rendered text), in input order;
    with `one_line`, each stops at the end of its first non-empty line. `fast_cache`
    forces the in-place KV cache on or off; None uses it where its check passed."""
    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    lines = _line_tokens(tok) if one_line else None
    stops = set(stop_ids(tok))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    prefix_len = common_prefix_len(enc) if reuse_prefix and len(enc) > 1 else 0
    prefix_len = min(prefix_len, min(len(e) for e in enc) - 1)
    prefix_cache = None
    if prefix_len > 0:
        prefix = tensors(model).tensor([enc[0][:prefix_len]])
        prefix_out = model(input_ids=prefix, use_cache=True, logits_to_keep=1)
        prefix_cache = getattr(prefix_out, CACHE_KW)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    results: list[Generation | None] = [None] * len(enc)
    with progress() as bar:
        task = bar.add_task(label, total=len(enc), info=f"prefix {prefix_len} tok")
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            t0 = time.perf_counter()
            args = (model, [enc[i][prefix_len:] for i in batch], prefix_cache, prefix_len,
                    pad_id, stops, max_new_tokens, lines)
            fast = fast_cache_ok() if fast_cache is None else fast_cache
            with out_of_memory(model, label, f"eval.batch_size ({batch_size}) or eval."
                               f"max_new_tokens ({max_new_tokens})"):
                try:
                    toks = _batch(*args, fast=fast)
                except (AttributeError, TypeError, NotImplementedError) as e:
                    if not fast or fast_cache:
                        raise
                    _disable(f"{type(e).__name__}: {e}")  # API drift the check did not catch
                    toks = _batch(*args, fast=False)
            dt = (time.perf_counter() - t0) / len(batch)
            for i, t in zip(batch, toks, strict=True):
                body = t[:-1] if t and t[-1] in stops else t
                text = tok.decode(body, skip_special_tokens=True)
                results[i] = Generation(text, len(enc[i]), len(t), dt)
            bar.advance(task, len(batch))
    return results  # type: ignore[return-value]
