"""Readers for JSONL / JSON / CSV training data, record formats, validation and splits.

Every problem is reported as `file:line: field: problem` so a user can open the file at
the right place; nothing here prints or exits, the CLI does.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import TunelabError


class DataError(TunelabError):
    """A bad record: the message names file, line and field."""


class UnsupportedData(DataError):
    """A file tunelab cannot train on yet (tool calls): raised at its first such record,
    even by lenient readers, so `data check` and `run` refuse the file in one line."""


@dataclass
class Example:
    input: str
    target: str
    id: str = ""
    meta: dict = field(default_factory=dict)


def read_records(path: str | Path, errors: list[DataError] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) from .jsonl, .json (array) or .csv files.

    With an `errors` list, a bad record is appended there and skipped instead of raised
    (`tunelab data check` reports them all); file-level problems always raise.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _read_csv(path)
    elif suffix == ".json":
        yield from _read_json_array(path, errors)
    else:
        yield from _read_jsonl(path, errors)


def _bad(err: DataError, errors: list[DataError] | None) -> None:
    if errors is None:
        raise err
    errors.append(err)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: (record): not valid UTF-8") from None


def _loads(text: str) -> object:
    """json.loads, with nesting too deep for Python reported like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _read_jsonl(path: Path, errors=None) -> Iterator[tuple[int, dict]]:
    # split on \n only: str.splitlines() would also split inside a JSON string on \x1c,
    # \u2028 and friends and shift every line number after it.
    for n, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = _loads(line)
        except json.JSONDecodeError as e:
            _bad(DataError(f"{path}:{n}: (record): invalid JSON: {e.msg}"), errors)
            continue
        if not isinstance(rec, dict):
            _bad(DataError(f"{path}:{n}: (record): expected a JSON object, got {type(rec).__name__}"),
                 errors)
            continue
        yield n, rec


def _read_json_array(path: Path, errors=None) -> Iterator[tuple[int, dict]]:
    text = _read_text(path)
    try:
        data = _loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: (record): invalid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}:1: (record): expected a JSON array of objects")
    for line, rec in zip(_element_lines(text), data, strict=True):
        if not isinstance(rec, dict):
            _bad(DataError(f"{path}:{line}: (record): expected an object"), errors)
            continue
        yield line, rec


_SPACE = re.compile(r"[ \t\n\r]*")


def _element_lines(text: str) -> Iterator[int]:
    r"""The line on which each element of a valid JSON array starts.

    >>> list(_element_lines('[{"a": 1},\n {"a": 2}, 3,\n\n 4]'))
    [1, 2, 2, 4]
    """
    decoder = json.JSONDecoder()
    pos = _SPACE.match(text).end() + 1  # past the '['
    line = 1 + text.count("\n", 0, pos)
    while True:
        start = _SPACE.match(text, pos).end()
        if text[start] == "]":
            return
        line += text.count("\n", pos, start)
        yield line
        _, end = decoder.raw_decode(text, start)
        line += text.count("\n", start, end)
        pos = _SPACE.match(text, end).end() + 1  # past the ',' (or the closing ']')
        line += text.count("\n", end, pos)
        if text[pos - 1] == "]":
            return


def _read_csv(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
        for rec in reader:
            if None in rec:
                raise DataError(f"{path}:{reader.line_num}: (record): more fields than the header")
            yield reader.line_num, rec
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: (record): bad CSV: {e}") from None


def field_str(rec: dict, name: str, where: str, allow_empty: bool = False) -> str:
    """The string field `name` of `rec`, or a DataError naming where and what is wrong."""
    if name not in rec:
        raise DataError(f"{where}: {name}: missing field")
    value = rec[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: {name}: expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: {name}: empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{where}: {name}: not valid Unicode (lone surrogate escape)") from None
    return value


ROLES = ("system", "user", "assistant", "tool")


def _tool_field(rec: dict) -> str:
    """The first field of an OpenAI record that holds tools, a tool call or a tool result."""
    for key in ("tools", "functions"):
        if rec.get(key):
            return key
    msgs = rec.get("messages")
    for i, m in enumerate(msgs if isinstance(msgs, list) else []):
        if not isinstance(m, dict):
            continue
        for key in ("tool_calls", "function_call"):
            if m.get(key):
                return f"messages[{i}].{key}"
        if m.get("role") == "tool":
            return f"messages[{i}].role"
    return ""


def refuse_tool_calls(rec: dict, where: str) -> None:
    """UnsupportedData for a record with tools, tool calls or tool results: read as plain chat
    its calls would vanish and its targets be empty, so the whole file is refused."""
    found = _tool_field(rec)
    if found:
        raise UnsupportedData(f"{where}: {found}: this file has tool calls; tool-call fine-tuning "
                              "is not supported yet (remove the tools/tool_calls records)")


def check_turns(msgs: list[dict], where: str, field: str = "messages") -> None:
    """Known roles, a user turn before the first assistant turn, an assistant turn last."""
    for i, m in enumerate(msgs):
        if m["role"] not in ROLES:
            raise DataError(f"{where}: {field}[{i}].role: unknown role '{m['role'][:40]}'. "
                            f"Available: {', '.join(ROLES)}")
    roles = [m["role"] for m in msgs]
    if "assistant" in roles and "user" not in roles[:roles.index("assistant")]:
        raise DataError(f"{where}: {field}[{roles.index('assistant')}].role: assistant turn "
                        "before any user turn")
    if roles[-1] != "assistant":
        raise DataError(f"{where}: {field}: last message must be from the assistant")


def _messages(rec: dict, where: str) -> list[dict]:
    refuse_tool_calls(rec, where)
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: messages: expected a non-empty list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise DataError(f"{where}: messages[{i}]: expected an object")
        field_str(m, "role", f"{where}: messages[{i}]")
        field_str(m, "content", f"{where}: messages[{i}]", allow_empty=True)
    check_turns(msgs, where)
    return msgs


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system"}


def _sharegpt(rec: dict, where: str) -> list[dict]:
    turns = rec.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: conversations: expected a non-empty list")
    msgs = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise DataError(f"{where}: conversations[{i}]: expected an object")
        who = field_str(t, "from", f"{where}: conversations[{i}]")
        if who.lower() not in SHAREGPT_ROLES:
            raise DataError(f"{where}: conversations[{i}].from: unknown speaker '{who[:40]}'. "
                            f"Available: {', '.join(SHAREGPT_ROLES)}")
        value = field_str(t, "value", f"{where}: conversations[{i}]", allow_empty=True)
        msgs.append({"role": SHAREGPT_ROLES[who.lower()], "content": value})
    check_turns(msgs, where, "conversations")
    return msgs


def _from_prompt_completion(rec: dict, where: str) -> Example:
    return Example(field_str(rec, "prompt", where), field_str(rec, "completion", where))


def _from_alpaca(rec: dict, where: str) -> Example:
    instruction = field_str(rec, "instruction", where)
    extra = field_str(rec, "input", where, allow_empty=True) if "input" in rec else ""
    text = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return Example(text, field_str(rec, "output", where))


def _from_messages(rec: dict, where: str) -> Example:
    msgs = _messages(rec, where)
    context = "\n".join(f"{m['role']}: {m['content']}" for m in msgs[:-1])
    return Example(context, msgs[-1]["content"], meta={"messages": msgs})


def _from_sharegpt(rec: dict, where: str) -> Example:
    return _from_messages({"messages": _sharegpt(rec, where)}, where)


def _from_label(rec: dict, where: str) -> Example:
    label = rec.get("label")
    if isinstance(label, int) and not isinstance(label, bool):
        rec = {**rec, "label": str(label)}
    return Example(field_str(rec, "text", where), field_str(rec, "label", where))


FORMATS = {
    "prompt_completion": (("prompt", "completion"), _from_prompt_completion),
    "alpaca": (("instruction", "output"), _from_alpaca),
    "messages": (("messages",), _from_messages),
    "sharegpt": (("conversations",), _from_sharegpt),
    "label": (("text", "label"), _from_label),
}


def detect_format(rec: dict, where: str) -> str:
    for name, (keys, _) in FORMATS.items():
        if all(k in rec for k in keys):
            return name
    wanted = "; ".join(f"{n}: {', '.join(k)}" for n, (k, _) in FORMATS.items())
    raise DataError(f"{where}: (record): unknown format, expected fields of one of: {wanted}")


def read_examples(path: str | Path, fmt: str = "auto",
                  errors: list[DataError] | None = None) -> list[Example]:
    """Read a file of prompt/completion, Alpaca, OpenAI-messages, ShareGPT or text/label
    records. With an `errors` list, bad records are collected there and skipped."""
    if fmt != "auto" and fmt not in FORMATS:
        raise TunelabError(f"Unknown format '{fmt}'. Available: auto, {', '.join(FORMATS)}")
    out = []
    on_line: Counter = Counter()  # a one-line JSON array puts every record on line 1
    for line, rec in read_records(path, errors):
        where = f"{path}:{line}"
        try:
            name = detect_format(rec, where) if fmt == "auto" else fmt
            ex = FORMATS[name][1](rec, where)
        except UnsupportedData:
            raise
        except DataError as e:
            _bad(e, errors)
            continue
        on_line[line] += 1  # ids must be unique: arms pair and average scores by id
        at = f"{Path(path).name}:{line}" + (f".{on_line[line]}" if on_line[line] > 1 else "")
        ex.id = str(rec.get("id", at))
        ex.meta["line"] = line
        if "gold_passages" in rec:  # for retrieval recall (rag)
            gold = rec["gold_passages"]
            if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
                raise DataError(f"{where}: gold_passages: expected a list of passage ids")
            ex.meta["gold_passages"] = gold
        out.append(ex)
    if not out and errors is None:
        raise DataError(f"{path}: no records")
    return out


def split(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Deterministically split off `fraction` of the examples: (rest, held_out)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n = max(1, round(len(examples) * fraction))
    held = sorted(order[:n])
    rest = sorted(order[n:])
    return [examples[i] for i in rest], [examples[i] for i in held]


def sample(examples: list, n: int, seed: int) -> list:
    """A fixed, seeded subset of size n (all if n <= 0 or n >= len). Nested across n."""
    if n <= 0 or n >= len(examples):
        return list(examples)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in order[:n]]


def normalize_text(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form used for leakage checks.

    >>> normalize_text("  Hello,   World! ")
    'hello world'
    """
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())

