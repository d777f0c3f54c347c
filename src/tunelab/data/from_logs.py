"""`tunelab data from-logs`: production logs -> a clean chat training set.

Understands, one JSON object per line:
- OpenAI chat-completions request/response logs: `messages` (or `request.messages`) plus
  `choices[0].message` (or `response.choices[0].message`): the reply becomes the last turn;
- plain `messages` lists (the conversation as stored);
- `prompt` / `completion` pairs.
Production logs hold one line per *request*, so a conversation shows up once per turn,
each a prefix of the next. Conversations are grouped by `conversation_id` (or
`session_id`) when present, else by their first system+user turns, and only the longest
version is kept; splits are made per conversation, so none is in two splits.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.data.readers import DataError, check_turns, field_str, read_records, refuse_tool_calls

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d(?!\w)")


def redact(text: str) -> str:
    """Replace e-mail addresses and phone numbers by placeholders.

    >>> redact("mail bob.smith@example.com or call +1 (555) 123-4567 now")
    'mail [EMAIL] or call [PHONE] now'
    """
    return PHONE.sub("[PHONE]", EMAIL.sub("[EMAIL]", text))


def _msg(m, where: str) -> dict:
    if not isinstance(m, dict):
        raise DataError(f"{where}: expected an object")
    role = field_str(m, "role", where)
    if role not in ("system", "user", "assistant"):
        raise DataError(f"{where}: role: expected system, user or assistant")
    return {"role": role, "content": field_str(m, "content", where, allow_empty=True)}


def conversation(rec: dict, where: str) -> list[dict]:
    """The conversation of one log record, ending with an assistant turn."""
    if "prompt" in rec and "completion" in rec:
        return [{"role": "user", "content": field_str(rec, "prompt", where)},
                {"role": "assistant", "content": field_str(rec, "completion", where)}]
    req = rec.get("request") if isinstance(rec.get("request"), dict) else rec
    res = rec.get("response") if isinstance(rec.get("response"), dict) else rec
    raw = req.get("messages")
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: messages: expected a non-empty list (or prompt/completion)")
    refuse_tool_calls(req, where)  # a call read as text would be an empty or wrong target
    msgs = [_msg(m, f"{where}: messages[{i}]") for i, m in enumerate(raw)]
    choices = res.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise DataError(f"{where}: choices: expected a non-empty list of objects")
        reply = choices[0].get("message")
        if isinstance(reply, dict) and (reply.get("tool_calls") or reply.get("function_call")):
            raise DataError(f"{where}: choices[0].message.tool_calls: a tool call; tool-call "
                            "fine-tuning is not supported yet")
        msgs.append(_msg(reply, f"{where}: choices[0].message"))
    if msgs[-1]["role"] != "assistant":
        raise DataError(f"{where}: messages: conversation does not end with an assistant reply")
    check_turns(msgs, where)
    return msgs


@dataclass
class Conversation:
    messages: list[dict]
    key: str
    where: str
    rec: dict


@dataclass
class Summary:
    kept: dict[str, int] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    """One `file:line` per drop reason, so the user can look."""
    files: list[Path] = field(default_factory=list)

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] += 1
        self.examples.setdefault(reason, where)

    def lines(self) -> list[str]:
        out = [f"kept {sum(self.kept.values())} conversations: "
               + ", ".join(f"{k} {v}" for k, v in self.kept.items())]
        for reason, n in self.dropped.most_common():
            out.append(f"dropped {n}: {reason} (e.g. {self.examples[reason]})")
        out += [f"wrote {p}" for p in self.files]
        return out


def _key(rec: dict, msgs: list[dict]) -> str:
    for name in ("conversation_id", "session_id"):
        if isinstance(rec.get(name), str | int):
            return f"{name}:{rec[name]}"
    root = [m for m in msgs if m["role"] != "assistant"][:2]
    return hashlib.sha256(json.dumps(root).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _rating_ok(rec: dict, rating_field: str, min_rating: float) -> bool:
    value = rec
    for part in rating_field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= min_rating


def collect(paths: list[Path], summary: Summary, rating_field: str | None = None,
            min_rating: float | None = None, drop_regex: str | None = None,
            do_redact: bool = True) -> list[Conversation]:
    """Parse, filter and redact every log record; bad records are counted, not raised."""
    pattern = re.compile(drop_regex) if drop_regex else None
    out = []
    for path in paths:
        errors: list[DataError] = []
        for line, rec in read_records(path, errors):
            where = f"{path}:{line}"
            try:
                msgs = conversation(rec, where)
            except DataError as e:
                summary.drop(str(e).split(f"{where}: ", 1)[-1], where)
                continue
            if rating_field and min_rating is not None and not _rating_ok(rec, rating_field, min_rating):
                summary.drop(f"{rating_field} missing or below {min_rating:g}", where)
                continue
            if pattern and any(pattern.search(m["content"]) for m in msgs):
                summary.drop(f"matches --drop-regex {drop_regex!r}", where)
                continue
            if do_redact:
                msgs = [{**m, "content": redact(m["content"])} for m in msgs]
            out.append(Conversation(msgs, _key(rec, msgs), where, rec))
        for e in errors:
            why = str(e).split(": (record): ", 1)[-1]
            summary.drop(f"invalid record ({why})", str(e).split(": ")[0])
    return out


def longest(convs: list[Conversation], summary: Summary, dedupe: bool) -> list[Conversation]:
    """One conversation per key (its longest logged version); exact repeats dropped."""
    best: dict[str, Conversation] = {}
    for c in convs:
        old = best.get(c.key)
        if old is None:
            best[c.key] = c
            continue
        keep, lose = (c, old) if len(c.messages) >= len(old.messages) else (old, c)
        best[c.key] = keep
        summary.drop("shorter version of a logged conversation", lose.where)
    out, seen = [], set()
    for c in best.values():
        text = json.dumps(c.messages, sort_keys=True)
        if dedupe and text in seen:
            summary.drop("duplicate conversation", c.where)
            continue
        seen.add(text)
        out.append(c)
    return out


def split_names(convs: list[Conversation], fractions: tuple[float, float, float],
                seed: int) -> dict[str, list[Conversation]]:
    """train/val/test by shuffling conversation keys with `seed` (one key, one split)."""
    keys = sorted({c.key for c in convs})
    random.Random(seed).shuffle(keys)
    n_val, n_test = round(len(keys) * fractions[1]), round(len(keys) * fractions[2])
    where = {k: "val" for k in keys[:n_val]}
    where.update({k: "test" for k in keys[n_val:n_val + n_test]})
    parts: dict[str, list[Conversation]] = {"train": [], "val": [], "test": []}
    for c in convs:
        parts[where.get(c.key, "train")].append(c)
    return parts


def from_logs(paths: list[Path], out: Path, rating_field: str | None = None,
              min_rating: float | None = None, drop_regex: str | None = None,
              dedupe: bool = True, do_redact: bool = True,
              split: tuple[float, float, float] | None = None, seed: int = 0) -> Summary:
    """Convert logs to `{"messages": [...]}` JSONL at `out` (or out.{train,val,test}.jsonl)."""
    summary = Summary()
    convs = longest(collect(paths, summary, rating_field, min_rating, drop_regex, do_redact),
                    summary, dedupe)
    parts = split_names(convs, split, seed) if split else {"": convs}
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, items in parts.items():
        path = out.with_suffix(f".{name}{out.suffix or '.jsonl'}") if name else out
        with open(path, "w", encoding="utf-8") as f:
            for c in items:
                f.write(json.dumps({"messages": c.messages}, ensure_ascii=False) + "\n")
        summary.kept[name or "all"] = len(items)
        summary.files.append(path)
    return summary
