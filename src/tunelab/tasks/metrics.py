"""Pure metric functions (prediction, reference) -> float, plus bootstrap intervals.

Each metric is registered in METRICS with its `higher_is_better` flag. Metrics of free
text (overlap, ROUGE-L, token F1, labels, answers, meaning) live in metrics_text.py; the
ones here parse structure (meaning representations, SQL, numbers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tunelab import TunelabError
from tunelab.tasks.metrics_text import (
    answer_match,
    exact_match,
    label_match,
    macro_f1,
    rouge_l,
    semantic_sim,
    token_f1,
)


@dataclass(frozen=True)
class Metric:
    fn: Callable[[str, str], float]
    higher_is_better: bool = True


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


def sql_normalize(sql: str) -> str | None:
    """Canonical SQLite text of a query (sqlglot), or None if it does not parse.

    >>> sql_normalize("select  COUNT(*) from head where age>56")
    'SELECT COUNT(*) FROM head WHERE age > 56'
    >>> sql_normalize("SELEC nonsense (") is None
    True
    """
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql.strip().rstrip(";"), read="sqlite")
    except (sqlglot.errors.SqlglotError, ValueError, RecursionError):
        return None
    return tree.sql(dialect="sqlite", normalize=True) if tree else None


def sql_exact(pred: str, ref: str) -> float:
    """Exact match after sqlglot normalisation (keyword case, spacing, identifier case).

    >>> sql_exact("select name from t where id=1;", "SELECT name FROM T WHERE id = 1")
    1.0
    >>> sql_exact("SELECT name FROM t", "SELECT id FROM t")
    0.0
    """
    p, r = sql_normalize(pred), sql_normalize(ref)
    return float(p is not None and p == r)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_number(text: str) -> float | None:
    """The answer of a GSM8k-style text: after the last `####` if present, else the last
    number in the text; commas stripped. None if there is no number.

    >>> final_number("48/2 = 24 clips.\\n#### 72")
    72.0
    >>> final_number("So she has 1,234.50 dollars left.")
    1234.5
    >>> final_number("no idea") is None
    True
    """
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def number_match(pred: str, ref: str) -> float:
    """1.0 if the final numbers of prediction and reference are equal as numbers.

    >>> number_match("5 + 3 = 8. The answer is 8.", "5+3=8\\n#### 8")
    1.0
    >>> number_match("The answer is 8.00", "#### 8")
    1.0
    >>> number_match("I think 9", "#### 8")
    0.0
    """
    p, r = final_number(pred), final_number(ref)
    return float(p is not None and r is not None and abs(p - r) < 1e-6)


METRICS: dict[str, Metric] = {
    "exact_match": Metric(exact_match),
    "token_f1": Metric(token_f1),
    "mr_exact": Metric(mr_exact),
    "slot_precision": Metric(slot_precision),
    "slot_recall": Metric(slot_recall),
    "slot_f1": Metric(slot_f1),
    "sql_exact": Metric(sql_exact),
    "number_match": Metric(number_match),
    "rouge_l": Metric(rouge_l),
    "label_match": Metric(label_match),
    "answer_match": Metric(answer_match),
    "semantic_sim": Metric(semantic_sim),
}
CORPUS_METRICS: dict[str, Metric] = {"macro_f1": Metric(macro_f1)}
"""Metrics over a whole set (preds, refs) -> float; their CI resamples examples."""


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise TunelabError(f"Unknown metric '{name}'. Available: {', '.join(METRICS)}")
    return METRICS[name]


def unit_scores(*groups) -> bool:
    """Whether every score of every group lies in [0, 1], the range of every tunelab metric
    (a metric of the user's own may leave it): a mean of them then lies in [0, 1] and a
    difference of two means in [-1, 1].

    >>> unit_scores([0, 0.5, 1], [1.0])
    True
    >>> unit_scores([0.2, 4.0])
    False
    """
    return all(bool(((g >= 0) & (g <= 1)).all()) for g in (np.asarray(x, dtype=float) for x in groups))


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
    means = _resampled_means(x, np.random.default_rng(seed), n_resamples)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def _resampled_means(x: np.ndarray, rng, n_resamples: int) -> np.ndarray:
    """Means of n_resamples resamples of x with replacement."""
    return x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)


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


def unpaired_bootstrap(
    a, b, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """mean(a) - mean(b) for two independent samples, with a bootstrap interval that
    resamples each one separately.

    >>> d, lo, hi = unpaired_bootstrap([2.0, 2.2, 1.8] * 10, [0.1, -0.1, 0.0] * 10)
    >>> round(d, 3), lo > 1.5
    (2.0, True)
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    diffs = _resampled_means(a, rng, n_resamples) - _resampled_means(b, rng, n_resamples)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def corpus_ci(fn, preds: list[str], refs: list[str], n_resamples: int = 1000, seed: int = 0,
              alpha: float = 0.05) -> tuple[float, float, float]:
    """A corpus metric with a percentile-bootstrap interval over resampled examples.

    >>> corpus_ci(macro_f1, ["a", "b"] * 10, ["a", "b"] * 10, 100)
    (1.0, 1.0, 1.0)
    """
    if not preds:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = len(preds)
    vals = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        vals.append(fn([preds[i] for i in idx], [refs[i] for i in idx]))
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(fn(preds, refs)), float(lo), float(hi)
