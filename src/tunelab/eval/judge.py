"""A pairwise LLM judge for free-text answers, asked in both orders.

For each test example the judge model (any OpenAI-compatible endpoint, `report.judge`)
sees the request, the reference answer and two answers, and names the better one. It is
asked twice, with the answers swapped, because judges favour a position (Zheng et al.
2023, "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena", section 3.3: swap the
positions and count a win only when both orders agree). Per example, answer A scores 1 when
both orders prefer it, 0 when both prefer B, and 0.5 otherwise (a tie, or the judge
contradicting itself). The mean over examples is A's preference rate; 0.5 is no preference.

The judge's reply is data: only its first A/B/tie token is read; nothing is executed.
Replies are cached on disk by what they depend on (judge, prompt), so a report built again
asks again for nothing and bills nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tunelab.core.cache import cached_json, digest

PROMPT = """You compare two answers to the same request. Judge which answer is better: \
correct with respect to the reference, complete, and no longer than needed.

Request:
{request}

Reference answer:
{reference}

Answer A:
{a}

Answer B:
{b}

Reply with one word: A, B, or tie."""

VERDICT = re.compile(r"\b(A|B|tie)\b", re.IGNORECASE)
"""The judge's choice: the first standalone A, B or tie in its reply."""


@dataclass(frozen=True)
class Item:
    """One test example as the judge sees it."""

    example_id: str
    request: str
    reference: str
    a: str
    b: str


def choice(reply: str) -> str | None:
    """'A', 'B', 'tie', or None when the reply names none of them.

    >>> choice("B"), choice("Answer A is better."), choice("Tie."), choice("neither")
    ('B', 'A', 'tie', None)
    """
    m = VERDICT.search(reply or "")
    if m is None:
        return None
    word = m.group(1)
    return "tie" if word.lower() == "tie" else word.upper()


def combine(first: str | None, swapped: str | None) -> float:
    """A's score from the two orders: `first` judged (A, B), `swapped` judged (B, A).

    >>> combine("A", "B"), combine("B", "A"), combine("A", "A"), combine("tie", "B")
    (1.0, 0.0, 0.5, 0.5)
    """
    a_first = {"A": 1.0, "B": 0.0}.get(first or "", 0.5)
    a_swapped = {"B": 1.0, "A": 0.0}.get(swapped or "", 0.5)
    if a_first == a_swapped:
        return a_first
    return 0.5  # the orders disagree: no preference counted


def prompts(item: Item) -> tuple[str, str]:
    """The judge's two prompts for one example: (A first, B first)."""
    one = PROMPT.format(request=item.request, reference=item.reference, a=item.a, b=item.b)
    two = PROMPT.format(request=item.request, reference=item.reference, a=item.b, b=item.a)
    return one, two


def judge(model, items: list[Item], cache: Path, max_new: int = 8) -> list[float]:
    """A's score on each item (1, 0.5 or 0), asking `model` (an API backend with
    `chat(conversations, max_new, label)`) both orders of each pair, cached under `cache`."""
    asks = [p for it in items for p in prompts(it)]
    ident = {"judge": getattr(getattr(model, "cfg", None), "name", type(model).__name__),
             "endpoint": getattr(getattr(model, "cfg", None), "base_url", None)}
    path = Path(cache) / f"judge-{digest([ident, asks])}.json"

    def ask() -> list[str]:
        replies = model.chat([[{"role": "user", "content": p}] for p in asks], max_new,
                             label=f"judge {ident['judge']}")
        return [g.text for g in replies]

    replies = cached_json(path, ask)
    return [combine(choice(replies[2 * i]), choice(replies[2 * i + 1])) for i in range(len(items))]


def summary(scores: list[float]) -> dict:
    """Counts of the per-example scores: wins of A, of B, and no preference."""
    return {"n": len(scores), "a_wins": sum(s == 1.0 for s in scores),
            "b_wins": sum(s == 0.0 for s in scores), "none": sum(s == 0.5 for s in scores)}
