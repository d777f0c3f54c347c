"""Every interval printed anywhere (terminal/log table, report.md, report.html, --json) is
the one computed from the per-example scores: never zero width where the scores spread."""

from __future__ import annotations

import json
import re

import numpy as np
from typer.testing import CliRunner

from tunelab.cli.main import app
from tunelab.core.store import Store
from tunelab.data.readers import read_examples
from tunelab.decide.arms import load_arms
from tunelab.report import json_results as payload
from tunelab.report.build import build, results_markdown

CI = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")


def _run(store: Store, method: str, f1: list[float], ids: list[str], trained: bool) -> None:
    """A run stored as a one-line JSON array's records were: every example id alike."""
    cell = {"method": {"name": method}, "train_size": 0, "seed": 0, "trained": trained,
            "primary": "exact_match"}
    store.begin(method, {"task": "jsonl", "model": "m", "method": method, "label": method,
                         "train_size": 0, "n_train": 0, "seed": 0,
                         "config": {"task": {"name": "jsonl"}, "cell": cell}})
    rows = [{"idx": i, "example_id": e, "input": f"q{i}", "target": f"t{i}", "prediction": f"p{i}",
             "scores": {"exact_match": 0.0, "token_f1": s}, "prompt_tokens": 1, "gen_tokens": 1,
             "latency_s": 0.1} for i, (e, s) in enumerate(zip(ids, f1, strict=True))]
    m = float(np.mean(f1))
    store.finish(method, {"info": {}, "eval_seconds": 1.0},
                 {"exact_match": (0.0, 0.0, 0.0), "token_f1": (m, m - 0.07, m + 0.07)},
                 {"exact_match": True, "token_f1": True}, rows)


def _store(tmp_path) -> str:
    rng = np.random.default_rng(0)
    s = Store(tmp_path / "s.db")
    ids = ["alpaca.json:1"] * 40
    _run(s, "zero_shot", rng.uniform(0.0, 0.5, 40).tolist(), ids, False)
    _run(s, "lora", rng.uniform(0.1, 0.6, 40).tolist(), ids, True)
    return str(tmp_path / "s.db")


def _no_zero_width(text: str, where: str) -> None:
    found = [(m, lo, hi) for m, lo, hi in CI.findall(text) if m != "0.000"]
    assert found, where
    for m, lo, hi in found:
        assert float(lo) < float(m) < float(hi), f"{where}: {m} [{lo}, {hi}]"


def test_intervals_with_spread_are_never_zero_width_anywhere(tmp_path):
    path = _store(tmp_path)
    arms = load_arms(Store(path, create=False))
    for a in arms:
        m, lo, hi = a.ci["token_f1"]
        assert hi - lo > 0.05, (a.name, a.ci)
        assert len(a.scores["token_f1"]) == 40  # 40 examples, not one id averaged
    _no_zero_width(results_markdown(arms), "log table")
    md, html = build(path, tmp_path / "r")
    _no_zero_width(md.read_text().split("## Results")[1], "report.md")
    _no_zero_width(html.read_text(), "report.html")
    for a in arms:
        ci = payload.arm(a)["metrics"]["token_f1"]
        assert ci["lo"] < ci["mean"] < ci["hi"] and ci["hi"] - ci["lo"] > 0.05, ci
    r = CliRunner().invoke(app, ["report", path, "-o", str(tmp_path / "r2")])
    assert r.exit_code == 0, r.output
    _no_zero_width(r.stdout, "tunelab report")
    json.dumps([payload.arm(a) for a in arms])


def test_a_one_line_json_array_gives_each_record_its_own_id(tmp_path):
    path = tmp_path / "alpaca.json"
    recs = [{"instruction": f"do {i}", "input": "", "output": f"answer {i}"} for i in range(5)]
    path.write_text(json.dumps(recs))  # one line, as json.dump writes it
    ids = [e.id for e in read_examples(path)]
    assert len(set(ids)) == 5 and ids[0] == "alpaca.json:1", ids


def test_a_metric_that_cannot_move_decides_nothing(tmp_path):
    """Exact match 0.000 for every arm on every example once read "Recommendation: prompt;
    fine-tuning is within 2 points of it". Now the verdict says it decides nothing and is
    drawn on the next metric that varies (token F1), in every output."""
    from tunelab.decide.verdict import recommend

    path = _store(tmp_path)
    arms = load_arms(Store(path, create=False))
    lines = recommend(arms, "exact_match")
    assert lines[0] == ("exact_match decides nothing here: every arm scores 0.000 on every test "
                        "example (the floor), so it cannot tell the arms apart; the findings below "
                        "are drawn on token_f1, the first of the task's other metrics that varies "
                        "across test examples.")
    assert not any("on exact_match" in x for x in lines) and any("on token_f1" in x for x in lines[1:])
    md, _ = build(path, tmp_path / "r")
    assert "exact_match decides nothing here" in md.read_text()
    assert "## Results (token_f1 is" in md.read_text()
    r = CliRunner().invoke(app, ["report", path, "-o", str(tmp_path / "r2")])
    assert "exact_match decides nothing here" in r.stdout
    said = payload.verdict(arms, "exact_match")  # --json
    assert said["metric"] == "token_f1" and "decides nothing" in said["why_not_primary"]
    assert said["headline_pairs"] == 1 and said["correction"] is None
    for a in arms:
        a.scores = {"exact_match": a.scores["exact_match"]}
    assert recommend(arms, "exact_match") == [
        "exact_match decides nothing here: every arm scores 0.000 on every test example (the "
        "floor), and no other metric of this task varies either, so no verdict can be drawn from "
        "these arms."]


def _coverage_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench" / "coverage.py"
    spec = importlib.util.spec_from_file_location("coverage_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_coverage_bench_measures_the_four_intervals():
    """bench/coverage.py: every method's interval holds the slice mean, the t-interval is
    the textbook one, and on a population of normal-ish differences all four cover near 95%."""
    from scipy import stats

    bench = _coverage_bench()
    d = bench.synthetic(100, 0.1, np.random.default_rng(0))
    cis = bench.intervals(d, 500, 0)
    assert set(cis) == set(bench.METHODS)
    for lo, hi in cis.values():
        assert lo < d.mean() < hi
    half = stats.t.ppf(0.975, 99) * d.std(ddof=1) / 10
    assert np.allclose(cis["t"], (d.mean() - half, d.mean() + half))
    rows = bench.coverage(bench.synthetic(5000, 0.05, np.random.default_rng(1)), [40], 40, 300, 0)
    assert [r["method"] for r in rows] == list(bench.METHODS)
    assert all(0.8 <= r["coverage"] <= 1.0 and r["mean_width"] > 0 for r in rows), rows
    flat = bench.coverage(np.zeros(50), [40], 5, 100, 0)  # no spread: zero width, always covers
    assert all(r["coverage"] == 1.0 and r["mean_width"] == 0.0 for r in flat)
