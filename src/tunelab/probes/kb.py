"""Readers for the facts probe's files: the knowledge base, unanswerable questions and
the general questions that measure forgetting. Every problem names file:line: field.

KB line:  {"id", "fact": training sentence, "questions": [{"kind": near|paraphrase|reversal,
           "q", "answer", "aliases": [...]}, ...]}
Unanswerable line: {"id", "q"}.   General line: {"id", "q", "answer", "aliases": [...]}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunelab.data.readers import DataError, field_str, read_records

KINDS = ("near", "paraphrase", "reversal")


@dataclass
class Question:
    id: str
    q: str
    answers: list[str]
    """Gold answer first, then aliases; empty for an unanswerable question."""
    kind: str = "general"
    fact: str = ""
    """Id of the KB fact it asks about."""

    @property
    def ref(self) -> str:
        """The reference string answer_match reads: answers joined by '|'."""
        return "|".join(self.answers)


@dataclass
class Fact:
    id: str
    text: str
    questions: list[Question]


def _answers(rec: dict, where: str) -> list[str]:
    aliases = rec.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise DataError(f"{where}: aliases: expected a list of non-empty strings")
    return [field_str(rec, "answer", where), *aliases]


def _id(rec: dict, where: str, seen: set[str]) -> str:
    rid = field_str(rec, "id", where)
    if rid in seen:
        raise DataError(f"{where}: id: '{rid}' appears twice")
    seen.add(rid)
    return rid


def read_kb(path: str | Path) -> list[Fact]:
    """Facts with their questions; each fact needs a near question and at least one
    paraphrase or reversal question."""
    facts, seen = [], set()
    for line, rec in read_records(path):
        where = f"{path}:{line}"
        fid = _id(rec, where, seen)
        text = field_str(rec, "fact", where)
        qs = rec.get("questions")
        if not isinstance(qs, list) or not qs:
            raise DataError(f"{where}: questions: expected a non-empty list")
        questions = []
        for j, q in enumerate(qs):
            at = f"{where}: questions[{j}]"
            if not isinstance(q, dict):
                raise DataError(f"{at}: expected an object")
            kind = field_str(q, "kind", at)
            if kind not in KINDS:
                raise DataError(f"{at}.kind: '{kind}' is not one of {', '.join(KINDS)}")
            questions.append(Question(f"{fid}/{kind}/{j}", field_str(q, "q", at),
                                      _answers(q, at), kind, fid))
        kinds = {q.kind for q in questions}
        if "near" not in kinds or kinds == {"near"}:
            raise DataError(f"{where}: questions: need a near question and a paraphrase or reversal one")
        facts.append(Fact(fid, text, questions))
    if not facts:
        raise DataError(f"{path}: no facts")
    return facts


def read_questions(path: str | Path, answerable: bool) -> list[Question]:
    """General questions (with answers) or unanswerable ones (without)."""
    out, seen = [], set()
    for line, rec in read_records(path):
        where = f"{path}:{line}"
        qid = _id(rec, where, seen)
        answers = _answers(rec, where) if answerable else []
        out.append(Question(qid, field_str(rec, "q", where), answers,
                            "general" if answerable else "unanswerable"))
    if not out:
        raise DataError(f"{path}: no questions")
    return out
