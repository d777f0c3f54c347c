"""Report on a synthetic store: two models, seeds, a learning curve; every finding is
checked against numbers built into the store."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest

from tunelab.core.store import Store
from tunelab.report.build import build, cost_to_reach, load_arms, recommend

N_TEST = 60


def _add(store, model, method, n, seed, p_right, train_s=0.0):
    key = f"{model}-{method}-{n}-{seed}"
    cfg = {"task": {"name": "viggo"}, "cell": {}}
    store.begin(key, {"task": "viggo", "model": model, "method": method, "label": method,
                      "train_size": n, "n_train": n, "seed": seed, "config": cfg,
                      "versions": {}, "git_commit": "x"})
    # Deterministic: the first p_right of the examples (shifted by seed) are right.
    right = (np.arange(N_TEST) + 7 * seed) % N_TEST < round(p_right * N_TEST)
    rows = [{"idx": i, "example_id": f"e{i}", "input": "i", "target": "t", "prediction": "p",
             "scores": {"mr_exact": float(r), "slot_f1": float(r)}, "prompt_tokens": 10,
             "gen_tokens": 5, "latency_s": 0.1} for i, r in enumerate(right)]
    m = float(right.mean())
    store.finish(key, {"info": {"prompts": ["p"]}, "train_seconds": train_s, "eval_seconds": 10.0,
                       "train_tokens": 100 * n, "trainable_params": 5, "prompt_tokens_mean": 10.0,
                       "gen_tokens_mean": 5.0, "peak_rss_mb": 1.0},
                 {"mr_exact": (m, m, m), "slot_f1": (m, m, m)},
                 {"mr_exact": True, "slot_f1": True}, rows)


def _store(tmp_path):
    s = Store(tmp_path / "s.db")
    for seed in (0, 1, 2):
        _add(s, "big", "zero_shot", 0, seed, 0.1)
        for n, p in [(10, 0.2), (25, 0.85), (50, 0.9), (100, 0.9)]:
            _add(s, "small", "lora", n, seed, p, train_s=n)
    return s


def test_enough_examples_cross_model_and_cost(tmp_path):
    s = _store(tmp_path)
    arms = load_arms(s)
    assert {a.name for a in arms} >= {"big zero_shot", "small lora n=25"}
    assert all(len(a.seed_means["mr_exact"]) == 3 for a in arms)
    lines = recommend(arms, "mr_exact")
    assert any(line.startswith("50 examples are enough here: small lora n=50") for line in lines), lines
    cross = [line for line in lines if line.startswith("Across models:")]
    assert len(cross) == 1 and "small lora" in cross[0] and "beats big zero_shot" in cross[0]
    reach = cost_to_reach(arms, "mr_exact")
    rows = dict(reach["rows"])
    assert rows["big zero_shot"][0] is None  # 0.1 never reaches half the best
    assert rows["small lora"][0].n_train == 25  # cheapest arm past half the best
    assert rows["small lora"][-1].n_train == 50  # cheapest at the best score
    md, html = build(tmp_path / "s.db", tmp_path / "rep")
    text = md.read_text()
    assert "Cost to reach a score" in text and "n=25:" in text and "n=50:" in text and "not reached" in text
    assert "peak RSS MB" in text and "Across models" in html.read_text()
    info = json.loads(s.runs("done")[0]["info"])
    assert info["prompts"] == ["p"]


def test_corpus_metric_shown_with_its_stored_ci(tmp_path):
    """macro-F1 has no per-example score: the table shows the stored value and CI,
    averaged over seeds."""
    s = Store(tmp_path / "s.db")
    for seed, (m, lo, hi) in enumerate([(0.40, 0.30, 0.50), (0.60, 0.50, 0.70)]):
        key = f"k{seed}"
        s.begin(key, {"task": "viggo_act", "model": "m", "method": "few_shot", "label": "few_shot",
                      "train_size": 10, "n_train": 10, "seed": seed,
                      "config": {"task": {"name": "viggo_act"}, "cell": {}},
                      "versions": {}, "git_commit": "x"})
        rows = [{"idx": i, "example_id": f"e{i}", "input": "i", "target": "inform", "prediction": "inform",
                 "scores": {"label_match": float(i % 2)}, "prompt_tokens": 10, "gen_tokens": 2,
                 "latency_s": 0.1} for i in range(10)]
        s.finish(key, {"info": {}, "eval_seconds": 1.0},
                 {"label_match": (0.5, 0.2, 0.8), "macro_f1": (m, lo, hi)},
                 {"label_match": True, "macro_f1": True}, rows)
    (arm,) = load_arms(s)
    assert arm.ci["macro_f1"] == pytest.approx((0.5, 0.4, 0.6))
    md, html = build(tmp_path / "s.db", tmp_path / "rep")
    assert "macro_f1" in md.read_text() and "0.500 [0.400, 0.600]" in html.read_text()


class _Page(HTMLParser):
    """What a browser would build from the page: its elements and its visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_model_output_is_escaped_in_html(tmp_path):
    """Predictions, inputs, references, prompts and errors are data: read back by an HTML
    parser, the page has no element made from them and shows them as written."""
    hostile = "<script>alert(1)</script> <start_of_turn>model Tom & Jerry &amp; co"
    s = Store(tmp_path / "s.db")
    for key, right in (("a", 1.0), ("b", 0.0)):
        s.begin(key, {"task": "viggo", "model": "m", "method": "zero_shot", "label": f"arm{key}",
                      "train_size": 0, "n_train": 0, "seed": 0,
                      "config": {"task": {"name": "viggo"}, "cell": {}}, "versions": {}, "git_commit": "x"})
        rows = [{"idx": i, "example_id": f"e{i}", "input": f"in {hostile}", "target": f"ref {hostile}",
                 "prediction": f"out {hostile}", "scores": {"mr_exact": right, "slot_f1": right},
                 "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.1} for i in range(4)]
        s.finish(key, {"info": {"prompts": [f"prompt {hostile}"]}, "eval_seconds": 1.0},
                 {"mr_exact": (right,) * 3, "slot_f1": (right,) * 3},
                 {"mr_exact": True, "slot_f1": True}, rows)
    s.begin("c", {"task": "viggo", "model": "m", "method": "lora", "label": "lora", "train_size": 8,
                  "n_train": 8, "seed": 0, "config": {}, "versions": {}, "git_commit": "x"})
    s.fail("c", f"error {hostile}")
    _, html = build(tmp_path / "s.db", tmp_path / "rep")
    page = _Page()
    page.feed(html.read_text())
    assert "script" not in page.tags and "start_of_turn" not in page.tags, page.tags
    text = "".join(page.text)
    for where in ("in", "ref", "out", "prompt", "error"):
        assert f"{where} {hostile}" in text, where
