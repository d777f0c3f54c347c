"""Intervals that stay valid when the test slice is looked at more than once.

Sequential evaluation (run/sequential.py) scores the arms in rounds and checks the
verdict's comparisons after each round, stopping once they are decided. Checking a
95% interval after every round and stopping at the first that excludes 0 declares a
winner between two equal arms far more often than 5% of the time (five looks: about
14%, Armitage, McPherson & Rowe 1969, "Repeated significance tests on accumulating
data", JRSS A 132:235-244). The remedy used here is the repeated confidence interval
(Jennison & Turnbull 1989, "Interim analyses: the repeated confidence interval
approach", JRSS B 51:305-361) with the Bonferroni constant: with K looks planned in
advance (the slice's size over the round size), the interval at each look is computed at
level alpha / K. By the union bound over the K looks, all of them hold at once with
probability at least 1 - alpha, so the interval at whichever look the run stopped is
valid whatever the stopping rule. It is conservative (Pocock's constant is smaller) but
needs no assumption about how the looks correlate, which suits the bootstrap intervals
of simultaneous.py; the equivalence test (TOST at 90%) uses the same construction.

Early looks see few examples (20 at the first round), where a bootstrap critical value
at a small alpha under-covers (it has normal, not Student, tails and the plug-in
variance): the look-adjusted critical value is widened by Hesterberg's small-sample
expansion, sqrt(n / (n - 1)) * t(n - 1) / z at the same level (Hesterberg 2015, "What
teachers should know about the bootstrap", The American Statistician 69:371-386, sec. 5).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from scipy.stats import t as student_t

METHOD = "Bonferroni repeated confidence intervals over the planned looks, Jennison & Turnbull 1989"
"""How the report names the look adjustment."""


def look_alpha(alpha: float, looks: int) -> float:
    """The level each look's interval is computed at so that all `looks` hold at once.

    >>> look_alpha(0.05, 1), look_alpha(0.05, 5)
    (0.05, 0.01)
    """
    return alpha / max(1, looks)


def resamples_for(alpha: float, floor: int = 1000) -> int:
    """Bootstrap resamples enough to place an alpha tail quantile on about 20 draws.

    >>> resamples_for(0.05), resamples_for(0.0025)
    (1000, 8000)
    """
    return max(floor, math.ceil(20 / alpha))


def expand(crit: float, n: int, alpha: float) -> float:
    """A bootstrap critical value at level alpha on n examples, widened to the Student
    tail (Hesterberg 2015); unchanged as n grows.

    >>> round(expand(2.576, 20, 0.01), 2), round(expand(2.576, 100000, 0.01), 2)
    (2.94, 2.58)
    """
    if n < 2:
        return crit
    q = 1 - alpha / 2
    return crit * math.sqrt(n / (n - 1)) * float(student_t.ppf(q, n - 1)) / NormalDist().inv_cdf(q)
