"""Paired comparisons of two arms, and the family that holds when arms were picked.

Two arms are compared on the test examples both were scored on (seeds averaged per
example), with the paired bootstrap of metrics.py. A comparison ends in one of four
ways, against a stated margin (`report.margin`, in points of the metric):

- equivalent: the 90% CI of the difference lies inside +-margin (two one-sided tests,
  TOST): "n=100 is within 2 points of n=400";
- better / worse: the 95% CI excludes 0 (and the two are not equivalent);
- undecided: neither; the sentence then says how many test examples would settle it at
  the observed difference and per-example spread.

Arms evaluated sequentially (scored in rounds until the headline was decided) carry the
looks that run planned; their comparisons use intervals adjusted for every look (looks.py).
Where the pair was picked as the best of several on the same examples, `in_family` gives
intervals that hold for every pair that could have been picked (simultaneous.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Protocol

import numpy as np

from tunelab import TunelabError
from tunelab.decide.looks import expand, look_alpha, resamples_for
from tunelab.decide.simultaneous import max_t
from tunelab.tasks.metrics import paired_bootstrap, unit_scores

Z90, Z95 = NormalDist().inv_cdf(0.95), NormalDist().inv_cdf(0.975)
"""Half-widths of two-sided 90% and 95% normal intervals, in standard errors."""
MARGIN = 2.0
"""Default equivalence margin, in points (hundredths of the metric)."""


class Arm(Protocol):
    """What a comparison needs of an arm (report.Arm is one)."""

    model: str
    method: str
    n_train: int
    sized: bool
    scores: dict[str, dict[str, float]]
    ci: dict[str, tuple[float, float, float]]

    @property
    def name(self) -> str: ...

    @property
    def trained(self) -> bool: ...

    @property
    def curve(self) -> tuple[str, str]: ...

    @property
    def convergence(self) -> str | None:
        """Why a trained arm did not converge (validation loss), or None."""

    @property
    def collapsed(self) -> str | None:
        """Why the arm's answers are one answer repeated, or None."""


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    margin: float
    """In points."""
    d: float
    lo: float
    hi: float
    """95% paired bootstrap interval of a - b."""
    lo90: float
    hi90: float
    n: int
    """Test examples both arms were scored on."""
    sd: float
    """Standard deviation of the per-example differences."""
    z95: float = Z95
    z90: float = Z90
    """Half-widths of the 95% and 90% intervals in standard errors: normal ones, or the
    simultaneous critical values of a family of pairs (simultaneous.max_t)."""
    family: int = 1
    """Pairs the intervals hold for at once (1: this pair alone)."""
    looks: int = 1
    """Looks at the test slice the intervals are adjusted for (sequential evaluation,
    looks.py; 1: the slice was scored in full before anyone looked)."""

    def _label(self, level: str) -> str:
        kind = [w for w, on in (("simultaneous", self.family > 1), ("look-adjusted", self.looks > 1)) if on]
        return f"{', '.join(kind)} {level} CI".lstrip()

    @property
    def ci95(self) -> str:
        return self._label("95%")

    @property
    def ci90(self) -> str:
        return self._label("90%")

    @property
    def kind(self) -> str:
        m = self.margin / 100
        if -m < self.lo90 and self.hi90 < m:
            return "equivalent"
        if self.lo > 0:
            return "better"
        if self.hi < 0:
            return "worse"
        return "undecided"

    def needed(self) -> int | None:
        """Test examples at which, with this difference and spread, the interval would be
        narrow enough to call a winner (95%: half-width below |d|) or equivalence (90%:
        |d| plus half-width below the margin), whichever comes first."""
        if self.sd == 0:
            return None
        m, d = self.margin / 100, abs(self.d)
        ns = []
        if d > 0:
            ns.append((self.z95 * self.sd / d) ** 2)
        if d < m:
            ns.append((self.z90 * self.sd / (m - d)) ** 2)
        if not ns:  # d == 0 and no margin: nothing would settle it
            return None
        # The normal approximation can land at or below n where the bootstrap interval
        # still straddles: n is known not to be enough.
        return max(math.ceil(min(ns)), self.n + 1)

    def sentence(self) -> str:
        a, b, metric, p = self.a, self.b, self.metric, _p
        kind = self.kind
        if kind == "better":
            return (f"{a} beats {b} by {p(self.d)} points ({self.ci95} {p(self.lo)} to {p(self.hi)}) "
                    f"on {metric}")
        if kind == "worse":  # "worse by" a positive amount: negate the interval with it
            return (f"{a} is worse than {b} by {p(-self.d)} points ({self.ci95} {p(-self.hi)} to "
                    f"{p(-self.lo)}) on {metric}")
        if kind == "equivalent":
            return (f"{a} is within {self.margin:g} points of {b} ({_s(self.d)} points, {self.ci90} "
                    f"{_s(self.lo90)} to {_s(self.hi90)}) on {metric}")
        n = self.needed()
        more = f"; about {n:,} test examples would settle it (now {self.n})" if n else ""
        return (f"{a} vs {b} is undecided on {metric}: {_s(self.d)} points ({self.ci95} {_s(self.lo)} "
                f"to {_s(self.hi)}) is too wide to call either better or within {self.margin:g} "
                f"points{more}")


def _p(x: float) -> str:
    return f"{100 * x:.1f}"


def _s(x: float) -> str:
    return f"{100 * x:+.1f}"


def looks_of(arms) -> int:
    """The looks an arm's intervals must be adjusted for: the most any of them planned
    (stored with a sequentially evaluated run; arms without it were scored in full)."""
    return max((getattr(a, "looks", 1) for a in arms), default=1)


def compare(a: Arm, b: Arm, metric: str, margin: float = MARGIN) -> Comparison:
    """a - b on the test examples both arms share, paired (look-adjusted where an arm was
    evaluated sequentially: in_family of the one pair)."""
    if looks_of((a, b)) > 1:
        return in_family([(a, b)], metric, margin)
    common = sorted(set(a.scores[metric]) & set(b.scores[metric]))
    if not common:
        raise TunelabError(f"{a.name} and {b.name} share no test examples")
    x = [a.scores[metric][e] for e in common]
    y = [b.scores[metric][e] for e in common]
    d, lo, hi = paired_bootstrap(x, y)
    _, lo90, hi90 = paired_bootstrap(x, y, alpha=0.10)
    sd = float(np.std(np.subtract(x, y), ddof=1)) if len(common) > 1 else 0.0
    return Comparison(a.name, b.name, metric, margin, d, lo, hi, lo90, hi90, len(common), sd)


def in_family(pairs: list[tuple[Arm, Arm]], metric: str, margin: float = MARGIN) -> Comparison:
    """The first pair of `pairs`, a - b, with intervals that hold simultaneously for every
    pair of the list (simultaneous.max_t) on the test examples all their arms share."""
    arms = {id(x): x for pair in pairs for x in pair}.values()
    common = sorted(set.intersection(*(set(x.scores[metric]) for x in arms)))
    if not common:
        raise TunelabError(f"{pairs[0][0].name} and {pairs[0][1].name}: the arms share no test examples")
    diffs = np.array([[a.scores[metric][e] - b.scores[metric][e] for a, b in pairs] for e in common])
    looks = looks_of(arms)
    a95, a90 = look_alpha(0.05, looks), look_alpha(0.10, looks)
    fam = max_t(diffs, (a95, a90), n_resamples=resamples_for(a95))
    if looks > 1:  # early looks are small: Student tails (looks.expand)
        fam = replace(fam, crit={a: expand(c, len(common), a) for a, c in fam.crit.items()})
    # the t-shaped bounds (max-|t|, Student-widened early looks) can pass what a difference
    # of two 0-1 metrics can be at small n; clipping to [-1, 1] loses no coverage. Scores
    # outside [0, 1] (a metric of the user's own): left as they are.
    unit = unit_scores(*(list(x.scores[metric].values()) for x in arms))
    reach = (-1.0, 1.0) if unit else (-np.inf, np.inf)
    lo, hi = np.clip(fam.interval(0, a95), *reach).tolist()
    lo90, hi90 = np.clip(fam.interval(0, a90), *reach).tolist()
    sd = float(np.std(diffs[:, 0], ddof=1)) if len(common) > 1 else 0.0
    return Comparison(pairs[0][0].name, pairs[0][1].name, metric, margin, float(fam.d[0]), lo, hi,
                      lo90, hi90, len(common), sd, fam.crit[a95], fam.crit[a90], len(pairs), looks)


def headline_comparison(tuned: list[Arm], prompted: list[Arm], metric: str, margin: float = MARGIN,
                        corrected: bool = True) -> Comparison:
    """The best fine-tuned arm against the best prompting arm. Both are picked by their
    means on the test examples they are compared on, so with more than one pair to pick
    from, the intervals hold for every fine-tuned x prompting pair at once (no winner's
    curse: simultaneous.py); `corrected=False` (simulations only) compares the pair alone."""
    pairs = [(t, p) for t in tuned for p in prompted]
    return picked(pairs, (best(tuned, metric), best(prompted, metric)), metric, margin, corrected)


def best(arms: list[Arm], metric: str) -> Arm:
    """Highest mean; of equal means the larger training set (reached with more data)."""
    return max(arms, key=lambda a: (a.ci[metric][0], a.n_train))


def picked(pairs: list[tuple[Arm, Arm]], first: tuple[Arm, Arm], metric: str, margin: float = MARGIN,
           corrected: bool = True) -> Comparison:
    """`first` (a - b), one of `pairs`, picked by looking at the same test examples: its
    intervals hold simultaneously for every pair of `pairs` (in_family), so the pick does
    not inflate its lead. One pair alone, or `corrected=False` (simulations only): the
    pair's own paired interval."""
    if not corrected or len(pairs) == 1:
        return compare(*first, metric, margin)
    return in_family([first, *(p for p in pairs if p != first)], metric, margin)
