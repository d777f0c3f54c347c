"""Batched, prefix-cached greedy generation equals one-at-a-time model.generate."""

import torch

from tunelab.generate import generate
from tunelab.models import stop_ids
from tunelab.prompt import messages, render


def test_batched_equals_one_at_a_time(tiny):
    model, tok = tiny
    inputs = ["Tetris is a puzzle game.", "Is it on Steam?", "I liked Halo 3 a lot, it was great fun.",
              "What about multiplayer games from 2010?", "No.", "Portal 2 is rated E for everyone."]
    prompts = [render(tok, messages("Describe the game.", x)) for x in inputs]
    got = generate(model, tok, prompts, max_new_tokens=10, batch_size=4)
    for p, g in zip(prompts, got, strict=True):
        ids = tok(p, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=10, do_sample=False,
                                 eos_token_id=stop_ids(tok), pad_token_id=tok.pad_token_id)
        want = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        assert g.text == want
        assert g.prompt_tokens == ids["input_ids"].shape[1]
        assert 1 <= g.gen_tokens <= 10


def test_without_prefix_reuse_same_output(tiny):
    model, tok = tiny
    prompts = [render(tok, messages("Say something.", x)) for x in ["a b c", "hello there", "x"]]
    a = generate(model, tok, prompts, 8, batch_size=2, reuse_prefix=True)
    b = generate(model, tok, prompts, 8, batch_size=2, reuse_prefix=False)
    assert [g.text for g in a] == [g.text for g in b]


class _Table(torch.nn.Module):
    """A stand-in LM whose greedy next token is table[current token] (no context), so the
    text it writes is known in advance; enough for generate's stopping logic."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table

    def forward(self, input_ids, past_key_values=None, **_):
        from types import SimpleNamespace

        from transformers import DynamicCache

        logits = torch.nn.functional.one_hot(self.table[input_ids], len(self.table)).float()
        return SimpleNamespace(logits=logits, past_key_values=past_key_values or DynamicCache())


def test_one_line_stops_after_the_first_nonempty_line_and_keeps_it(tiny):
    from tunelab.generate import _line_tokens
    from tunelab.tasks.viggo import Viggo

    _, tok = tiny
    newline, before, blank = _line_tokens(tok)
    nl = tok("\n", add_special_tokens=False)["input_ids"][0]
    assert nl in newline and nl in blank
    prompts = ["game Tetris", "game Steam"]
    start_a, start_b = (tok(p, add_special_tokens=False)["input_ids"][-1] for p in prompts)
    words = [i for i in range(len(tok)) if i not in newline | blank | {start_a, start_b}][:4]
    assert set(tok.all_special_ids) <= blank  # decoded as the final text is: invisible
    a1, a2, b1, b2 = words
    table = torch.full((len(tok),), nl)
    # A: a1 a2 \n b1 b2 \n b1 b2 ...    B: \n b1 b2 \n b1 b2 ... (starts with a blank line)
    for src, dst in [(start_a, a1), (a1, a2), (a2, nl), (nl, b1), (b1, b2), (b2, nl), (start_b, nl)]:
        table[src] = dst
    model = _Table(table)
    full = generate(model, tok, prompts, max_new_tokens=12, batch_size=2)
    one = generate(model, tok, prompts, max_new_tokens=12, batch_size=2, one_line=True)
    assert [g.gen_tokens for g in full] == [12, 12]
    assert [g.gen_tokens for g in one] == [3, 4]  # A stops at its first \n; B at its second
    clean = Viggo.clean  # the first non-empty line, what a one-line task scores
    assert [clean(None, g.text) for g in one] == [clean(None, g.text) for g in full]
    assert clean(None, one[0].text) == tok.decode([a1, a2]).strip()


def test_rows_leaving_the_batch_keep_outputs_equal(tiny, monkeypatch):
    """Rows stop at different steps, so the in-place KV cache is compacted while other
    rows go on; every output still equals model.generate's."""
    import copy

    import tunelab.generate as gen

    model, tok = tiny
    model = copy.deepcopy(model)  # the shared tiny model writes one token forever: wake it up
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    inputs = ["Tetris is a puzzle game.", "Is it on Steam?", "I liked Halo 3 a lot.",
              "What about 2010?", "No.", "Portal 2 is rated E."]
    prompts = [render(tok, messages("Describe the game.", x)) for x in inputs]

    def naive(p, eos):
        ids = tok(p, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=12, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id)
        return out[0, ids["input_ids"].shape[1]:].tolist()

    first = naive(prompts[0], stop_ids(tok))
    stop = first[min(2, len(first) - 1)]  # a token the model writes early in row 0
    monkeypatch.setattr(gen, "stop_ids", lambda _tok: [stop])
    got = generate(model, tok, prompts, max_new_tokens=12, batch_size=6)
    lengths = {g.gen_tokens for g in got}
    assert len(lengths) > 1 and min(lengths) < 12  # rows did leave the batch early
    for p, g in zip(prompts, got, strict=True):
        want = naive(p, [stop])
        assert g.gen_tokens == len(want)
        assert g.text == tok.decode([t for t in want if t != stop], skip_special_tokens=True)
