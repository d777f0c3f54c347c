"""The recommendation: plain-language findings, each from a paired comparison that says
what it can and cannot tell.

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
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Protocol

import numpy as np

from tunelab import TunelabError
from tunelab.decide.decisive import deciding
from tunelab.decide.looks import METHOD as LOOKS_METHOD
from tunelab.decide.looks import expand, look_alpha, resamples_for
from tunelab.decide.simultaneous import METHOD, max_t
from tunelab.tasks.metrics import paired_bootstrap

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
    lo, hi = fam.interval(0, a95)
    lo90, hi90 = fam.interval(0, a90)
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


def curves(arms: list[Arm]) -> dict[tuple[str, str], list[Arm]]:
    """Arms that ran at several sizes (or train), by model and label, smallest first."""
    out = defaultdict(list)
    for a in arms:
        if a.trained or a.sized:
            out[a.curve].append(a)
    return {k: sorted(v, key=lambda a: a.n_train) for k, v in out.items()}


def enough(curve: list[Arm], metric: str, margin: float = MARGIN
           ) -> tuple[Arm, Arm, Comparison] | None:
    """(smallest size within the margin of the reference, the reference, the comparison).
    The reference is the best size; where that is the smallest, the largest (did more
    data add anything?)."""
    if len(curve) < 2:
        return None
    top = best(curve, metric)
    ref = curve[-1] if top is curve[0] else top
    for a in curve:
        if a is ref:
            break
        c = compare(a, ref, metric, margin)
        if c.kind == "equivalent":
            return a, ref, c
    return None


def size_finding(curve: list[Arm], metric: str, margin: float = MARGIN) -> str | None:
    """What the learning curve says about how many examples are enough."""
    if len(curve) < 2:
        return None
    found = enough(curve, metric, margin)
    if found:
        a, _, c = found
        return (f"{a.n_train} examples are enough here: {c.sentence()}; more data did not add "
                f"{margin:g} points or more.")
    top = best(curve, metric)
    ref = curve[-1] if top is curve[0] else top
    below = [a for a in curve if a.n_train < ref.n_train][-1]
    c = compare(below, ref, metric, margin)
    if c.kind == "undecided":
        return f"Whether {below.n_train} examples are enough is undecided: {c.sentence()}."
    return f"More examples {'helped' if c.kind == 'worse' else 'did not help'}: {c.sentence()}."


def headline(tuned: list[Arm], prompted: list[Arm], metric: str, margin: float = MARGIN) -> list[str]:
    """The best fine-tuned arm against the best prompting arm, and what to do about it."""
    bt, bp = best(tuned, metric), best(prompted, metric)
    c = headline_comparison(tuned, prompted, metric, margin)
    advice = {
        "better": f"Recommendation: fine-tune ({bt.name}); the best prompting arm ({bp.name}) "
                  "is clearly behind on this task.",
        "worse": f"Recommendation: prompt ({bp.name}); the best fine-tuned arm ({bt.name}) is "
                 "clearly behind on this task.",
        "equivalent": f"Recommendation: prompt ({bp.name}); fine-tuning is within {margin:g} "
                      "points of it, not worth its training cost here.",
        "undecided": f"No recommendation yet: at {c.n} test examples fine-tuning ({bt.name}) and "
                     f"prompting ({bp.name}) can neither be told apart nor shown within "
                     f"{margin:g} points of each other.",
    }
    if c.kind in ("worse", "equivalent", "undecided") and bt.convergence:
        advice[c.kind] = (f"No reliable recommendation against fine-tuning: its best arm "
                          f"({bt.name}) did not converge ({bt.convergence}), so the gap may be "
                          "its training budget's, not the method's; give it a larger budget "
                          "(train.max_epochs, min_budget, max_steps or max_seconds).")
    elif c.kind in ("worse", "equivalent", "undecided") and bt.collapsed:
        advice[c.kind] = (f"No reliable recommendation against fine-tuning: its best arm "
                          f"({bt.name}) has collapsed ({bt.collapsed}), which points at its "
                          "training settings, not the method (a learning rate too high for them "
                          "is the usual cause); lower train.lr or search it (search: {lr: [...]}).")
    return [c.sentence() + ".", advice[c.kind], *corrected(c, "fine-tuned x prompting pairs")]


def corrected(c: Comparison, pairs: str) -> list[str]:
    """What a simultaneous or look-adjusted interval corrects, and how (nothing for a
    single pair scored in full)."""
    lines = []
    if c.looks > 1:
        lines.append(f"Sequential evaluation looked at the test slice up to {c.looks} times, so "
                     f"the intervals of {c.a} vs {c.b} are adjusted for every look "
                     f"({LOOKS_METHOD}): stopping once the answer was settled does not inflate it.")
    if c.family == 1:
        return lines
    return lines + [f"The intervals of {c.a} vs {c.b} hold simultaneously for every one of the "
            f"{c.family} {pairs} it could have picked (correction: {METHOD}), so picking the "
            "best on the same test examples does not inflate the lead."]


def unconverged(arms: list[Arm], said: list[str]) -> list[str]:
    """One line per trained arm that did not converge (unless a line already named it). For
    the arm already recommended, what the flag means there: its score is what the budget
    bought, and the recommendation did not need more training."""
    lines = []
    for a in arms:
        if not a.trained or not a.convergence or any(f"({a.name}) did not converge" in x for x in said):
            continue
        if any(x.startswith(f"Recommendation: fine-tune ({a.name});") for x in said):
            lines.append(f"{a.name} did not converge ({a.convergence}): its score is what the "
                         "training budget bought, not its ceiling; the recommendation for it "
                         "stands without more training.")
        else:
            lines.append(f"{a.name} did not converge ({a.convergence}): a verdict against it is "
                         "not reliable.")
    return lines


def picked(pairs: list[tuple[Arm, Arm]], first: tuple[Arm, Arm], metric: str, margin: float = MARGIN,
           corrected: bool = True) -> Comparison:
    """`first` (a - b), one of `pairs`, picked by looking at the same test examples: its
    intervals hold simultaneously for every pair of `pairs` (in_family), so the pick does
    not inflate its lead. One pair alone, or `corrected=False` (simulations only): the
    pair's own paired interval."""
    if not corrected or len(pairs) == 1:
        return compare(*first, metric, margin)
    return in_family([first, *(p for p in pairs if p != first)], metric, margin)


def tuned_vs_base(arms: list[Arm], metric: str, margin: float = MARGIN,
                  corrected: bool = True) -> list[Comparison]:
    """Per model, its best fine-tuned arm against the same model untuned (zero_shot). The
    best is picked on the test examples it is compared on: the intervals hold for every
    fine-tuned arm of every model against its base at once (picked)."""
    picks, pairs = [], []
    for m in sorted({a.model for a in arms}):
        tuned = [a for a in arms if a.model == m and a.trained]
        base = [a for a in arms if a.model == m and a.method == "zero_shot"]
        if tuned and base:
            picks.append((best(tuned, metric), base[0]))
            pairs += [(t, base[0]) for t in tuned]
    return [picked(pairs, p, metric, margin, corrected) for p in picks]


def tuned_worse(arms: list[Arm], metric: str, margin: float = MARGIN,
                said: list[str] = ()) -> list[str]:
    """Each model's best fine-tuned arm against the same model untuned (zero_shot): worse
    than where it started points at training (learning rate, length), not at the method.
    A comparison already in `said` is not repeated."""
    lines = []
    for c in tuned_vs_base(arms, metric, margin):
        if c.kind == "worse":
            what = "" if c.sentence() + "." in said else f" {c.sentence()};"
            held = (f" (the interval holds for every one of the {c.family} fine-tuned arms it was "
                    f"picked from, each against its untuned model: {METHOD})" if c.family > 1 else "")
            lines.append(f"Fine-tuning lost ground against the untuned model:{what} check its "
                         "learning rate and training length before trusting a verdict against "
                         f"fine-tuning{held}.")
    return lines


def across(arms: list[Arm], metric: str, margin: float = MARGIN,
           corrected: bool = True) -> list[Comparison]:
    """Each model's best fine-tuned arm against every other model's best prompted arm. Both
    are picked on the test examples they are compared on: the intervals hold for every
    (fine-tuned arm of one model, prompted arm of another) pair at once (picked)."""
    models = sorted({a.model for a in arms})
    tuned = {m: [a for a in arms if a.model == m and a.trained] for m in models}
    prompted = {m: [a for a in arms if a.model == m and not a.trained] for m in models}
    picks, pairs = [], []
    for m in models:
        for other in models:
            if other == m or not (tuned[m] and prompted[other]):
                continue
            picks.append((best(tuned[m], metric), best(prompted[other], metric)))
            pairs += [(t, p) for t in tuned[m] for p in prompted[other]]
    return [picked(pairs, p, metric, margin, corrected) for p in picks]


def cross_model(arms: list[Arm], metric: str, margin: float = MARGIN) -> list[str]:
    """Each model's best fine-tuned arm against every other model's best prompted arm:
    does a small tuned model beat a larger untuned one?"""
    found = across(arms, metric, margin)
    lines = [f"Across models: {c.sentence()}." for c in found]
    if found and found[0].family > 1:
        lines.append(f"The intervals of the cross-model comparisons hold simultaneously for "
                     f"every one of the {found[0].family} pairs of one model's fine-tuned arm and "
                     f"another model's prompting arm they could have picked (correction: {METHOD}), "
                     "so picking each model's best on the same test examples does not inflate a lead.")
    return lines


def collapsed(arms: list[Arm], said: list[str]) -> list[str]:
    """One line per arm that gives one answer to nearly every test example (unless a line
    already named it)."""
    return [f"{a.name} has collapsed: {a.collapsed}. Its score says nothing about the method "
            "at other settings, and a comparison that holds only such arms is not evidence."
            for a in arms if a.collapsed and not any(f"({a.name}) has collapsed" in x for x in said)]


def recommend(arms: list[Arm], metric: str, margin: float = MARGIN) -> list[str]:
    """Plain-language findings, each derived from a paired comparison."""
    if len(arms) == 1:
        return [f"Only one arm ran ({arms[0].name}): there is nothing to compare it with, so "
                "no recommendation. Add a baseline (e.g. zero_shot) or another method."]
    decided_on, note = deciding(arms, metric)
    if decided_on is None:
        return [note]
    metric, lines = decided_on, [note] if note else []
    first = len(lines)
    prompted = [a for a in arms if not a.trained]
    tuned = [a for a in arms if a.trained]
    if tuned and prompted:
        lines += headline(tuned, prompted, metric, margin)
    lines += unconverged(arms, lines)
    lines += collapsed(arms, lines)
    lines += tuned_worse(arms, metric, margin, lines)
    for curve in curves(arms).values():
        found = None if any(a.collapsed for a in curve) else size_finding(curve, metric, margin)
        lines += [found] if found else []
    lines += cross_model(arms, metric, margin)
    if len(prompted) > 1 or len(lines) == first:
        pool = prompted if len(prompted) > 1 else arms
        ranked = sorted(pool, key=lambda a: (-a.ci[metric][0], -a.n_train))
        pairs = [(x, y) for i, x in enumerate(ranked) for y in ranked[i + 1:]]  # the top two first
        c = in_family(pairs, metric, margin) if len(pairs) > 1 else compare(*pairs[0], metric, margin)
        said = c.sentence()
        if not any(said in line for line in lines):  # a size finding may have said it
            lines += [said + ".", *corrected(c, "pairs of these arms")]
    return lines
