"""How the user's own data is scored: as classification when its targets look like labels,
else as free text. The rule is a pure function of the training targets, so the choice is
the same on every run of a config and is stated, with its reason, in the report.

Label-like (all must hold): at least 2 and at most MAX_LABELS distinct targets, each at
most MAX_WORDS words, each seen at least MIN_COUNT times in the training split. A target
seen once is more likely free text than a class (a class needs examples to learn from).
Free text is split by length (LONG_WORDS): short answers are scored by exact match, long
ones by word overlap and meaning, where exact match cannot move.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tunelab import TunelabError
from tunelab.core.config import SCORINGS

LONG_WORDS = 5
"""Free text whose training completions average more words than this is scored by word
overlap, not exact match: a 46-word answer almost never matches its reference to the
letter, so exact match sat at 0.000 for every arm and could not tell them apart."""
MAX_LABELS = 50
MAX_WORDS = 5
MIN_COUNT = 2
RULE = (f"labels when there are 2 to {MAX_LABELS} distinct completions, each at most "
        f"{MAX_WORDS} words and seen at least {MIN_COUNT} times")
TEXT_RULE = (f"free text averaging more than {LONG_WORDS} words is long_text: ROUGE-L first, "
             "then token F1, meaning similarity (sentence embeddings) and exact match; "
             "shorter free text is text: exact match first, then token F1")
KIND_METRICS = {"text": ["exact_match", "token_f1"],
                "long_text": ["rouge_l", "token_f1", "semantic_sim", "exact_match"]}
"""Per-example metrics of each free-text kind, the primary first."""


@dataclass
class Scoring:
    kind: str
    """classification, text (short answers: exact match) or long_text (overlap)."""
    why: str
    """One sentence a reader can check against the data."""
    labels: list[str] = field(default_factory=list)
    """The label set (classification), sorted."""


def not_labels(targets: list[str]) -> str | None:
    """Why these targets are not labels, or None if they look like labels.

    >>> not_labels(["yes", "no", "no", "yes"]) is None
    True
    >>> not_labels(["yes", "no", "no"])
    "'yes' is seen only once"
    >>> not_labels(["a long answer of many words here", "x"] * 2)
    "'a long answer of many words here' has 7 words"
    """
    counts = Counter(t.strip() for t in targets)
    if len(counts) < 2:
        return f"{len(counts)} distinct completion"
    if len(counts) > MAX_LABELS:
        return f"{len(counts)} distinct completions (more than {MAX_LABELS})"
    for t in counts:
        if len(t.split()) > MAX_WORDS:
            return f"{t[:60]!r} has {len(t.split())} words"
    rare = [t for t, n in counts.items() if n < MIN_COUNT]
    if rare:
        return f"{rare[0][:60]!r} is seen only once"
    return None


def choose(targets: list[str], requested: str = "auto") -> Scoring:
    """The scoring for a task whose training targets are `targets`."""
    if requested not in SCORINGS:
        raise TunelabError(f"task.scoring: unknown '{requested}'. Available: {', '.join(SCORINGS)}")
    labels = sorted({t.strip() for t in targets})
    if requested == "classification":
        return Scoring("classification", "task.scoring: classification is set in the config", labels)
    reason = "task.scoring: text is set in the config" if requested == "text" else not_labels(targets)
    if reason is None:
        return Scoring("classification", f"the {len(targets)} training completions take "
                       f"{len(labels)} distinct values; rule: {RULE}", labels)
    kind, words = text_kind(targets)
    why = reason if requested == "text" else f"free text: {reason}"
    return Scoring(kind, f"{why}; completions average {words:.1f} words; rule: {RULE}; {TEXT_RULE}")


def text_kind(targets: list[str]) -> tuple[str, float]:
    """(text or long_text, mean words per completion).

    >>> text_kind(["Paris", "the Nile"])
    ('text', 1.5)
    >>> text_kind(["a long answer of many words, more than five"])
    ('long_text', 9.0)
    """
    words = sum(len(t.split()) for t in targets) / max(len(targets), 1)
    return ("long_text" if words > LONG_WORDS else "text"), words
