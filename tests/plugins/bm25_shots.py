"""bm25_shots: for each input, the k training examples that score highest under BM25 (a
lexical ranking with its two parameters as the method's own settings) as prior turns.

Written outside the package (no index library: BM25 in a few lines) to show what a new
prompting method with settings of its own takes: this module and one registration line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from tunelab import TunelabError
from tunelab.backends.prompt import messages, shots_of
from tunelab.data.readers import Example
from tunelab.eval.predictor import ChatPredictor, Predictor, PredictorInfo
from tunelab.methods.base import Context, MethodSpec, Shots, instruction


@dataclass
class Settings(Shots):
    k1: float = 1.2
    """BM25 term-frequency saturation: 0 counts a word once however often it occurs."""
    b: float = 0.75
    """BM25 length normalisation: 0 none, 1 full."""

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.b <= 1:
            raise TunelabError(f"b: must be between 0 and 1, got {self.b}")
        if self.k1 < 0:
            raise TunelabError(f"k1: must be at least 0, got {self.k1}")


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def bm25(query: list[str], docs: list[list[str]], k1: float, b: float) -> list[float]:
    """BM25 score of every document for the query (Robertson et al.'s idf, plus one)."""
    n, avg = len(docs), sum(map(len, docs)) / max(1, len(docs))
    df = Counter(w for d in docs for w in set(d))
    out = []
    for d in docs:
        tf, norm = Counter(d), k1 * (1 - b + b * len(d) / max(avg, 1e-9))
        out.append(sum(math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) * tf[w] * (k1 + 1) / (tf[w] + norm)
                       for w in set(query) if w in tf))
    return out


def build(ctx: Context) -> Predictor:
    s, task = ctx.settings, ctx.task
    if len(ctx.train) < s.k:
        raise TunelabError(f"bm25_shots: k={s.k} but only {len(ctx.train)} training examples")
    docs = [words(task.user_message(e)) for e in ctx.train]
    system = instruction(ctx)
    info = PredictorInfo(trainable_params=0, shots={})
    info.extra["bm25"] = {"k1": s.k1, "b": s.b}  # a plugin's own record: stored with the run

    def to_msgs(ex: Example) -> list[dict]:
        scores = bm25(words(task.user_message(ex)), docs, s.k1, s.b)
        best = sorted(range(len(docs)), key=lambda i: (-scores[i], i))[: s.k]
        chosen = [ctx.train[i] for i in reversed(best)]  # best last: nearest the question
        info.shots[ex.id] = [e.id for e in chosen]
        return messages(system, task.turns(ex), shots_of(chosen, task.user_message))

    return ChatPredictor(ctx.model, ctx.tok, to_msgs, info)


SPEC = MethodSpec("bm25_shots", Settings, trains=False, needs_local_model=False, build=build)
