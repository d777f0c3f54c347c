"""Batched, prefix-cached greedy generation equals one-at-a-time model.generate."""

import pytest
import torch

import tunelab.backends.generate as gen
from tunelab.backends.generate import CACHE_KW, generate
from tunelab.backends.local_model import stop_ids
from tunelab.backends.prompt import messages, render


@pytest.mark.parametrize("fast", [True, False], ids=["in-place-cache", "stock-cache"])
def test_batched_equals_one_at_a_time(tiny, fast):
    model, tok = tiny
    inputs = ["Tetris is a puzzle game.", "Is it on Steam?", "I liked Halo 3 a lot, it was great fun.",
              "What about multiplayer games from 2010?", "No.", "Portal 2 is rated E for everyone."]
    prompts = [render(tok, messages("Describe the game.", x)) for x in inputs]
    got = generate(model, tok, prompts, max_new_tokens=10, batch_size=4, fast_cache=fast)
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

    def forward(self, input_ids, **kw):
        from types import SimpleNamespace

        from transformers import DynamicCache

        logits = torch.nn.functional.one_hot(self.table[input_ids], len(self.table)).float()
        return SimpleNamespace(logits=logits, **{CACHE_KW: kw.get(CACHE_KW) or DynamicCache()})


def test_one_line_stops_after_the_first_nonempty_line_and_keeps_it(tiny):
    from tunelab.backends.generate import _line_tokens
    from tunelab.core.config import TaskConfig
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
    clean = Viggo(TaskConfig()).clean  # the first non-empty line, what a one-line task scores
    assert [clean(g.text) for g in one] == [clean(g.text) for g in full]
    assert clean(one[0].text) == tok.decode([a1, a2]).strip()


def _woken(model):
    """A copy of the shared tiny model, which writes one token forever, with random weights
    large enough that it writes varied text."""
    import copy

    model = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("fast", [True, False], ids=["in-place-cache", "stock-cache"])
def test_rows_leaving_the_batch_keep_outputs_equal(tiny, monkeypatch, fast):
    """Rows stop at different steps, so the KV cache is compacted while other rows go on;
    every output still equals model.generate's, with the in-place cache and without it."""
    model, tok = tiny
    model = _woken(model)
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
    got = generate(model, tok, prompts, max_new_tokens=12, batch_size=6, fast_cache=fast)
    lengths = {g.gen_tokens for g in got}
    assert len(lengths) > 1 and min(lengths) < 12  # rows did leave the batch early
    for p, g in zip(prompts, got, strict=True):
        want = naive(p, [stop])
        assert g.gen_tokens == len(want)
        assert g.text == tok.decode([t for t in want if t != stop], skip_special_tokens=True)


def test_the_in_place_cache_fits_the_installed_transformers(monkeypatch):
    """If this fails, a transformers release changed DynamicLayer: generation still works
    (stock cache) but slower; fix _Slab or keep the lock on the last version that fits."""
    monkeypatch.setattr(gen, "_fast", {})
    assert gen._slab_problem() is None
    assert gen.fast_cache_ok()


def test_falls_back_to_the_stock_cache_when_the_private_api_drifts(tiny, monkeypatch, capsys):
    """What transformers 5.24 did to the first _Slab (an attribute gone from DynamicLayer):
    one warning line naming the reason, and the same predictions as model.generate."""
    model, tok = tiny
    model = _woken(model)

    def drifted(self, layer, room):
        raise AttributeError("'DynamicLayer' object has no attribute 'dtype'")

    monkeypatch.setattr(gen._Slab, "__init__", drifted)
    monkeypatch.setattr(gen, "_fast", {})
    prompts = [render(tok, messages("Describe the game.", x)) for x in ["Tetris.", "Is it on Steam?"]]
    got = generate(model, tok, prompts, max_new_tokens=8, batch_size=1)
    err = capsys.readouterr().err
    assert err.count("in-place KV cache off") == 1 and "has no attribute 'dtype'" in err
    for p, g in zip(prompts, got, strict=True):
        ids = tok(p, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False,
                                 eos_token_id=stop_ids(tok), pad_token_id=tok.pad_token_id)
        assert g.text == tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_a_drift_the_check_misses_falls_back_mid_run(tiny, monkeypatch, capsys):
    """The layer check passes but the model trips over the slab: the batch is redone with
    the stock cache, with one warning line, and later batches skip the slab."""
    model, tok = tiny
    model = _woken(model)
    calls = []

    def trips(self, *a, **k):
        calls.append(1)
        raise TypeError("update() got an unexpected keyword argument 'cache_kwargs'")

    monkeypatch.setattr(gen, "_fast", {"ok": True})
    monkeypatch.setattr(gen._Slab, "update", trips)
    prompts = [render(tok, messages("Say it.", x)) for x in ["a b c", "hello there", "x y"]]
    got = generate(model, tok, prompts, max_new_tokens=6, batch_size=1)
    want = generate(model, tok, prompts, max_new_tokens=6, batch_size=1, fast_cache=False)
    assert [g.text for g in got] == [g.text for g in want]
    assert len(calls) == 1 and gen._fast["ok"] is False
    assert capsys.readouterr().err.count("in-place KV cache off") == 1
