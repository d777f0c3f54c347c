"""Pure metric functions of free text (prediction, reference) -> float: exact match, token
F1, ROUGE-L, labels, answers in a line, meaning (sentence-embedding similarity).

metrics.py registers them in METRICS beside the structured ones.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np


def normalize(text: str) -> str:
    """Lower-case, collapse whitespace, strip surrounding punctuation/quotes.

    >>> normalize("  The Answer.  ")
    'the answer'
    """
    return " ".join(text.lower().split()).strip(" .\"'`")


def exact_match(pred: str, ref: str) -> float:
    """1.0 if the normalized strings are equal.

    >>> exact_match("Paris.", "paris")
    1.0
    >>> exact_match("Paris, France", "Paris")
    0.0
    """
    return float(normalize(pred) == normalize(ref))


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_f1(pred: str, ref: str) -> float:
    """SQuAD-style bag-of-words F1.

    >>> token_f1("the cat sat", "the cat sat")
    1.0
    >>> round(token_f1("a cat", "the cat sat"), 3)
    0.4
    >>> token_f1("", "x")
    0.0
    """
    p, r = _tokens(pred), _tokens(ref)
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or common == 0:
        return float(p == r)
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1: longest common subsequence of word tokens.

    >>> rouge_l("the cat sat on the mat", "the cat sat on the mat")
    1.0
    >>> round(rouge_l("the cat was on a mat", "the cat sat on the mat"), 3)
    0.667
    >>> rouge_l("", "x")
    0.0
    """
    # By hand: the reference package (rouge-score) would add nltk and absl-py for this one
    # LCS; its rougeL F-measure is the same formula (beta 1) on its own tokenizer.
    p, r = _tokens(pred), _tokens(ref)
    if not p or not r:
        return float(p == r)
    prev = [0] * (len(r) + 1)
    for a in p:
        cur = [0]
        for j, b in enumerate(r):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def label_match(pred: str, ref: str) -> float:
    """Classification accuracy for one example: the predicted label equals the reference
    (case-insensitive, surrounding punctuation and a `label:` prefix ignored).

    >>> label_match("Label: Inform.", "inform")
    1.0
    >>> label_match("request", "inform")
    0.0
    """
    p = normalize(pred)
    if p.startswith("label:"):
        p = normalize(p[len("label:"):])
    return float(p == normalize(ref))


def macro_f1(preds: list[str], refs: list[str]) -> float:
    """Mean over reference labels of per-label F1 (a corpus metric, not per example).

    >>> macro_f1(["a", "a", "b", "b"], ["a", "a", "b", "b"])
    1.0
    >>> round(macro_f1(["a", "a", "a", "b"], ["a", "a", "b", "b"]), 3)
    0.733
    """
    p = [normalize(x) for x in preds]
    r = [normalize(x) for x in refs]
    scores = []
    for label in sorted(set(r)):
        tp = sum(a == label and b == label for a, b in zip(p, r, strict=True))
        fp = sum(a == label and b != label for a, b in zip(p, r, strict=True))
        fn = sum(a != label and b == label for a, b in zip(p, r, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores)) if scores else 0.0


ABSTAIN = re.compile(r"\b(i (do not|don't|dont) know|unknown|not sure|no information|cannot answer|"
                     r"can't answer|no answer|not (mentioned|stated|provided|given))\b")
"""Phrases that count as declining to answer (the probes' prompts ask for "I don't know")."""


def abstained(pred: str) -> float:
    """1.0 if the answer declines instead of naming something.

    >>> abstained("I don't know."), abstained("Unknown"), abstained("Velmora")
    (1.0, 1.0, 0.0)
    """
    return float(bool(ABSTAIN.search(pred.lower().replace("\u2019", "'"))))


def first_line(text: str) -> str:
    r"""The first non-empty line, stripped (what one-line tasks score).

    >>> first_line("\n  inform(name[X])  \nmore")
    'inform(name[X])'
    """
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def answer_match(pred: str, ref: str) -> float:
    """1.0 if the gold answer (or an alias: `ref` is `answer|alias|...`) occurs as whole
    words in the first line of the prediction, case and punctuation aside; an answer
    that also declines ("Velmora? I don't know") does not count.

    >>> answer_match("It was Talisa Quorren.", "Talisa Quorren|Quorren")
    1.0
    >>> answer_match("Quorrenby", "Quorren"), answer_match("I don't know, Quorren?", "Quorren")
    (0.0, 0.0)
    """
    words = " ".join(_tokens(first_line(pred)))
    if abstained(pred):
        return 0.0
    for alias in ref.split("|"):
        gold = " ".join(_tokens(alias))
        if gold and re.search(rf"(^| ){re.escape(gold)}( |$)", words):
            return 1.0
    return 0.0


def semantic_similarities(preds: list[str], refs: list[str]) -> list[float]:
    """Cosine similarity of each prediction's and its reference's sentence embeddings
    (all-MiniLM-L6-v2, packaged: tunelab.backends.embed, offline), clipped to [0, 1]. Meaning, not
    wording: a correct paraphrase scores near 1 where token overlap is low. One batch for
    a whole test set (Jsonl.score_all); an empty prediction scores 0."""
    from tunelab.backends.embed import embed

    if not preds:
        return []
    vecs = embed(list(preds) + list(refs), use_cache=False)
    sims = (vecs[: len(preds)] * vecs[len(preds):]).sum(axis=1)
    return [float(min(max(s, 0.0), 1.0)) if p.strip() else 0.0 for s, p in zip(sims, preds, strict=True)]


def semantic_sim(pred: str, ref: str) -> float:
    """One example of semantic_similarities."""
    return semantic_similarities([pred], [ref])[0]
