"""The recommendation over designed stores: one case per branch, each with its exact
sentences; arms that mean one thing; the margin setting; the printed verdict in a log."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tunelab import TunelabError
from tunelab.core.config import MethodConfig, ModelConfig, TrainConfig, to_dict
from tunelab.core.store import Store
from tunelab.decide.verdict import Z95, compare, recommend
from tunelab.methods import load_config
from tunelab.methods.stored import as_stored
from tunelab.report.build import build, load_arms

SRC = Path(__file__).parents[1] / "src"


def pattern(n: int, right: list[tuple[int, int]]) -> list[float]:
    """n scores, 1.0 on the index ranges given (start, stop), else 0.0."""
    out = np.zeros(n)
    for a, b in right:
        out[a:b] = 1.0
    return out.tolist()


def add(store: Store, method: str, scores: list[float], n: int = 0, seed: int = 0,
        model: str = "m", label: str | None = None, train: dict | None = None, cfg: dict | None = None,
        key: str | None = None, info: dict | None = None, answers: list[str] | None = None,
        cell: dict | None = None, **settings) -> str:
    """One finished run whose per-example scores are `scores`, with a config as a grid stores it."""
    m = MethodConfig(name=method, label=label, train=train or {}, **settings)
    cell = {"method": as_stored(m), "model": to_dict(ModelConfig(name=model)), "train_size": n,
            "seed": seed, "train": to_dict(TrainConfig(**(train or {}))), **(cell or {})}
    key = key or f"{model}-{label or method}-{n}-{seed}-{len(store.runs())}"
    store.begin(key, {"task": "viggo", "model": model, "method": method, "label": label or method,
                      "train_size": n, "n_train": n, "seed": seed,
                      "config": {"task": {"name": "viggo"}, **(cfg or {}), "cell": cell},
                      "versions": {}, "git_commit": "x"})
    rows = [{"idx": i, "example_id": f"e{i}", "input": "i", "target": f"t{i % 9}" if answers else "t",
             "prediction": answers[i] if answers else "p",
             "scores": {"mr_exact": s, "slot_f1": s}, "prompt_tokens": 1, "gen_tokens": 1,
             "latency_s": 0.1} for i, s in enumerate(scores)]
    v = float(np.mean(scores))
    store.finish(key, {"info": {"prompts": ["p"], **(info or {})}, "eval_seconds": 1.0},
                 {"mr_exact": (v, v, v), "slot_f1": (v, v, v)}, {"mr_exact": True, "slot_f1": True}, rows)
    return key


def collapsed_arms(s):
    # a too-hot lr: both sizes answer 'give_opinion' to (nearly) every input; level with
    # each other, which alone would read "50 examples are enough"
    add(s, "lora", pattern(100, [(0, 11)]), n=50, answers=["give_opinion"] * 100)
    add(s, "lora", pattern(100, [(0, 11)]), n=100, answers=["give_opinion"] * 95 + ["x"] * 5)
    add(s, "few_shot", pattern(100, [(0, 20)]), n=50, k=5, answers=[f"t{i % 9}" for i in range(100)])


UNDECIDED = pattern(50, [(0, 25)]), pattern(50, [(0, 20), (25, 27)])
"""lora right on 25 of 50, few_shot on 22: 5 examples only lora gets, 2 only few_shot."""


def fine_tune_wins(s):
    add(s, "lora", pattern(100, [(0, 80)]), n=50)
    add(s, "few_shot", pattern(100, [(0, 40)]), n=50, k=5)


def prompting_wins(s):
    add(s, "lora", pattern(100, [(0, 40)]), n=50)
    add(s, "few_shot", pattern(100, [(0, 80)]), n=50, k=5)


def equivalent(s):
    add(s, "lora", pattern(200, [(0, 100)]), n=50)
    add(s, "few_shot", pattern(200, [(2, 102)]), n=50)


def undecided(s):
    add(s, "lora", UNDECIDED[0], n=50)
    add(s, "few_shot", UNDECIDED[1], n=50)


def fine_tuning_worse(s):
    add(s, "zero_shot", pattern(100, [(0, 60)]))
    add(s, "few_shot", pattern(100, [(0, 70)]), n=50)
    add(s, "lora", pattern(100, [(0, 30)]), n=50)


STILL_FALLING = {"converged": False, "convergence_note": "validation loss still falling when the "
                 "budget ran out (0.800 after 1.000)"}


def fine_tuning_not_converged(s):
    add(s, "lora", pattern(100, [(0, 40)]), n=50, info=STILL_FALLING)
    add(s, "lora", pattern(100, [(0, 30)]), n=25, info=STILL_FALLING)
    add(s, "few_shot", pattern(100, [(0, 80)]), n=50, k=5)


def unconverged_winner(s):
    # the recommended arm was still improving: the flag must not read as a doubt about it
    add(s, "lora", pattern(100, [(0, 80)]), n=50, info=STILL_FALLING)
    add(s, "few_shot", pattern(100, [(0, 40)]), n=50, k=5)


def enough_examples(s):
    add(s, "lora", pattern(200, [(0, 60)]), n=25)
    add(s, "lora", pattern(200, [(0, 120)]), n=50)
    add(s, "lora", pattern(200, [(2, 122)]), n=100)


def more_examples_helped(s):
    add(s, "lora", pattern(200, [(0, 60)]), n=25)
    add(s, "lora", pattern(200, [(0, 120)]), n=50)


def size_undecided(s):
    add(s, "lora", UNDECIDED[1], n=25)
    add(s, "lora", UNDECIDED[0], n=50)


def prompting_sizes_only(s):
    # a larger pool to draw shots from, and a worse draw: the size finding says it once
    add(s, "few_shot", pattern(200, [(0, 60)]), n=50, k=5)
    add(s, "few_shot", pattern(200, [(0, 20)]), n=100, k=5)


def across_models(s):
    add(s, "lora", pattern(100, [(0, 90)]), n=50, model="small")
    add(s, "zero_shot", pattern(100, [(0, 60)]), model="small")
    add(s, "few_shot", pattern(100, [(0, 20)]), n=50, model="big")


def one_arm(s):
    add(s, "lora", pattern(100, [(0, 90)]), n=50)


def no_prompting_arm(s):
    add(s, "lora", pattern(100, [(0, 90)]), n=50)
    add(s, "full", pattern(100, [(0, 30)]), n=50)


CASES = {
    "fine-tune wins": (fine_tune_wins, [
        "lora n=50 beats few_shot by 40.0 points (95% CI 31.0 to 49.0) on mr_exact.",
        "Recommendation: fine-tune (lora n=50); the best prompting arm (few_shot) is clearly "
        "behind on this task."]),
    "prompting wins": (prompting_wins, [
        "lora n=50 is worse than few_shot by 40.0 points (95% CI 31.0 to 49.0) on mr_exact.",
        "Recommendation: prompt (few_shot); the best fine-tuned arm (lora n=50) is clearly "
        "behind on this task."]),
    "within the margin": (equivalent, [
        "lora n=50 is within 2 points of few_shot (+0.0 points, 90% CI -1.5 to +1.5) on mr_exact.",
        "Recommendation: prompt (few_shot); fine-tuning is within 2 points of it, not worth its "
        "training cost here."]),
    "undecided": (undecided, [
        "lora n=50 vs few_shot is undecided on mr_exact: +6.0 points (95% CI -4.0 to +16.0) is "
        "too wide to call either better or within 2 points; about 149 test examples would "
        "settle it (now 50).",
        "No recommendation yet: at 50 test examples fine-tuning (lora n=50) and prompting "
        "(few_shot) can neither be told apart nor shown within 2 points of each other."]),
    "fine-tuning worse than untuned": (fine_tuning_worse, [
        "lora n=50 is worse than few_shot by 40.0 points (simultaneous 95% CI 29.3 to 50.7) on "
        "mr_exact.",
        "Recommendation: prompt (few_shot); the best fine-tuned arm (lora n=50) is clearly "
        "behind on this task.",
        "The intervals of lora n=50 vs few_shot hold simultaneously for every one of the 2 "
        "fine-tuned x prompting pairs it could have picked (correction: max-|t| paired "
        "bootstrap, Westfall & Young 1993; Romano & Wolf 2005), so picking the best on "
        "the same test examples does not inflate the lead.",
        "Fine-tuning lost ground against the untuned model: lora n=50 is worse than zero_shot "
        "by 30.0 points (95% CI 21.0 to 40.0) on mr_exact; check its learning rate and training "
        "length before trusting a verdict against fine-tuning.",
        "few_shot beats zero_shot by 10.0 points (95% CI 5.0 to 17.0) on mr_exact."]),
    "fine-tuning did not converge": (fine_tuning_not_converged, [
        "lora n=50 is worse than few_shot by 40.0 points (simultaneous 95% CI 30.0 to 50.0) on "
        "mr_exact.",
        "No reliable recommendation against fine-tuning: its best arm (lora n=50) did not "
        "converge (validation loss still falling when the budget ran out (0.800 after 1.000)), so "
        "the gap may be its training budget's, not the method's; give it a larger budget "
        "(train.max_epochs, min_budget, max_steps or max_seconds).",
        "The intervals of lora n=50 vs few_shot hold simultaneously for every one of the 2 "
        "fine-tuned x prompting pairs it could have picked (correction: max-|t| paired "
        "bootstrap, Westfall & Young 1993; Romano & Wolf 2005), so picking the best on "
        "the same test examples does not inflate the lead.",
        "lora n=25 did not converge (validation loss still falling when the budget ran out (0.800 "
        "after 1.000)): a verdict against it is not reliable.",
        "More examples helped: lora n=25 is worse than lora n=50 by 10.0 points (95% CI 5.0 to "
        "16.0) on mr_exact."]),
    "recommended arm did not converge": (unconverged_winner, [
        "lora n=50 beats few_shot by 40.0 points (95% CI 31.0 to 49.0) on mr_exact.",
        "Recommendation: fine-tune (lora n=50); the best prompting arm (few_shot) is clearly "
        "behind on this task.",
        "lora n=50 did not converge (validation loss still falling when the budget ran out "
        "(0.800 after 1.000)): its score is what the training budget bought, not its ceiling; "
        "the recommendation for it stands without more training."]),
    "collapsed arms": (collapsed_arms, [
        "lora n=100 is worse than few_shot by 9.0 points (simultaneous 95% CI 4.0 to 14.0) on "
        "mr_exact.",
        "No reliable recommendation against fine-tuning: its best arm (lora n=100) has collapsed "
        "(one answer ('give_opinion') to 95 of 100 test examples, whose references hold 9 "
        "different ones), which points at its training settings, not the method (a learning "
        "rate too high for them is the usual cause); lower train.lr or search it (search: {lr: "
        "[...]}).",
        "The intervals of lora n=100 vs few_shot hold simultaneously for every one of the 2 "
        "fine-tuned x prompting pairs it could have picked (correction: max-|t| paired "
        "bootstrap, Westfall & Young 1993; Romano & Wolf 2005), so picking the best on "
        "the same test examples does not inflate the lead.",
        "lora n=50 has collapsed: one answer ('give_opinion') to 100 of 100 test examples, whose "
        "references hold 9 different ones. Its score says nothing about the method at other "
        "settings, and a comparison that holds only such arms is not evidence."]),
    "enough examples": (enough_examples, [
        "50 examples are enough here: lora n=50 is within 2 points of lora n=100 (+0.0 points, "
        "90% CI -1.5 to +1.5) on mr_exact; more data did not add 2 points or more."]),
    "more examples helped": (more_examples_helped, [
        "More examples helped: lora n=25 is worse than lora n=50 by 30.0 points (95% CI 24.0 to "
        "36.0) on mr_exact."]),
    "size undecided": (size_undecided, [
        "Whether 25 examples are enough is undecided: lora n=25 vs lora n=50 is undecided on "
        "mr_exact: -6.0 points (95% CI -16.0 to +4.0) is too wide to call either better or "
        "within 2 points; about 149 test examples would settle it (now 50)."]),
    "prompting sizes only": (prompting_sizes_only, [
        "More examples did not help: few_shot n=50 beats few_shot n=100 by 20.0 points (95% CI "
        "14.5 to 25.5) on mr_exact."]),
    "across models": (across_models, [
        "small lora n=50 beats small zero_shot by 30.0 points (simultaneous 95% CI 20.0 to 40.0) "
        "on mr_exact.",
        "Recommendation: fine-tune (small lora n=50); the best prompting arm (small zero_shot) is "
        "clearly behind on this task.",
        "The intervals of small lora n=50 vs small zero_shot hold simultaneously for every one of the 2 "
        "fine-tuned x prompting pairs it could have picked (correction: max-|t| paired "
        "bootstrap, Westfall & Young 1993; Romano & Wolf 2005), so picking the best on "
        "the same test examples does not inflate the lead.",
        "Across models: small lora n=50 beats big few_shot by 70.0 points (95% CI 61.0 to 79.0) "
        "on mr_exact.",
        "small zero_shot beats big few_shot by 40.0 points (95% CI 31.0 to 49.0) on mr_exact."]),
    "one arm": (one_arm, [
        "Only one arm ran (lora n=50): there is nothing to compare it with, so no recommendation. "
        "Add a baseline (e.g. zero_shot) or another method."]),
    "no prompting arm": (no_prompting_arm, [
        "lora n=50 beats full n=50 by 60.0 points (95% CI 51.0 to 69.0) on mr_exact."]),
}


@pytest.mark.parametrize("case", CASES)
def test_recommendation_branch(tmp_path, case):
    design, expected = CASES[case]
    s = Store(tmp_path / "s.db")
    design(s)
    assert recommend(load_arms(s), "mr_exact") == expected


def test_stated_amounts_agree_with_their_intervals(tmp_path):
    """Every "by X points (95% CI L to H)" has L <= X <= H (the sign of the difference and
    of its interval agree), and every interval is near the normal-theory one."""
    for i, (design, _) in enumerate(CASES.values()):
        s = Store(tmp_path / f"{i}.db")
        design(s)
        arms = load_arms(s)
        for line in recommend(arms, "mr_exact"):
            amounts = r"by (\S+) points \((?:simultaneous )?95% CI (\S+) to ([^)]+)\)"
            for x, lo, hi in re.findall(amounts, line):
                assert float(lo) <= float(x) <= float(hi), line
        for a in arms:
            for b in arms:
                if a is b:
                    continue
                c = compare(a, b, "mr_exact")
                half = Z95 * c.sd / math.sqrt(c.n)
                assert abs(c.lo - (c.d - half)) < 0.02 and abs(c.hi - (c.d + half)) < 0.02


def test_examples_needed_settles_it(tmp_path):
    """The count an undecided comparison prints is about where the same difference, with
    the same spread, is decided: undecided well below it, decided well above it."""
    s = Store(tmp_path / "s.db")
    undecided(s)
    lora, few = sorted(load_arms(s), key=lambda a: a.method != "lora")
    needed = compare(lora, few, "mr_exact").needed()
    assert needed == 149
    kinds = {}
    for times in (2, 4):  # 100 (< 0.7 x 149) and 200 (> 1.3 x 149) test examples
        t = Store(tmp_path / f"x{times}.db")
        add(t, "lora", UNDECIDED[0] * times, n=50)
        add(t, "few_shot", UNDECIDED[1] * times, n=50)
        a, b = sorted(load_arms(t), key=lambda a: a.method != "lora")
        kinds[times] = compare(a, b, "mr_exact").kind
    assert kinds == {2: "undecided", 4: "better"}


def test_margin_decides_equivalence(tmp_path):
    s = Store(tmp_path / "s.db")
    equivalent(s)
    arms = load_arms(s)
    assert "within 2 points" in recommend(arms, "mr_exact")[0]
    assert "is undecided" in recommend(arms, "mr_exact", margin=1.0)[0]


def test_arms_are_configurations_not_labels(tmp_path):
    """Two lora entries with different settings, few_shot from two configs with different k,
    and one arm reached from configs listing different sizes: never merged across settings,
    always merged across seeds, one run per seed."""
    s = Store(tmp_path / "s.db")
    for seed in (0, 1):
        add(s, "lora", [1.0] * 10, n=10, seed=seed, train={"lr": 1e-3})
        add(s, "lora", [0.0] * 10, n=10, seed=seed, train={"lr": 2e-4})
    add(s, "few_shot", [1.0] * 10, n=8, k=2, cfg={"store": "a.db"})
    add(s, "few_shot", [0.0] * 10, n=8, k=5, cfg={"store": "b.db"})
    add(s, "full", [0.0] * 10, n=10, seed=0, train_sizes=[10])
    add(s, "full", [0.0] * 10, n=10, seed=1, train_sizes=[10, 20])
    later = add(s, "full", [1.0] * 10, n=10, seed=1, train_sizes=[10, 40])
    arms = {a.name: a for a in load_arms(s)}
    assert set(arms) == {"lora (lr=0.001) n=10", "lora (lr=0.0002) n=10", "few_shot (k=2)",
                         "few_shot (k=5)", "full n=10"}
    assert arms["lora (lr=0.001) n=10"].ci["mr_exact"] == (1.0, 1.0, 1.0)
    assert arms["lora (lr=0.0002) n=10"].ci["mr_exact"] == (0.0, 0.0, 0.0)
    assert [len(arms[n].runs) for n in ("lora (lr=0.001) n=10", "few_shot (k=2)")] == [2, 1]
    full = arms["full n=10"]
    assert sorted(r["seed"] for r in full.runs) == [0, 1] and later in {r["id"] for r in full.runs}
    assert full.ci["mr_exact"][0] == 0.5
    md, _ = build(tmp_path / "s.db", tmp_path / "rep")
    rows = [line for line in md.read_text().splitlines() if line.startswith("| m | lora") and "[" in line]
    assert sorted(rows) == [
        "| m | lora (lr=0.0002) | 10 | 2 | 0.000 [0.000, 0.000] | 0.000 [0.000, 0.000] | 0.000 - 0.000 | — |",
        "| m | lora (lr=0.001) | 10 | 2 | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] | 1.000 - 1.000 | — |"]


def test_margin_is_checked_when_the_config_is_read(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("report: {margin: 5}\n")
    assert load_config(cfg).report.margin == 5.0
    for bad in ("0", "-1", "100", ".nan", "'two'"):
        cfg.write_text(f"report: {{margin: {bad}}}\n")
        with pytest.raises(TunelabError, match=r"c\.yaml: config\.report\.margin: "):
            load_config(cfg)


def test_verdict_in_a_log_is_full_width(tmp_path):
    """`tunelab report ... > log 2>&1`: the table and the recommendation are in the log in
    full, one row and one finding per line, whatever the names' length; the margin stored
    with the runs is the one used."""
    s = Store(tmp_path / "s.db")
    model = "HuggingFaceTB/SmolLM2-135M-Instruct-with-a-long-name"
    cfg = {"report": {"margin": 5.0}}
    add(s, "lora", pattern(100, [(0, 80)]), n=50, model=model, cfg=cfg)
    add(s, "dynamic_few_shot", pattern(100, [(0, 40)]), n=50, model=model, cfg=cfg)
    add(s, "few_shot", pattern(100, [(0, 39)]), n=50, model=model, cfg=cfg)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(SRC)
    log = tmp_path / "log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-m", "tunelab", "report", "--store", str(tmp_path / "s.db"),
                            "-o", str(tmp_path / "rep")], stdout=f, stderr=subprocess.STDOUT, env=env)
    text = log.read_text()
    assert r.returncode == 0, text
    lines = text.splitlines()
    # the compact table (arm, primary with CI, one secondary, training); the full one: report.md
    assert "| dynamic_few_shot | 0.400 [0.310, 0.490] | 0.400 [0.310, 0.490] | — |" in lines, text
    assert ("- lora n=50 beats dynamic_few_shot by 40.0 points (simultaneous 95% CI 31.0 to "
            "49.0) on slot_f1.") in lines, text
    assert ("- dynamic_few_shot is within 5 points of few_shot (+1.0 points, 90% CI "
            "+0.0 to +3.0) on slot_f1.") in lines, text
    assert "…" not in text


def test_one_arm_report_says_there_is_nothing_to_compare(tmp_path):
    s = Store(tmp_path / "s.db")
    one_arm(s)
    md, html = build(tmp_path / "s.db", tmp_path / "rep")
    section = md.read_text().split("## Recommendation")[1].split("## Results")[0]
    assert "- Only one arm ran (lora n=50): there is nothing to compare it with" in section
    assert "there is nothing to compare it with" in html.read_text()


def test_margin_option_is_checked(tmp_path):
    from typer.testing import CliRunner

    from tunelab.cli.main import app

    s = Store(tmp_path / "s.db")
    equivalent(s)
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "s.db"), "-o", str(tmp_path / "r"),
                                   "--margin", "0"])
    assert bad.exit_code == 2 and "--margin: must be between 0 and 100 points" in bad.output
    assert not (tmp_path / "r").exists()
    ok = CliRunner().invoke(app, ["report", str(tmp_path / "s.db"), "-o", str(tmp_path / "r"),
                                  "--margin", "1"])
    assert ok.exit_code == 0 and "lora n=50 vs few_shot is undecided" in ok.output


def test_two_entries_of_one_method_in_a_run_stay_apart(tmp_path, tiny_model_dir, viggo_dir):
    """Through a real grid: two lora entries differing in lr are two rows named by lr, and a
    second config on the same store with another size list adds no third lora arm."""
    from typer.testing import CliRunner

    from tests.conftest import write_config
    from tunelab.cli.main import app

    store = tmp_path / "runs" / "t.db"
    two = ("  - {name: lora, train_sizes: [8], train: {lr: 0.001}}\n"
           "  - {name: lora, train_sizes: [8], train: {lr: 0.01}}\n")
    cfg = write_config(tmp_path / "a.yaml", tiny_model_dir, viggo_dir, store, two)
    r = CliRunner().invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    other = write_config(tmp_path / "b.yaml", tiny_model_dir, viggo_dir, store,
                         "  - {name: lora, train_sizes: [8, 4], train: {lr: 0.01}}\n")
    assert CliRunner().invoke(app, ["run", str(other)]).exit_code == 0
    arms = {a.name: len(a.runs) for a in load_arms(Store(store))}
    assert arms == {"lora (lr=0.001) n=8": 1, "lora (lr=0.01) n=4": 1, "lora (lr=0.01) n=8": 1}
    assert "| lora (lr=0.001) n=8 |" in r.output and "| lora (lr=0.01) n=8 |" in r.output  # compact table


def test_the_table_says_how_training_ended(tmp_path):
    s = Store(tmp_path / "s.db")
    add(s, "lora", pattern(20, [(0, 10)]), n=50, info={
        "train_steps": 40, "epochs_trained": 6.4, "stop_reason": "budget", **STILL_FALLING})
    add(s, "lora", pattern(20, [(0, 12)]), n=100, info={
        "train_steps": 52, "epochs_trained": 4.16, "stop_reason": "early_stop", "converged": True})
    add(s, "zero_shot", pattern(20, [(0, 2)]))
    md, _ = build(tmp_path / "s.db", tmp_path / "rep")
    rows = {line.split(" | ")[1] + line.split(" | ")[2]: line.split(" | ")[-1]
            for line in md.read_text().splitlines() if line.startswith("| m | ") and "[" in line}
    assert rows == {"lora50": "40 steps, 6.4 ep, budget; NOT CONVERGED |",
                    "lora100": "52 steps, 4.2 ep, early stop |", "zero_shot0": "— |"}


@pytest.mark.parametrize("sentence", ["headline", "across models", "lost ground"])
def test_equal_arms_rarely_get_a_winner(sentence):
    """Arms of one true score, 400 draws: the headline (nine fine-tuned arms against one
    prompting arm), "Across models" (two models, each four fine-tuned arms and one prompting)
    and "Fine-tuning lost ground" (two models, each five fine-tuned arms against zero_shot)
    call one arm better than another in at most 5% of draws. Without the simultaneous
    intervals (each picked pair alone) they do so in 11-15%: the check has teeth."""
    from tunelab.decide.equal_arms import draws_with_a_winner

    assert draws_with_a_winner(draws=400, sentence=sentence) <= 0.05
    assert draws_with_a_winner(draws=200, sentence=sentence, corrected=False) > 0.05


def test_picked_arms_across_models_and_against_base_get_simultaneous_intervals(tmp_path):
    """Where "Across models" and "Fine-tuning lost ground" pick a best arm of several, their
    intervals are the simultaneous ones, said so, with the correction named."""
    s = Store(tmp_path / "s.db")
    add(s, "lora", pattern(100, [(0, 90)]), n=50, model="small")
    add(s, "lora", pattern(100, [(0, 85)]), n=25, model="small")
    add(s, "zero_shot", pattern(100, [(0, 60)]), model="small")
    add(s, "few_shot", pattern(100, [(0, 20)]), n=50, model="big")
    add(s, "zero_shot", pattern(100, [(0, 15)]), model="big")
    add(s, "lora", pattern(100, [(0, 5)]), n=50, model="big")
    add(s, "lora", pattern(100, [(0, 3)]), n=25, model="big")
    lines = recommend(load_arms(s), "mr_exact")
    cross = [x for x in lines if x.startswith("Across models:")]
    assert len(cross) == 2 and all("(simultaneous 95% CI " in x for x in cross), lines
    assert any(x.startswith("The intervals of the cross-model comparisons hold simultaneously for "
                            "every one of the 6 pairs") for x in lines), lines
    lost = [x for x in lines if x.startswith("Fine-tuning lost ground")]
    assert len(lost) == 1
    assert "big lora n=50 is worse than big zero_shot by 10.0 points (simultaneous 95% CI" in lost[0]
    assert "every one of the 4 fine-tuned arms it was picked from" in lost[0], lost


def test_a_look_adjusted_interval_stays_where_a_difference_of_scores_can_be():
    """20 examples of 0/1 scores, five looks planned: the look-adjusted, Student-widened
    bound of a 75-point lead would pass +100 points, a difference no two arms can have."""
    from types import SimpleNamespace

    from tunelab.decide.compare import in_family

    ids = [str(i) for i in range(20)]
    a = SimpleNamespace(name="lora", looks=5, scores={"m": {e: float(int(e) < 17) for e in ids}})
    b = SimpleNamespace(name="few", looks=5, scores={"m": {e: float(e in ("2", "16")) for e in ids}})
    c = in_family([(a, b)], "m")
    assert c.d == pytest.approx(0.75)
    assert -1.0 <= c.lo < c.d < c.hi <= 1.0 and -1.0 <= c.lo90 < c.hi90 <= 1.0
    assert c.d + c.z95 * c.sd / math.sqrt(20) > 1.0 and c.hi == 1.0  # clipped there, not narrowed
    wide = SimpleNamespace(name="x", looks=5, scores={"m": {e: 4.0 * v for e, v in a.scores["m"].items()}})
    assert in_family([(wide, b)], "m").hi > 1.0  # a score outside [0, 1]: nothing to clip to
