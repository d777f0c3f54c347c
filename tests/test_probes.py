"""Facts-vs-form probes on the tiny random model: the mechanics, not the findings."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tunelab.data import DataError
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
    from tunelab.cli import app
    from tunelab.store import Store

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
    from tunelab.cli import app
    from tunelab.store import Store

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
    from tunelab.cli import app

    r = CliRunner().invoke(app, ["probe", "facts", "--methods", "lora,magic",
                                 "--store", str(tmp_path / "x.db")])
    assert r.exit_code == 2 and "unknown method 'magic'" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_probe_runs_are_listed_shown_and_refused_by_rerun_in_one_line(tmp_path):
    """Probe arms are stored like runs but carry no grid cell: ls, show and rerun must
    treat them as such instead of failing on a missing ['cell']."""
    from dataclasses import dataclass

    from typer.testing import CliRunner

    from tunelab.cli import app
    from tunelab.probes import Result, save
    from tunelab.store import Store

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
