"""Report sections for the user's own data, on a synthetic store: classification breakdown,
every arm's predictions side by side, training-loss curves, one-seed tables."""

from __future__ import annotations

import pytest

from tunelab.core.store import Store
from tunelab.report.build import build, load_arms
from tunelab.report.confusion import OTHER, breakdown
from tunelab.report.side_by_side import side_by_side

LABELS = ["inform", "request"]
REFS = ["inform", "inform", "inform", "request", "request", "request"]


def _add(store, method, preds, seed=0, losses=None, scoring=True):
    key = f"{method}-{seed}"
    cell = {"primary": "label_match"}
    if scoring:
        cell["scoring"] = {"kind": "classification", "why": "the test says so", "labels": LABELS}
    store.begin(key, {"task": "jsonl", "model": "m", "method": method, "label": method,
                      "train_size": 4 if losses else 0, "n_train": 4 if losses else 0, "seed": seed,
                      "config": {"task": {"name": "jsonl"}, "cell": cell},
                      "versions": {}, "git_commit": "x"})
    right = [float(p.strip().lower() == r) for p, r in zip(preds, REFS, strict=True)]
    rows = [{"idx": i, "example_id": f"e{i}", "input": f"sentence {i}", "target": REFS[i],
             "prediction": p, "scores": {"label_match": right[i]}, "prompt_tokens": 5,
             "gen_tokens": 1, "latency_s": 0.1} for i, p in enumerate(preds)]
    m = sum(right) / len(right)
    info = {"prompts": ["p"], **({"losses": losses} if losses else {})}
    store.finish(key, {"info": info, "train_seconds": 1.0, "eval_seconds": 1.0},
                 {"label_match": (m, m, m), "macro_f1": (m, m, m)},
                 {"label_match": True, "macro_f1": True}, rows)


def test_breakdown_counts_per_class_and_other():
    preds = ["inform", "Inform.", "request", "request", "a paraphrase", "request"]
    b = breakdown([{"target": r, "prediction": p} for r, p in zip(REFS, preds, strict=True)], LABELS)
    assert b["labels"] == ["inform", "request", OTHER]
    assert b["matrix"] == [[2, 1, 0], [0, 2, 1]]  # rows: references; columns: predictions
    inform, request = b["rows"]
    assert inform["precision"] == 1.0 and inform["recall"] == pytest.approx(2 / 3)
    assert request["precision"] == pytest.approx(2 / 3) and request["support"] == 3
    assert b["other"] == 1


def test_report_shows_classification_losses_and_every_arms_predictions(tmp_path):
    s = Store(tmp_path / "s.db")
    _add(s, "zero_shot", ["inform", "blah", "inform", "inform", "inform", "inform"])
    _add(s, "lora", REFS[:5] + ["inform"], losses=[2.0, 1.5, 1.1, 0.9])
    md, html = build(tmp_path / "s.db", tmp_path / "rep")
    text = md.read_text()
    assert "Scoring: **classification**: the test says so." in text
    best = text.split("## Classification (")[1]
    assert best.startswith("lora")  # the best arm's breakdown
    assert "| request | 1.000 | 0.667 | 0.800 | 3 |" in best
    assert (tmp_path / "rep" / "confusion.png").exists() and (tmp_path / "rep" / "losses.png").exists()
    assert "![training and validation loss](losses.png)" in text
    # one seed: no "0.620 - 0.620" range
    table = text.split("## Results")[1].split("## Cost")[0]
    assert table.count("| — |") == 2 and " - " not in table.split("\n|---")[1]
    assert "thresholds are 50%, 75%, 90% and 100% of the best arm's mean" in text
    side = text.split("## Example predictions")[1]
    assert "| input | reference | zero_shot | lora n=4 |" in side
    rows = [r for r in side.splitlines() if r.startswith("| sentence")]
    assert rows[0].startswith("| sentence 5 |")  # both arms wrong: first
    assert "✗ blah" in side and "✗ inform" in side


def test_side_by_side_puts_each_arms_mistakes_first(tmp_path):
    s = Store(tmp_path / "s.db")
    _add(s, "zero_shot", ["request"] + REFS[1:])  # wrong only on e0
    _add(s, "lora", REFS[:5] + ["inform"], losses=[1.0])  # wrong only on e5
    _add(s, "few_shot", ["request", "request"] + REFS[2:])  # wrong on e0, e1
    arms = load_arms(s)
    side = side_by_side(arms, "label_match", per_arm=1, total=2)  # every arm's mistake beats total
    inputs = [r["input"] for r in side["rows"]]
    assert inputs[0] == "sentence 0"  # two arms wrong
    # arms in table order (zero_shot, few_shot, lora): zero_shot's e0, then few_shot's first
    # mistake not yet shown (e1), and lora's only mistake (e5)
    assert set(inputs) == {"sentence 0", "sentence 1", "sentence 5"}
    assert len(side["rows"][0]["cells"]) == 3


def test_no_classification_section_for_free_text(tmp_path):
    s = Store(tmp_path / "s.db")
    _add(s, "zero_shot", REFS, scoring=False)
    md, _ = build(tmp_path / "s.db", tmp_path / "rep")
    text = md.read_text()
    assert "## Classification" not in text and "Scoring:" not in text and "losses.png" not in text


def test_loss_plot_carries_the_validation_curve_and_the_kept_step():
    """The report's loss plot draws what decided the training length: the validation loss
    at its steps and the best (restored) step, beside the training loss."""
    import json
    from types import SimpleNamespace

    from tunelab.report.plots import loss_curves, loss_series

    info = {"losses": [3.0, 1.0, 0.5, 0.4], "val_steps": [0, 2, 4], "val_losses": [3.3, 0.6, 0.7],
            "best_step": 2}
    arms = [SimpleNamespace(name="lora n=8", runs=[{"info": json.dumps(info)}]),
            SimpleNamespace(name="few_shot", runs=[{"info": json.dumps({"shots": []})}])]
    assert loss_series(arms) == [("lora n=8", [{"train": [3.0, 1.0, 0.5, 0.4], "val_steps": [0, 2, 4],
                                                "val": [3.3, 0.6, 0.7], "best": 2}])]
    assert loss_curves(arms)[:4] == b"\x89PNG" and loss_curves(arms[1:]) is None
