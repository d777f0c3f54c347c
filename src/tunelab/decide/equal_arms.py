"""The equal-arms simulation behind the headline's correction for picking winners.

Many arms of the same true score: how often does the headline (verdict.headline_comparison)
call one better than another? tests/test_verdict.py holds it to at most 5% with the
simultaneous intervals (simultaneous.max_t) and shows it above 5% without them. It sits
above verdict.py (it drives it), so verdict.py imports nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunelab.decide.verdict import headline_comparison


@dataclass
class SimArm:
    """The least an arm needs for a comparison: the simulation below builds these."""

    name: str
    trained: bool
    per_example: dict[str, float]
    """example_id -> score, of the one metric `score`."""
    n_train: int = 0

    @property
    def scores(self) -> dict[str, dict[str, float]]:
        return {"score": self.per_example}

    @property
    def ci(self) -> dict[str, tuple[float, float, float]]:
        m = float(np.mean(list(self.per_example.values())))
        return {"score": (m, m, m)}  # best() ranks by the mean alone



def draws_with_a_winner(n_arms: int = 10, n_tuned: int = 9, n: int = 100, draws: int = 400,
                        seed: int = 0, corrected: bool = True) -> float:
    """Share of simulated draws in which the headline calls one arm better than another
    when all arms have the same true score.

    Each draw: n test examples of varying difficulty (a per-example success probability),
    n_arms arms whose per-example scores are independent 0/1 draws at that probability
    (the same true score, different mistakes), n_tuned of them fine-tuned; the headline
    (verdict.headline_comparison) picks and compares as in a report. The curse is worst
    where one side has many arms and the other few (best of 9 against 1: the 9's best is
    biased up; best of 5 against best of 5 is biased alike on both sides). `corrected=False`
    compares the picked pair alone, as before the correction.
    """
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(draws):
        p = rng.beta(2, 2, size=n)
        arms = [SimArm(f"arm{i}", i < n_tuned,
                       {f"e{j}": float(v) for j, v in enumerate(rng.random(n) < p)})
                for i in range(n_arms)]
        tuned, prompted = arms[:n_tuned], arms[n_tuned:]
        c = headline_comparison(tuned, prompted, "score", corrected=corrected)
        wins += c.kind in ("better", "worse")
    return wins / draws
