"""The report's judge paragraph: the headline pair judged by an LLM, in both orders.

Only when the runs were made with `report.judge` (an OpenAI-compatible model). The pair
is the headline's: the best fine-tuned arm against the best prompting arm (or the two
best arms when one side is missing), on the test examples both were scored on. The
judge's per-example scores (eval/judge.py) give A's preference rate with a percentile
bootstrap interval over examples; the paragraph says whether it excludes 0.5.
"""

from __future__ import annotations

import json

from tunelab import TunelabError
from tunelab.backends.openai_api import OpenAIBackend
from tunelab.core.config import ModelConfig, from_dict
from tunelab.data.datasource import cache_dir
from tunelab.decide.arms import Arm, stored_configs
from tunelab.decide.verdict import best
from tunelab.eval.judge import Item, judge, summary
from tunelab.tasks.metrics import bootstrap_ci


def stored_judge(arms: list[Arm]) -> ModelConfig | None:
    """The judge model the runs were configured with (report.judge), if any."""
    for cfg in stored_configs(arms):
        found = cfg.get("report", {}).get("judge")
        if found:
            return from_dict(ModelConfig, found, "report.judge")
    return None


def pair(arms: list[Arm], metric: str) -> tuple[Arm, Arm] | None:
    """The headline pair (best fine-tuned, best prompting), else the two best arms."""
    tuned = [a for a in arms if a.trained]
    prompted = [a for a in arms if not a.trained]
    if tuned and prompted:
        return best(tuned, metric), best(prompted, metric)
    ranked = sorted(arms, key=lambda a: a.ci[metric][0], reverse=True)
    return (ranked[0], ranked[1]) if len(ranked) > 1 else None


def items(a: Arm, b: Arm) -> list[Item]:
    """The examples both arms answered (the first seed's answer of each)."""
    theirs = {e["example_id"]: e for e in b.examples}
    return [Item(e["example_id"], e["input"], e["target"], e["prediction"],
                 theirs[e["example_id"]]["prediction"]) for e in a.examples if e["example_id"] in theirs]


def asker(cfg: ModelConfig):
    """The judge's `ask` through the OpenAI-compatible backend (a judge is always remote:
    this backend imports no torch, so the report needs none)."""
    backend = OpenAIBackend()
    model, _ = backend.load(cfg)

    def ask(conversations: list[list[dict]]) -> list[str]:
        replies = backend.generate(model, None, conversations, [json.dumps(c) for c in conversations],
                                   8, batch_size=len(conversations), label=f"judge {cfg.name}",
                                   one_line=False)
        return [g.text for g in replies]

    return ask


def section(arms: list[Arm], metric: str, ask_of=asker) -> dict | None:
    """The judge paragraph's numbers and sentence; None when no judge is configured."""
    cfg = stored_judge(arms)
    picked = pair(arms, metric) if cfg else None
    if cfg is None or picked is None:
        return None
    a, b = picked
    todo = items(a, b)
    try:
        scores = judge(ask_of(cfg), cfg.name, todo, cache_dir().parent / "judge")
    except TunelabError as e:  # a judge that cannot be reached leaves the rest of the report
        return {"judge": cfg.name, "sentence": f"Judge {cfg.name}: not asked ({e})."}
    mean, lo, hi = bootstrap_ci(scores)
    c = summary(scores)
    if lo > 0.5 or hi < 0.5:
        winner = a.name if lo > 0.5 else b.name
        finding = f"the judge prefers {winner}"
    else:
        finding = f"the judge's preference is undecided at {c['n']} examples (its interval holds 0.5)"
    sentence = (f"Judge {cfg.name} (pairwise, asked in both orders, a win counted only when both "
                f"agree): {a.name} preferred on {c['a_wins']} of {c['n']} examples, "
                f"{b.name} on {c['b_wins']}, "
                f"no preference on {c['none']}; preference for {a.name} {mean:.2f} (95% CI {lo:.2f} "
                f"to {hi:.2f}; 0.50 is none): {finding}.")
    return {"judge": cfg.name, "a": a.name, "b": b.name, **c, "preference": mean, "lo": lo, "hi": hi,
            "sentence": sentence}
