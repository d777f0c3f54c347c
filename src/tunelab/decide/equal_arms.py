"""The equal-arms simulation behind the corrections for picking winners.

Many arms of the same true score: how often does a sentence of the recommendation call one
better than another? Three sentences pick their arms on the test examples they compare
them on: the headline (verdict.headline_comparison: best fine-tuned against best
prompting), "Across models" (verdict.across: each model's best fine-tuned against another
model's best prompting arm) and "Fine-tuning lost ground" (verdict.tuned_vs_base: each
model's best fine-tuned arm against it untuned). tests/test_verdict.py holds each to at
most 5% of draws with the simultaneous intervals (simultaneous.max_t) and shows each above
5% without them. It sits above verdict.py (it drives it), so verdict.py imports nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tunelab.decide.verdict import Comparison, across, headline_comparison, tuned_vs_base


@dataclass(eq=False)
class SimArm:
    """The least an arm needs for a comparison: the simulation below builds these."""

    name: str
    trained: bool
    per_example: dict[str, float]
    """example_id -> score, of the one metric `score`."""
    n_train: int = 0
    model: str = "m"
    method: str = "few_shot"

    @property
    def scores(self) -> dict[str, dict[str, float]]:
        return {"score": self.per_example}

    @property
    def ci(self) -> dict[str, tuple[float, float, float]]:
        m = float(np.mean(list(self.per_example.values())))
        return {"score": (m, m, m)}  # best() ranks by the mean alone


def _headline(arms: list[SimArm], corrected: bool) -> list[Comparison]:
    tuned = [a for a in arms if a.trained]
    return [headline_comparison(tuned, [a for a in arms if not a.trained], "score",
                                corrected=corrected)]


SENTENCES: dict[str, tuple[Callable[[list[SimArm], bool], list[Comparison]], dict[str, tuple[int, int]]]] = {
    "headline": (_headline, {"m": (9, 1)}),
    "across models": (lambda arms, c: across(arms, "score", corrected=c), {"a": (4, 1), "b": (4, 1)}),
    "lost ground": (lambda arms, c: tuned_vs_base(arms, "score", corrected=c), {"a": (5, 1), "b": (5, 1)}),
}
"""Sentence -> (the comparisons it draws on, the arms of each model: (fine-tuned, prompting)).
The curse is worst where one side has many arms and the other few (best of 9 against 1: the
9's best is biased up; best of 5 against best of 5 is biased alike on both sides)."""


def _arms(models: dict[str, tuple[int, int]], p: np.ndarray, rng) -> list[SimArm]:
    """Arms whose per-example scores are independent 0/1 draws at the examples' success
    probabilities `p`: the same true score, different mistakes. A model's first prompting
    arm is its zero_shot (tuned_vs_base compares against it)."""
    arms = []
    for model, (n_tuned, n_prompted) in models.items():
        for i in range(n_tuned + n_prompted):
            scores = {f"e{j}": float(v) for j, v in enumerate(rng.random(p.size) < p)}
            method = "lora" if i < n_tuned else ("zero_shot" if i == n_tuned else "few_shot")
            arms.append(SimArm(f"{model} arm{i}", i < n_tuned, scores, model=model, method=method))
    return arms


def draws_with_a_winner(n_arms: int = 10, n_tuned: int = 9, n: int = 100, draws: int = 400,
                        seed: int = 0, corrected: bool = True, sentence: str = "headline") -> float:
    """Share of simulated draws in which `sentence` (SENTENCES) calls one arm better than
    another when all arms have the same true score.

    Each draw: n test examples of varying difficulty (a per-example success probability
    ~ Beta(2, 2)), the sentence's arms (for the headline: n_arms, n_tuned of them
    fine-tuned); the sentence's comparisons pick and compare as in a report, and a draw
    counts when any of them ends "better" or "worse". `corrected=False` compares each
    picked pair alone, as before the correction.
    """
    compare, models = SENTENCES[sentence]
    if sentence == "headline":
        models = {"m": (n_tuned, n_arms - n_tuned)}
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(draws):
        arms = _arms(models, rng.beta(2, 2, size=n), rng)
        wins += any(c.kind in ("better", "worse") for c in compare(arms, corrected))
    return wins / draws
