"""`tunelab data check`: bad records, duplicates, train/test leakage, and a summary.

The same leakage test guards `tunelab run`. Two inputs are *exact* duplicates when their
text is identical and *near* duplicates when only case, punctuation or whitespace differ
(equal `normalize_text`, compared by hash). Nothing here prints: `Report.lines()` does the
wording and the CLI prints it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunelab.data.readers import DataError, Example, normalize_text, read_examples

MAX_LABELS = 50
"""Targets with at most this many distinct values (and repeats) are treated as labels."""


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class Pair:
    """`a` repeats `b` (a later record of the same file, or a test record of train)."""

    a: Example
    b: Example
    exact: bool


def _where(ex: Example) -> str:
    return f"{ex.meta.get('file', '?')}:{ex.meta.get('line', ex.id)}"


def duplicates(examples: list[Example]) -> list[Pair]:
    """Each record whose input repeats an earlier record's input (exact or near)."""
    first: dict[str, Example] = {}
    out = []
    for ex in examples:
        key = text_hash(ex.input)
        if key in first:
            out.append(Pair(ex, first[key], ex.input == first[key].input))
        else:
            first[key] = ex
    return out


def leakage(train: list[Example], test: list[Example]) -> list[Pair]:
    """Test examples whose input also occurs in the training data (exact or near)."""
    seen: dict[str, Example] = {}
    for ex in train:
        seen.setdefault(text_hash(ex.input), ex)
    out = []
    for ex in test:
        hit = seen.get(text_hash(ex.input))
        if hit is not None:
            out.append(Pair(ex, hit, ex.input == hit.input))
    return out


def lengths(examples: list[Example], tok=None) -> list[int]:
    """Tokens per example (input + target) with `tok`, else whitespace words."""
    texts = [f"{e.input}\n{e.target}" for e in examples]
    if tok is None:
        return [len(t.split()) for t in texts]
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def labels(examples: list[Example]) -> Counter | None:
    """Target counts if the targets look like class labels, else None."""
    counts = Counter(e.target.strip() for e in examples)
    if len(counts) > MAX_LABELS or len(counts) * 2 > len(examples):
        return None
    return counts


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    """One line per bad record or refused file, train's then test's."""
    n_train: int = 0
    n_test: int = 0
    bad_train: int = 0
    bad_test: int = 0
    refused: list[str] = field(default_factory=list)
    """Files not read at all (missing, not UTF-8, tool calls, ...)."""
    duplicates: list[Pair] = field(default_factory=list)
    leaked: list[Pair] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)
    long_train: int = 0
    long_test: int = 0
    max_tokens: int | None = None
    length_pct: dict[int, float] = field(default_factory=dict)
    length_unit: str = "words"
    labels: Counter | None = None

    @property
    def ok(self) -> bool:
        """Bad records, refused files, over-long records and leakage fail; duplicates warn."""
        return not (self.errors or self.too_long or self.leaked)

    def _counts(self, bad: int, long: int) -> str:
        over = f", {long} over --max-tokens {self.max_tokens}" if self.max_tokens else ""
        return f"{bad} bad{over}"

    def verdict(self) -> str:
        """'OK', or 'FAILED:' and every count that fails it (the reasons for exit code 1)."""
        why = [f"{len(self.refused)} file(s) refused"] if self.refused else []
        bad = len(self.errors) - len(self.refused)
        why += [f"{bad} bad record(s)"] if bad else []
        long = len(self.too_long)
        why += [f"{long} record(s) over --max-tokens {self.max_tokens}"] if long else []
        why += [f"{len(self.leaked)} test record(s) leaked into train"] if self.leaked else []
        return "FAILED: " + ", ".join(why) if why else "OK"

    def lines(self, limit: int = 20) -> list[str]:
        out = list(self.errors[:limit]) + self.too_long[:limit]
        more = len(self.errors) + len(self.too_long) - len(out)
        if more > 0:
            out.append(f"... and {more} more bad records")
        for p in self.duplicates[:limit]:
            kind = "exact" if p.exact else "near"
            out.append(f"{_where(p.a)}: input: {kind} duplicate of {_where(p.b)}")
        for p in self.leaked[:limit]:
            kind = "exact" if p.exact else "near-duplicate"
            out.append(f"{_where(p.a)}: input: leaked: {kind} of train {_where(p.b)}")
        exact = sum(p.exact for p in self.duplicates)
        leak_exact = sum(p.exact for p in self.leaked)
        out.append(f"train: {self.n_train} records, {self._counts(self.bad_train, self.long_train)}, "
                   f"{exact} exact + {len(self.duplicates) - exact} near duplicates (a warning)")
        if self.n_test or self.bad_test:
            out.append(f"test: {self.n_test} records, {self._counts(self.bad_test, self.long_test)}; "
                       f"leaked into train: {leak_exact} exact + {len(self.leaked) - leak_exact} near")
        if self.length_pct:
            pct = ", ".join(f"p{k} {v:.0f}" for k, v in self.length_pct.items())
            out.append(f"length ({self.length_unit}, input + target): {pct}")
        if self.labels:
            total = sum(self.labels.values())
            bal = ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in self.labels.most_common())
            out.append(f"labels: {bal}")
        out.append(self.verdict())
        return out


def read_lenient(path: Path, reader=None) -> tuple[list[Example], list[str], bool]:
    """All good examples of a file, one `file:line: field: problem` per bad record, and
    whether the whole file was refused (then the one line says why)."""
    errors: list[DataError] = []
    try:
        examples = reader(path, errors) if reader else read_examples(path, "auto", errors)
    except DataError as e:  # file-level: missing, not UTF-8, not an array, bad CSV, tool calls
        return [], [str(e)], True
    for ex in examples:
        ex.meta["file"] = str(path)
    msgs = [str(e) for e in errors]
    if not examples and not msgs:
        return [], [f"{path}: no records"], True
    return examples, msgs, False


def check(train: Path, test: Path | None = None, reader=None, tok=None,
          max_tokens: int | None = None) -> Report:
    """Everything `tunelab data check` reports about a training (and test) file."""
    rep = Report(max_tokens=max_tokens)
    tr, rep.errors, refused = read_lenient(Path(train), reader)
    rep.n_train, rep.bad_train = len(tr), len(rep.errors)
    rep.refused += [str(train)] if refused else []
    rep.duplicates = duplicates(tr)
    te: list[Example] = []
    if test is not None:
        te, errs, refused = read_lenient(Path(test), reader)
        rep.errors += errs
        rep.n_test, rep.bad_test = len(te), len(errs)
        rep.refused += [str(test)] if refused else []
        rep.leaked = leakage(tr, te)
    everything = tr + te
    if everything:
        n = lengths(everything, tok)
        rep.length_unit = "tokens" if tok is not None else "words"
        rep.length_pct = {q: float(np.percentile(n, q)) for q in (50, 90, 99, 100)}
        if max_tokens:
            over = [i for i, k in enumerate(n) if k > max_tokens]
            rep.too_long = [f"{_where(everything[i])}: (record): {n[i]} tokens, over --max-tokens "
                            f"{max_tokens}" for i in over]
            rep.long_train = sum(i < len(tr) for i in over)
            rep.long_test = len(over) - rep.long_train
    rep.labels = labels(tr) if tr else None
    return rep
