"""The recommendation: plain-language findings, each from a paired comparison that says
what it can and cannot tell (the comparisons themselves: compare.py, re-exported here).
"""

from __future__ import annotations

from collections import defaultdict

from tunelab.decide.compare import (  # re-exported: the comparisons findings are made of
    MARGIN,
    Z90,
    Z95,
    Arm,
    Comparison,
    best,
    compare,
    headline_comparison,
    in_family,
    looks_of,
    picked,
)
from tunelab.decide.decisive import deciding
from tunelab.decide.looks import METHOD as LOOKS_METHOD
from tunelab.decide.simultaneous import METHOD

__all__ = ["MARGIN", "Z90", "Z95", "Arm", "Comparison", "best", "compare", "headline_comparison",
           "in_family", "looks_of", "picked", "curves", "enough", "recommend"]


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
