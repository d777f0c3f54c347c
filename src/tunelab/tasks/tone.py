"""tone: rewrite a plain modern sentence in Shakespeare's style (tiny Shakespeare).

How pairs are built (deterministic, no model involved): every spoken line of the corpus
(not a speaker tag, 6 to 24 words) is *modernised* by a fixed word list (thou -> you,
hath -> has, 'tis -> it is, ...; `ARCHAIC`). Lines that change are kept: input = the
modernised line, target = Shakespeare's original. The first 90% of the file gives train
(validation split off with `split_seed`), the last 10% test, so test lines come from
plays/scenes the training lines do not.

Scored without the model judging itself:
- style: probability of "Shakespeare" from a logistic regression on MiniLM embeddings,
  trained on 400 corpus lines from the training part (positives) against the modern
  English lines shipped in tunelab/tasks/assets/modern_english.txt and the modernised
  versions of those 400 lines (negatives: otherwise copying the input scores as style);
- content: cosine similarity of the output's and the input's MiniLM embeddings;
- tone = style x content (primary): copying the input keeps content but has no style,
  any Shakespeare line has style but not the content.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import ClassVar

import numpy as np

from tunelab.data.readers import Example, split
from tunelab.tasks.base import SCORED_BY_TASK, Splits, Task
from tunelab.tasks.metrics import Metric

ARCHAIC = {
    "thou": "you", "thee": "you", "thy": "your", "thine": "yours", "ye": "you",
    "art": "are", "hast": "have", "hath": "has", "doth": "does", "dost": "do",
    "shalt": "shall", "wilt": "will", "canst": "can", "couldst": "could", "wouldst": "would",
    "shouldst": "should", "didst": "did", "hadst": "had", "ere": "before", "'tis": "it is",
    "'twas": "it was", "wherefore": "why", "hither": "here", "thither": "there",
    "whither": "where", "oft": "often", "nay": "no", "ay": "yes", "prithee": "please",
    "anon": "soon", "o'er": "over", "e'en": "even", "ne'er": "never", "methinks": "I think",
    "perchance": "perhaps", "sirrah": "sir", "whilst": "while", "betwixt": "between",
    "mayst": "may", "knowest": "know", "speak'st": "speak",
}
WORD = re.compile(r"[A-Za-z']+")
INSTRUCTION = """\
Rewrite the sentence in the style of Shakespeare (Early Modern English: thou, thee, hath, \
doth, ...). Keep its meaning. Output the rewritten sentence only, on one line."""
SHORT_INSTRUCTION = "Rewrite in Shakespeare's style."
FILE = "input.txt"


def modernise(line: str) -> str:
    """Replace archaic words by modern ones, keeping an initial capital.

    >>> modernise("Thou art a knave, and 'tis true.")
    'You are a knave, and it is true.'
    """
    def swap(m: re.Match) -> str:
        word = m.group(0)
        new = ARCHAIC.get(word.lower())
        if new is None:
            return word
        return new[0].upper() + new[1:] if word[0].isupper() else new
    return WORD.sub(swap, line)


def spoken_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of spoken verse/prose: not a speaker tag, 6 to 24 words."""
    out = []
    for n, line in enumerate(text.split("\n"), start=1):
        s = line.strip()
        if s and not s.endswith(":") and 6 <= len(s.split()) <= 24:
            out.append((n, s))
    return out


def pairs(text: str) -> tuple[list[Example], list[Example]]:
    """(train-part, test-part) pairs: the first 90% of the file's lines, the last 10%."""
    cut = int(text.count("\n") * 0.9)
    train, test = [], []
    for n, line in spoken_lines(text):
        plain = modernise(line)
        if plain != line:
            ex = Example(plain, line, id=f"{FILE}:{n}", meta={"line": n})
            (train if n <= cut else test).append(ex)
    return train, test


@cache
def style_model(text: str):
    """Logistic regression on MiniLM embeddings: Shakespeare (1) vs modern English (0)."""
    from sklearn.linear_model import LogisticRegression

    from tunelab.backends.embed import embed

    cut = int(text.count("\n") * 0.9)
    bard = [s for n, s in spoken_lines(text) if n <= cut]
    bard = random.Random(0).sample(bard, min(400, len(bard)))
    modern_file = resources.files("tunelab.tasks") / "assets" / "modern_english.txt"
    modern = [s for s in modern_file.read_text().splitlines() if s.strip() and not s.startswith("#")]
    # Modernised corpus lines are negatives too: a test input is one, and copying the
    # input must not count as Shakespearean style.
    plain = [m for m in (modernise(s) for s in bard) if m not in set(bard)]
    x = embed(bard + modern + plain)
    y = np.array([1] * len(bard) + [0] * (len(modern) + len(plain)))
    return LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)


@dataclass
class Tone(Task):
    name: str = "tone"
    folder: str = "tiny_shakespeare"
    instruction: str = INSTRUCTION
    short_instruction: str = SHORT_INSTRUCTION
    max_new_tokens: int = 64
    one_line: bool = True
    """One line is scored, so generation stops there (version 2: before, it generated up to
    max_new_tokens and scored the first line all the same)."""
    primary: str = "tone"
    metric_names: list[str] = field(default_factory=lambda: ["tone", "style", "content"])
    version: ClassVar[int] = 2

    @property
    def metrics(self) -> dict[str, Metric]:
        return {n: Metric(SCORED_BY_TASK) for n in self.metric_names}

    def _text(self) -> str:
        return self.path(self.cfg.train or FILE).read_text(encoding="utf-8")

    def splits(self) -> Splits:
        train, test = pairs(self._text())
        train, validation = split(train, self.cfg.split_fraction, self.cfg.split_seed + 1)
        return Splits(train, validation, test,
                      source=f"{FILE}: modernised spoken lines; first 90% of the file train, "
                             f"last 10% test; validation split with split_seed={self.cfg.split_seed}")

    def score_all(self, predictions: list[str], examples: list[Example]) -> list[dict]:
        from tunelab.backends.embed import embed

        preds = [self.clean(p) for p in predictions]
        clf = style_model(self._text())
        vp = embed([p or " " for p in preds])
        vi = embed([e.input for e in examples])
        style = clf.predict_proba(vp)[:, 1]
        content = np.clip((vp * vi).sum(axis=1), 0.0, 1.0)
        out = []
        for p, s, c in zip(preds, style, content, strict=True):
            s, c = (float(s), float(c)) if p else (0.0, 0.0)
            out.append({"tone": s * c, "style": s, "content": c})
        return out

    def score(self, prediction: str, ex: Example) -> dict:
        return self.score_all([prediction], [ex])[0]

    def describe(self) -> str:
        return "modern sentence -> Shakespearean style; style classifier x content cosine"
