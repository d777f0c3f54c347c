"""Pure metric functions (prediction, reference) -> float, plus bootstrap intervals.

Each metric is registered in METRICS with its `higher_is_better` flag.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tunelab import TunelabError


@dataclass(frozen=True)
class Metric:
    fn: Callable[[str, str], float]
    higher_is_better: bool = True


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


_MR = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.S)
_SLOT = re.compile(r"([a-z_]+)\s*\[([^\]]*)\]")


def parse_mr(text: str) -> tuple[str, frozenset[tuple[str, str]]] | None:
    """Parse a ViGGO meaning representation into (function, {(attribute, value)}).

    Values are lower-cased with whitespace collapsed; list values ("PC, Xbox") are
    compared as sets, so their order does not matter. Returns None if unparseable.

    >>> fn, slots = parse_mr("inform(name[Tetris], platforms[Xbox, PC])")
    >>> fn, sorted(slots)
    ('inform', [('name', 'tetris'), ('platforms', 'pc, xbox')])
    >>> parse_mr("not an mr") is None
    True
    """
    m = _MR.match(text.strip().splitlines()[0] if text.strip() else "")
    if not m:
        return None
    slots = set()
    for attr, value in _SLOT.findall(m.group(2)):
        items = sorted(" ".join(v.lower().split()) for v in value.split(","))
        slots.add((attr, ", ".join(items)))
    return m.group(1), frozenset(slots)


def mr_exact(pred: str, ref: str) -> float:
    """Same function and same set of attribute[value] pairs, order-insensitive.

    >>> mr_exact("inform(rating[good], name[X])", "inform( name[X],rating[good])")
    1.0
    >>> mr_exact("request(name[X])", "inform(name[X])")
    0.0
    """
    p, r = parse_mr(pred), parse_mr(ref)
    return float(p is not None and p == r)


def _slot_counts(pred: str, ref: str) -> tuple[int, int, int]:
    p, r = parse_mr(pred), parse_mr(ref)
    ps = p[1] if p else frozenset()
    rs = r[1] if r else frozenset()
    return len(ps & rs), len(ps), len(rs)


def slot_precision(pred: str, ref: str) -> float:
    """Fraction of predicted attribute[value] pairs that are in the reference.

    >>> slot_precision("inform(name[X], rating[good])", "inform(name[X])")
    0.5
    """
    hit, n_pred, _ = _slot_counts(pred, ref)
    return hit / n_pred if n_pred else 0.0


def slot_recall(pred: str, ref: str) -> float:
    """Fraction of reference attribute[value] pairs that were predicted.

    >>> slot_recall("inform(name[X])", "inform(name[X], rating[good])")
    0.5
    """
    hit, _, n_ref = _slot_counts(pred, ref)
    return hit / n_ref if n_ref else 0.0


def slot_f1(pred: str, ref: str) -> float:
    """Harmonic mean of slot precision and recall.

    >>> round(slot_f1("inform(name[X], genres[rpg])", "inform(name[X], rating[good])"), 2)
    0.5
    >>> slot_f1("garbage", "inform(name[X])")
    0.0
    """
    p, r = slot_precision(pred, ref), slot_recall(pred, ref)
    return 2 * p * r / (p + r) if p + r else 0.0


METRICS: dict[str, Metric] = {
    "exact_match": Metric(exact_match),
    "token_f1": Metric(token_f1),
    "mr_exact": Metric(mr_exact),
    "slot_precision": Metric(slot_precision),
    "slot_recall": Metric(slot_recall),
    "slot_f1": Metric(slot_f1),
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise TunelabError(f"Unknown metric '{name}'. Available: {', '.join(METRICS)}")
    return METRICS[name]


def bootstrap_ci(
    values, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap (1-alpha) interval over examples.

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0, 1.0)
    >>> m, lo, hi = bootstrap_ci([0, 1] * 50)
    >>> m, lo < 0.5 < hi
    (0.5, True)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def paired_bootstrap(
    a, b, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean difference a - b over the same examples, with a paired bootstrap interval.

    >>> d, lo, hi = paired_bootstrap([1, 1, 0, 1] * 25, [0, 1, 0, 0] * 25)
    >>> d, lo > 0
    (0.5, True)
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired bootstrap needs scores on the same examples")
    return bootstrap_ci(a - b, n_resamples, seed, alpha)
