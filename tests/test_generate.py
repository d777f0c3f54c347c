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
