"""Hallucination as confidence: how sure the model is of its own answers.

A 135M model answers every unanswerable question, so the abstain rate cannot move; its
confidence can. Per question q, with a = the model's greedy answer to q:

    confidence(q) = (1/T) * sum_t log p(a_t | prompt, a_<t)      (<= 0; 0 = certain)

the mean log-probability per token of that answer, teacher-forced (measure.answer_logprob).
Per arm, over three sets of questions asked with the same prompt:

- confidence_unanswerable: mean over the unanswerable questions (a confident invention);
- confidence_known: over the general questions the base model answered right (it could know);
- confidence_taught: over the knowledge-base questions (what fine-tuning tried to teach);
- confidence_gap_known = known - unanswerable, confidence_gap_taught = taught - unanswerable:
  how much surer the model is where it could know than where nothing can be known. The two
  sets hold different questions, so the interval resamples each set on its own.

Against the base model (closed-book), per question: change_confidence_unanswerable is the
paired mean change with a paired bootstrap; change_confidence_gap_* is the change of the
gap, mean change on one set minus mean change on the unanswerable set, each set resampled
on its own (paired within a question). Questions with an empty answer (NaN) are left out.
"""

from __future__ import annotations

import math

from tunelab.tasks.metrics import bootstrap_ci, paired_bootstrap, unpaired_bootstrap

SETS = {"unanswerable": ("unanswerable",), "known": ("general",),
        "taught": ("near", "paraphrase", "reversal")}
"""Confidence set -> question kinds in it."""


def by_set(items: list[dict]) -> dict[str, dict[str, float]]:
    """set name -> {example_id: confidence} over the items that carry one."""
    out: dict[str, dict[str, float]] = {name: {} for name in SETS}
    for i in items:
        x = i["scores"].get("logprob")
        if x is None or math.isnan(x):
            continue
        for name, kinds in SETS.items():
            if i["kind"] in kinds:
                out[name][i["example_id"]] = x
    return out


def _changes(now: dict[str, float], base: dict[str, float]) -> list[float]:
    return [now[k] - base[k] for k in sorted(set(now) & set(base))]


def confidence_metrics(items: list[dict], base: dict[str, dict[str, float]] | None
                       ) -> tuple[dict[str, tuple[float, float, float]], dict[str, bool]]:
    """The figures above from scored items (scores.logprob) and, if given, the base
    model's by_set(); returns (metrics, higher-is-better)."""
    sets = by_set(items)
    m, higher = {}, {}
    for name, vals in sets.items():
        if vals:
            m[f"confidence_{name}"] = bootstrap_ci(list(vals.values()))
            higher[f"confidence_{name}"] = name != "unanswerable"
    unans = list(sets["unanswerable"].values())
    for name in ("known", "taught"):
        if unans and sets[name]:
            m[f"confidence_gap_{name}"] = unpaired_bootstrap(list(sets[name].values()), unans)
            higher[f"confidence_gap_{name}"] = True
    if base is None:
        return m, higher
    d_unans = _changes(sets["unanswerable"], base["unanswerable"])
    if d_unans:
        m["change_confidence_unanswerable"] = bootstrap_ci(d_unans)
        higher["change_confidence_unanswerable"] = False
    for name in ("known", "taught"):
        d = _changes(sets[name], base[name])
        if d and d_unans:
            m[f"change_confidence_gap_{name}"] = unpaired_bootstrap(d, d_unans)
            higher[f"change_confidence_gap_{name}"] = True
    return m, higher


def paired_change(a: list[dict], b: list[dict], kinds: tuple[str, ...], score: str
                  ) -> tuple[float, float, float] | None:
    """Mean of a - b in `score` over the items of `kinds` both arms hold (same example_id),
    with a paired bootstrap interval; None when they share none. Items carry their kind in
    `kind` (in memory) or `scores.kind` (as stored)."""
    def pick(items):
        return {i["example_id"]: i["scores"][score] for i in items
                if (i.get("kind") or i["scores"].get("kind")) in kinds and score in i["scores"]}
    x, y = pick(a), pick(b)
    common = sorted(set(x) & set(y))
    return paired_bootstrap([x[k] for k in common], [y[k] for k in common]) if common else None
