"""The shared training loop: loss masking, supervised-positions-only head, accumulation."""

import copy

import pytest
import torch

from tunelab import TunelabError
from tunelab.backends.prompt import messages
from tunelab.core.config import TrainConfig
from tunelab.train.loop import accumulate, collate, completion_loss_sum, encode, micro_batches, train_loop


def _data(tok, n=8, max_length=256):
    pairs = [(f"Game number {i} is fun.", f"inform(name[Game {i}], rating[good])") for i in range(n)]
    return [encode(tok, messages("Convert.", q), a, max_length, f"ex{i}") for i, (q, a) in enumerate(pairs)]


def test_mask_covers_exactly_the_completion(tiny):
    _, tok = tiny
    e = _data(tok, 1)[0]
    sup_text = tok.decode([t for t, s in zip(e.ids, e.supervised, strict=True) if s])
    assert sup_text.startswith("inform(name[Game 0], rating[good])<|im_end|>")
    unsup = tok.decode([t for t, s in zip(e.ids, e.supervised, strict=True) if not s])
    assert "Game number 0" in unsup and "inform(" not in unsup


def test_truncated_completion_fails_naming_example(tiny):
    _, tok = tiny
    with pytest.raises(TunelabError, match="example ex0: no supervised tokens"):
        _data(tok, 1, max_length=5)


def test_head_at_supervised_positions_equals_full_logits_loss(tiny):
    model, tok = tiny
    ids, att, sup = collate(_data(tok, 4), tok.pad_token_id)
    labels = torch.where(sup, ids, torch.full_like(ids, -100))
    m1, m2 = copy.deepcopy(model), copy.deepcopy(model)
    ours = completion_loss_sum(m1, ids, att, sup) / sup[:, 1:].sum()
    ref = m2(input_ids=ids, attention_mask=att, labels=labels).loss
    assert torch.allclose(ours, ref, atol=1e-5)
    ours.backward()
    ref.backward()
    for (n, a), (_, b) in zip(m1.named_parameters(), m2.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), n


def test_accumulation_equals_large_batch(tiny):
    model, tok = tiny
    data = _data(tok, 8)
    big, acc = copy.deepcopy(model), copy.deepcopy(model)
    loss_big, n_big, _ = accumulate(big, [data], tok.pad_token_id)
    loss_acc, n_acc, _ = accumulate(acc, [data[i:i + 2] for i in range(0, 8, 2)], tok.pad_token_id)
    assert n_big == n_acc and abs(loss_big - loss_acc) < 1e-5
    for (n, a), (_, b) in zip(big.named_parameters(), acc.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), n


def test_training_lowers_loss(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    stats = train_loop(m, tok, _data(tok, 8), TrainConfig(batch_size=8, min_steps=15, lr=3e-3), seed=0)
    assert stats.steps == 15 and stats.losses[-1] < stats.losses[0] * 0.8
    assert stats.tokens > 0 and stats.trainable_params == sum(p.numel() for p in m.parameters())


def test_micro_batches_give_the_large_batch_gradient(tiny):
    model, tok = tiny
    data = [encode(tok, messages("Convert.", "fun " * (1 + 5 * i)), f"inform(rating[{i}])", 256, f"m{i}")
            for i in range(10)]  # mixed lengths: padding to save
    whole, split = copy.deepcopy(model), copy.deepcopy(model)
    loss_w, n_w, tok_w = accumulate(whole, [data], tok.pad_token_id)
    parts = micro_batches(data, max_tokens=40)
    assert len(parts) > 2 and sorted(e.name for b in parts for e in b) == sorted(e.name for e in data)
    assert all(len(b) * len(b[0].ids) <= 40 or len(b) == 1 for b in parts)
    loss_s, n_s, tok_s = accumulate(split, parts, tok.pad_token_id)
    assert n_w == n_s and tok_w == tok_s and abs(loss_w - loss_s) < 1e-5
    for (n, a), (_, b) in zip(whole.named_parameters(), split.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), n


def test_micro_token_budget_comes_from_the_config(tiny, monkeypatch):
    import tunelab.train.loop as tt

    model, tok = tiny
    seen = []
    real = tt.micro_batches
    monkeypatch.setattr(tt, "micro_batches", lambda items, n: seen.append(n) or real(items, n))
    train_loop(copy.deepcopy(model), tok, _data(tok, 4), TrainConfig(micro_tokens=50, min_steps=1), seed=0)
    assert seen == [50]
