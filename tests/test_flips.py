"""Per-example flips on hand-built pairs of arms: every count checked by hand."""

from __future__ import annotations

from types import SimpleNamespace

from tests.test_report import _Page
from tunelab.core.store import Store
from tunelab.decide.flips import flips, report_flips
from tunelab.report.build import build


def arm(name, scores, trained=False, n=0):
    ids = [f"e{i}" for i in range(len(scores))]
    return SimpleNamespace(
        name=name, trained=trained, n_train=n,
        scores={"acc": dict(zip(ids, scores, strict=True))},
        ci={"acc": (sum(scores) / len(scores), 0.0, 1.0)},
        examples=[{"example_id": i, "input": f"in {i}", "target": f"ref {i}", "prediction": f"{name} {i}"}
                  for i in ids])


def test_binary_counts_and_examples_each_way():
    a = arm("lora", [1, 1, 0, 0, 1, 1])
    b = arm("few_shot", [1, 0, 1, 0, 0, 1])
    f = flips(a, b, "acc")
    assert f["n"] == 6
    assert f["counts"] == {"a_only": 2, "b_only": 1, "both_right": 2, "both_wrong": 1}
    assert [r["example_id"] for r in f["a_only"]] == ["e1", "e4"]
    (only_b,) = f["b_only"]
    assert only_b == {"example_id": "e2", "input": "in e2", "target": "ref e2",
                      "a_prediction": "lora e2", "b_prediction": "few_shot e2", "a_score": 0, "b_score": 1}


def test_graded_scores_right_at_half_and_clearest_flips_first():
    """Seed means / graded metric: 'right' is a score of at least 0.5; the flip with the
    largest difference is shown first, and `show` limits what is listed, not the counts."""
    a = arm("lora", [0.5, 0.6, 0.9, 1.0, 0.2, 0.49])
    b = arm("zero_shot", [0.49, 0.0, 0.1, 0.5, 0.7, 0.3])
    f = flips(a, b, "acc", show=2)
    assert f["counts"] == {"a_only": 3, "b_only": 1, "both_right": 1, "both_wrong": 1}
    assert [r["example_id"] for r in f["a_only"]] == ["e2", "e1"]  # 0.8 and 0.6 apart; e0 (0.01) cut
    assert [r["example_id"] for r in f["b_only"]] == ["e4"]


def test_only_shared_examples_and_the_reports_best_pair():
    tuned = [arm("lora n=8", [0, 0, 0, 0], True, 8), arm("lora n=16", [1, 1, 0, 0], True, 16)]
    prompted = [arm("zero_shot", [0, 0, 0, 0]), arm("few_shot", [0, 1, 1, 1])]
    del prompted[1].scores["acc"]["e3"]  # scored on three examples only
    f = report_flips([*tuned, *prompted], "acc")
    assert (f["a"], f["b"]) == ("lora n=16", "few_shot")  # best of each side by mean
    assert f["n"] == 3 and f["counts"] == {"a_only": 1, "b_only": 1, "both_right": 1, "both_wrong": 0}
    assert report_flips(prompted, "acc") is None  # nothing fine-tuned: no pair


def test_report_section_counts_and_escaped_flips(tmp_path):
    """In the report: the four counts, and the flipped examples as text (an HTML parser
    finds no element made from model output)."""
    hostile = "<script>alert(1)</script> Tom & Jerry"
    s = Store(tmp_path / "s.db")
    for method, right in (("zero_shot", [1, 0, 0, 1]), ("lora", [0, 1, 1, 1])):
        s.begin(method, {"task": "viggo", "model": "m", "method": method, "label": method,
                         "train_size": 8 if method == "lora" else 0, "n_train": 8 if method == "lora" else 0,
                         "seed": 0, "config": {"task": {"name": "viggo"}, "cell": {}}, "versions": {},
                         "git_commit": "x"})
        rows = [{"idx": i, "example_id": f"e{i}", "input": f"in{i} {hostile}", "target": f"ref {hostile}",
                 "prediction": f"{method} says {hostile}",
                 "scores": {"slot_f1": float(r), "mr_exact": float(r)},
                 "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.1} for i, r in enumerate(right)]
        m = sum(right) / 4
        s.finish(method, {"info": {"prompts": ["p"]}, "eval_seconds": 1.0},
                 {"slot_f1": (m, m, m), "mr_exact": (m, m, m)}, {"slot_f1": True, "mr_exact": True}, rows)
    md, html = build(tmp_path / "s.db", tmp_path / "rep")
    text = md.read_text().split("## Per-example flips (lora n=8 vs zero_shot, 4 test examples)")[1]
    assert "| **lora n=8 right** | 1 | 2 |" in text and "| **lora n=8 wrong** | 1 | 0 |" in text
    assert "### lora n=8 right, zero_shot wrong: 2 (2 shown)" in text
    page = _Page()
    page.feed(html.read_text())
    assert "script" not in page.tags
    shown = "".join(page.text)
    for said in (f"lora says {hostile}", f"in1 {hostile}", f"zero_shot says {hostile}"):
        assert said in shown, said
