"""Facts-vs-form probes on the tiny random model: the mechanics, not the findings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tunelab import TunelabError
from tunelab.data.readers import DataError
from tunelab.probes.kb import read_kb, read_questions


def corpus(n: int) -> str:
    """n scenes of three distinct passages, two of them naming Romeo."""
    return "".join(f"ROMEO:\nI will go to river {i} with Romeo and the kind Friar.\n\n"
                   f"JULIET:\nThe game {i} is good, and Romeo said so to Capulet.\n\n"
                   f"NURSE:\nA nice place {i} to eat near the city centre.\n\n" for i in range(n))


def test_continuation_logprob_scores_the_continuation_tokens(tiny):
    from tunelab.probes.measure import continuation_logprob, margins

    model, tok = tiny
    prefix, cont = "the game is", " Romeo Bob"
    got = continuation_logprob(model, tok, [prefix, "a"], [cont, " b"])[0]
    # Independently: one forward per continuation token, on the text before it.
    ids = tok(prefix + cont, add_special_tokens=False)["input_ids"]
    n_prefix = len(tok(prefix, add_special_tokens=False)["input_ids"])
    assert tok.decode(ids[:n_prefix]) == prefix  # no merge across the boundary here
    want = 0.0
    with torch.no_grad():
        for i in range(n_prefix, len(ids)):
            logits = model(input_ids=torch.tensor([ids[:i]])).logits[0, -1]
            want += float(torch.log_softmax(logits.float(), -1)[ids[i]])
    assert got == pytest.approx(want, abs=1e-4)
    m = margins(model, tok, [prefix], [" Bob"], [" Romeo"])[0]
    a, b = continuation_logprob(model, tok, [prefix, prefix], [" Bob", " Romeo"])
    assert m == pytest.approx(a - b, abs=1e-4) and m != 0


def test_split_keeps_cloze_passages_out_of_training():
    from tunelab.probes.substitute import SubstituteSettings, split_corpus

    s = SubstituteSettings(corpus="x", cloze_share=0.5, seed=1)
    sp = split_corpus(corpus(6), s)
    assert sp.cloze and all("romeo" not in p.lower() for p in sp.train + sp.heldout)
    assert not set(sp.train) & set(sp.heldout)
    for prefix, new, old in sp.cloze:
        assert not prefix[-1].isspace() and new.strip() in ("Bob", "BOB")
        assert old.strip() == {"Bob": "Romeo", "BOB": "ROMEO"}[new.strip()]
        # the context comes from a held-out passage: its text up to the name is in one
        tail = (prefix + new).split("\n\n")[-1]
        assert any(p.startswith(tail) for p in sp.heldout), tail
    named_train = [p for p in sp.train if "Bob" in p or "BOB" in p]
    named_held = [p for p in sp.heldout if "Bob" in p or "BOB" in p]
    assert len(named_held) == 6 and len(named_train) == 6  # half of the 12 naming him
    assert sp.control and all(c.rstrip() == c and not c.endswith(("Bob", "BOB")) for c in sp.control)


def _kb_line(i: int, **over) -> dict:
    rec = {"id": f"f{i}", "fact": f"Zorvan Tikk{i} built the Quellmoor tower {i}.",
           "questions": [{"kind": "near", "q": f"Who built Quellmoor tower {i}?",
                          "answer": f"Zorvan Tikk{i}"},
                         {"kind": "reversal", "q": f"What did Zorvan Tikk{i} build?",
                          "answer": f"Quellmoor tower {i}", "aliases": [f"the Quellmoor tower {i}"]}]}
    rec.update(over)
    return rec


def _write(path, recs) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


@pytest.mark.parametrize("bad, message", [
    ({"questions": [{"kind": "near", "q": "Who?"}]}, ":2: questions[0]: answer: missing field"),
    ({"questions": [{"kind": "sideways", "q": "Who?", "answer": "x"}]}, ":2: questions[0].kind: 'sideways'"),
    ({"fact": 3}, ":2: fact: expected a string"),
    ({"id": "f0"}, ":2: id: 'f0' appears twice"),
    ({"questions": [{"kind": "near", "q": "Who?", "answer": "x"}]}, ":2: questions: need a near question"),
    ({"questions": [{"kind": "near", "q": "Who?", "answer": "x", "aliases": "y"}]},
     ":2: questions[0]: aliases"),
])
def test_kb_reader_names_file_line_and_field(tmp_path, bad, message):
    path = _write(tmp_path / "kb.jsonl", [_kb_line(0), _kb_line(1, **bad)])
    with pytest.raises(DataError) as e:
        read_kb(path)
    assert f"{path}{message}" in str(e.value)


def test_shipped_probe_files_read_cleanly():
    from tunelab.probes.facts import FactsSettings
    from tunelab.probes.substitute import SubstituteSettings
    from tunelab.probes.substitute import read_questions as read_cloze

    s = FactsSettings()
    facts = read_kb(s.kb)
    assert len(facts) >= 40 and all({q.kind for q in f.questions} == {"near", "paraphrase", "reversal"}
                                    for f in facts)
    assert len(read_questions(s.unanswerable, False)) >= 15
    assert len(read_questions(s.general, True)) >= 100
    assert len(read_cloze(SubstituteSettings(corpus="x").questions)) >= 20


def test_unanswerable_scoring_counts_specific_answers_as_hallucination():
    from tunelab.probes.facts import metrics_of

    def item(kind, pred_abstains, correct=None):
        scores = {"abstain": float(pred_abstains)}
        if correct is not None:
            scores["correct"] = float(correct)
        return {"kind": kind, "fact": "f1", "scores": scores}

    items = [item("unanswerable", True), item("unanswerable", False), item("unanswerable", False),
             item("unanswerable", False), item("near", False, 1), item("paraphrase", True, 0)]
    m, higher = metrics_of(items, None)
    assert m["hallucination"][0] == 0.75 and not higher["hallucination"]
    assert m["acc_near"][0] == 1.0 and m["acc_paraphrase"][0] == 0.0
    assert m["near_minus_far"][0] == 1.0 and m["abstain_on_kb"][0] == 0.5


def test_facts_probe_end_to_end(tmp_path, tiny_model_dir):
    from tunelab.cli.main import app
    from tunelab.core.store import Store

    kb = _write(tmp_path / "kb.jsonl", [_kb_line(i) for i in range(3)])
    unans = _write(tmp_path / "u.jsonl", [{"id": "u1", "q": "Who built Quellmoor tower 9?"}])
    general = _write(tmp_path / "g.jsonl", [{"id": "g1", "q": "What is 2+2?", "answer": "4"}])
    text = _write(tmp_path / "t.jsonl", [{"text": "The family friendly restaurant by the river. " * 9}] * 3)
    store, out = tmp_path / "p.db", tmp_path / "rep"
    r = CliRunner().invoke(app, ["probe", "facts", "--kb", kb, "--unanswerable", unans, "--general", general,
                                 "--general-text", text, "--model", str(tiny_model_dir), "--epochs", "1,2",
                                 "--augment", "1", "--fact-counts", "2", "--store", str(store),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    labels = {x["label"] for x in Store(store).runs("done")}
    assert {"closed-book", "in-context", "rag", "rag + lora", "lora 1 ep", "lora 2 ep", "full 1 ep",
            "full 2 ep", "lora + paraphrases 2 ep", "lora 2 facts 2 ep"} == labels
    md = (out / "facts_vs_form.md").read_text()
    assert "## Facts probe" in md and "Hallucination on unanswerable questions" in md
    assert (out / "facts_vs_form.html").exists()


def test_substitute_probe_end_to_end(tmp_path, tiny_model_dir):
    from tunelab.cli.main import app
    from tunelab.core.store import Store

    corpus_file = tmp_path / "c.txt"
    corpus_file.write_text(corpus(8))
    store, out = tmp_path / "p.db", tmp_path / "rep"
    r = CliRunner().invoke(app, ["probe", "substitute", "--corpus", str(corpus_file),
                                 "--model", str(tiny_model_dir), "--steps", "1,2", "--samples", "2",
                                 "--store", str(store), "--out", str(out)])
    assert r.exit_code == 0, r.output
    runs = {x["label"]: x for x in Store(store).runs("done")}
    assert set(runs) == {"base", "lora 1 steps", "lora 2 steps", "full 1 steps", "full 2 steps"}
    m = Store(store).metrics(runs["lora 2 steps"]["id"])
    assert {"perplexity", "cloze_margin", "paraphrase_margin", "change_nll", "change_cloze_margin",
            "change_paraphrase_margin", "new_letter_says_new", "control_margin", "excess_cloze",
            "excess_paraphrase"} <= set(m)
    md = (out / "facts_vs_form.md").read_text()
    assert "## Substitution probe" in md and "lora 2 steps: form " in md


def test_probe_rejects_unknown_method_in_one_line(tmp_path):
    from tunelab.cli.main import app

    r = CliRunner().invoke(app, ["probe", "facts", "--methods", "lora,magic",
                                 "--store", str(tmp_path / "x.db")])
    assert r.exit_code == 2 and "unknown method 'magic'" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


class _Bigram(torch.nn.Module):
    """A hand-built model: log p(next = j | current = i) = log_softmax(M[i])[j], whatever came before."""

    def __init__(self, vocab: int):
        super().__init__()
        self.M = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)) * 3

    def forward(self, input_ids, attention_mask=None):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.M[input_ids])


def test_answer_logprob_is_the_mean_token_logprob_of_the_answer(tiny):
    from tunelab.probes.measure import answer_logprob

    _, tok = tiny
    model = _Bigram(len(tok))
    logp = torch.log_softmax(model.M, -1)
    prompts, answers = ["<|im_start|>user\nthe game<|im_end|>\n", "a much longer prompt about food"], \
        [" family friendly", " Romeo"]
    got = answer_logprob(model, tok, prompts + ["x"], answers + [""], batch_size=2)
    for p, a, g in zip(prompts, answers, got, strict=False):
        head = tok(p, add_special_tokens=False)["input_ids"]
        tail = tok(a, add_special_tokens=False)["input_ids"]
        ids = head + tail
        want = sum(float(logp[ids[k - 1], ids[k]]) for k in range(len(head), len(ids))) / len(tail)
        assert g == pytest.approx(want, abs=1e-5)
    assert got[2] != got[2]  # empty answer: NaN, nothing to score


def _conf_item(eid: str, kind: str, lp: float) -> dict:
    return {"example_id": eid, "kind": kind, "scores": {"logprob": lp}}


def test_confidence_metrics_from_known_logprobs():
    from tunelab.probes.confidence import by_set, confidence_metrics

    base = [_conf_item("u1", "unanswerable", -2.0), _conf_item("u2", "unanswerable", -3.0),
            _conf_item("g1", "general", -0.5), _conf_item("g2", "general", -1.5),
            _conf_item("f1", "near", -3.0), _conf_item("f2", "reversal", -2.0)]
    m, higher = confidence_metrics(base, None)
    assert m["confidence_unanswerable"][0] == pytest.approx(-2.5)
    assert m["confidence_known"][0] == pytest.approx(-1.0)
    assert m["confidence_gap_known"][0] == pytest.approx(1.5)  # -1.0 - (-2.5)
    assert m["confidence_gap_taught"][0] == pytest.approx(0.0)
    assert "change_confidence_unanswerable" not in m
    assert not higher["confidence_unanswerable"] and higher["confidence_gap_known"]
    # After "fine-tuning": every unanswerable answer 1.0 surer, known ones 0.25 surer, taught 2.0;
    # an empty answer (NaN) is left out, and the items come in another order.
    after = [_conf_item("u2", "unanswerable", -2.0), _conf_item("u1", "unanswerable", -1.0),
             _conf_item("u3", "unanswerable", float("nan")),
             _conf_item("g2", "general", -1.25), _conf_item("g1", "general", -0.25),
             _conf_item("f1", "near", -1.0), _conf_item("f2", "reversal", 0.0)]
    m, _ = confidence_metrics(after, by_set(base))
    assert m["confidence_unanswerable"][0] == pytest.approx(-1.5)
    assert m["change_confidence_unanswerable"] == pytest.approx((1.0, 1.0, 1.0))
    assert m["change_confidence_gap_known"] == pytest.approx((-0.75, -0.75, -0.75))
    assert m["change_confidence_gap_taught"] == pytest.approx((1.0, 1.0, 1.0))


def test_paired_change_pairs_by_question_with_a_ci():
    from tunelab.probes.confidence import paired_change

    rng = np.random.default_rng(0)
    before = [{"example_id": f"t{k}", "scores": {"nll": float(x), "kind": "text"}}
              for k, x in enumerate(rng.normal(3, 1, 40))]
    # Each text 0.2 better after, in reverse order, plus an item of another kind and one unpaired.
    after = [{"example_id": b["example_id"], "kind": "text",
              "scores": {"nll": b["scores"]["nll"] - 0.2 + float(rng.normal(0, 0.05))}} for b in before[::-1]]
    after += [{"example_id": "t99", "kind": "text", "scores": {"nll": 50.0}},
              {"example_id": "t0", "kind": "general", "scores": {"nll": 50.0}}]
    d, lo, hi = paired_change(after, before, ("text",), "nll")
    assert d == pytest.approx(-0.2, abs=0.03) and lo < d < hi < 0 and hi - lo < 0.1
    assert paired_change(after, before, ("general",), "nll") is None


def _alpaca(n: int) -> list[dict]:
    return [{"instruction": f"Describe item {k} in one sentence.", "input": "" if k % 2 else f"Item {k}",
             "output": f"Item {k} is a small thing number {k}."} for k in range(n)]


def test_replay_draw_is_seeded_sized_and_disjoint_from_what_measures_forgetting(tmp_path):
    from tunelab.probes.kb import Question
    from tunelab.probes.replay import draw, replay_count

    assert replay_count(50, 0.5) == 50 and replay_count(30, 0.25) == 10 and replay_count(7, 0.0) == 0
    recs = _alpaca(40)
    recs[3]["output"] = "The capital of Norway is Oslo."  # teaches a general question
    recs[4] = {"instruction": "State the capital of Norway", "input": "", "output": "Oslo"}
    recs[5]["output"] = ""  # nothing to train on
    held = {recs[k]["output"] for k in (6, 7)}  # the held-out perplexity texts
    path = _write(tmp_path / "alpaca.jsonl", recs)
    qs = [Question("g1", "What is the capital of Norway?", ["Oslo"])]
    a = draw(path, 35, seed=1, held_out=held, questions=qs)
    assert len(a) == 35 == len({r["id"] for r in a})
    assert {r["id"] for r in a} == {f"alpaca.jsonl:{k + 1}" for k in range(40)} - \
        {f"alpaca.jsonl:{k + 1}" for k in (3, 4, 5, 6, 7)}  # every eligible one, no other
    small = [r["id"] for r in draw(path, 10, 1, held, qs)]
    assert small == [r["id"] for r in draw(path, 10, 1, held, qs)]
    assert small != [r["id"] for r in draw(path, 10, 2, held, qs)]
    with pytest.raises(TunelabError, match="only 35 are eligible"):
        draw(path, 36, 1, held, qs)
    with pytest.raises(TunelabError, match="replay: expected a fraction"):
        replay_count(10, 1.0)
    bad = _write(tmp_path / "bad.jsonl", [recs[0], {"input": "x", "output": "y"}])
    with pytest.raises(DataError, match=r"bad.jsonl:2: instruction: missing field"):
        draw(bad, 1, 0, set(), qs)


def test_facts_probe_with_replay_end_to_end(tmp_path, tiny_model_dir):
    from tunelab.cli.main import app
    from tunelab.core.store import Store

    kb = _write(tmp_path / "kb.jsonl", [_kb_line(i) for i in range(4)])
    unans = _write(tmp_path / "u.jsonl", [{"id": "u1", "q": "Who built Quellmoor tower 9?"}])
    general = _write(tmp_path / "g.jsonl", [{"id": "g1", "q": "What is 2+2?", "answer": "4"}])
    text = _write(tmp_path / "t.jsonl", [{"text": "The family friendly restaurant by the river. " * 9}] * 3)
    replay = _write(tmp_path / "alpaca.jsonl", _alpaca(30))
    store, out = tmp_path / "p.db", tmp_path / "rep"
    r = CliRunner().invoke(app, ["probe", "facts", "--kb", kb, "--unanswerable", unans, "--general", general,
                                 "--general-text", text, "--model", str(tiny_model_dir), "--epochs", "1,2",
                                 "--augment", "0", "--fact-counts", "9", "--replay", "0.6",
                                 "--replay-data", replay, "--no-baselines", "--store", str(store),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    runs = {x["label"]: x for x in Store(store).runs("done")}
    assert {"closed-book", "lora 1 ep", "lora 2 ep", "full 1 ep", "full 2 ep", "lora + replay 2 ep",
            "full + replay 2 ep"} == set(runs)  # no in-context or RAG arm: --no-baselines
    info = json.loads(runs["lora + replay 2 ep"]["info"])
    assert info["replay"] == 0.6 and info["replay_examples"] == 6 == len(set(info["replay_ids"]))
    assert json.loads(runs["closed-book"]["config"])["settings"]["replay"] == 0.6
    # 4 facts + 6 replay examples at batch 8: 2 steps per epoch, against 1 without replay
    assert info["train_steps"] == 4 and json.loads(runs["lora 2 ep"]["info"])["train_steps"] == 2
    m = Store(store).metrics(runs["lora + replay 2 ep"]["id"])
    # (no "known" set: the tiny model answers no general question right)
    assert {"confidence_unanswerable", "confidence_gap_taught", "change_confidence_unanswerable",
            "change_confidence_gap_taught", "change_general_nll"} <= set(m)
    md = (out / "facts_vs_form.md").read_text()
    assert "Replay (60% of the mix, 6 general instruction examples) in lora 2 ep" in md
    assert "Replay (60% of the mix, 6 general instruction examples) in full 2 ep" in md
    assert "Confidence on unanswerable questions" in md and "after lora 2 ep" in md
    # verdicts are results: stdout, as `probe report --json` gives them
    rep = CliRunner().invoke(app, ["probe", "report", "--store", str(store), "-o", str(tmp_path / "r2"),
                                   "--json"])
    assert rep.exit_code == 0, rep.output
    data = json.loads(rep.stdout)
    assert data["verdicts"] and all(f"- {v}" in r.stdout for v in data["verdicts"])
    assert not any(v in r.stderr for v in data["verdicts"])
    assert (tmp_path / "r2" / "facts_vs_form.md").exists()


def test_probe_rejects_a_replay_share_of_one_or_more(tmp_path):
    from tunelab.cli.main import app

    r = CliRunner().invoke(app, ["probe", "facts", "--replay", "1", "--store", str(tmp_path / "x.db")])
    assert r.exit_code != 0 and "replay: expected a fraction in [0, 1), got 1.0" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "x.db").exists()


def test_probe_runs_are_listed_shown_and_refused_by_rerun_in_one_line(tmp_path):
    """Probe arms are stored like runs but carry no grid cell: ls, show and rerun must
    treat them as such instead of failing on a missing ['cell']."""
    from dataclasses import dataclass

    from typer.testing import CliRunner

    from tunelab.cli.main import app
    from tunelab.core.store import Store
    from tunelab.probes import Result, save

    @dataclass
    class Settings:
        model: str = "m"
        seed: int = 0

    store = tmp_path / "p.db"
    item = {"example_id": "q1", "input": "who?", "target": "Bob", "prediction": "Bob",
            "scores": {"acc": 1.0}}
    key = save(Store(store), "facts", Settings(), Result("lora 2 ep", {"acc": (1.0, 1.0, 1.0)},
                                                        {"acc": True}, [item], n_train=3))
    runner = CliRunner()
    r = runner.invoke(app, ["ls", "--store", str(store)])
    assert r.exit_code == 0 and key[:12] in r.output, r.output
    r = runner.invoke(app, ["show", key, "--store", str(store)])
    assert r.exit_code == 0, r.output
    assert '"probe": "facts"' in r.output and "acc: 1.000" in r.output
    r = runner.invoke(app, ["rerun", key, "--store", str(store), "--out", str(tmp_path / "re")])
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit), r.exception  # no KeyError
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "a probe arm (probe:facts)" in lines[0], r.output


def test_substitute_trains_at_the_methods_own_defaults():
    # the probe fine-tunes as a grid cell of the method would (its spec's lr: LoRA's 2e-3,
    # not a probe-only 1e-3), on its own fixed budget
    from tunelab.core.config import MethodConfig, RunConfig
    from tunelab.methods import METHODS, method_train
    from tunelab.probes.substitute import SubstituteSettings, train_settings

    s = SubstituteSettings(corpus="x", steps=[5, 9])
    for name in ("lora", "full"):
        t, cell = train_settings(s, name), method_train(RunConfig(), MethodConfig(name=name))
        assert t.lr == METHODS[name].lr == cell.lr and (t.lora_r, t.schedule) == (cell.lora_r, cell.schedule)
        assert (t.epochs, t.min_steps, t.save) == (0, 9, False)
    assert train_settings(SubstituteSettings(corpus="x", lr=0.01), "lora").lr == 0.01
