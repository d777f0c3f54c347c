"""Readers under fuzzing: malformed files yield valid records or one clean TunelabError.

Hypothesis builds files from pieces real data goes wrong with: truncated JSON, wrong
types, huge strings, deep nesting, invalid UTF-8, BOMs, CRLF line ends, empty files.
"""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelab import TunelabError
from tunelab.core.config import TaskConfig
from tunelab.data.check import check
from tunelab.data.from_logs import from_logs
from tunelab.data.readers import FORMATS, Example, read_examples, read_records
from tunelab.tasks import TASKS

KEYS = ["prompt", "completion", "instruction", "input", "output", "messages", "conversations",
        "text", "label", "question", "answer", "context", "mr", "ref", "role", "content", "from",
        "value", "choices", "id"]
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                   st.text(max_size=20), st.just("x" * 100_000), st.just("\ud800"))
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=8)
record = st.dictionaries(st.sampled_from(KEYS), value, max_size=5)
GOOD = [b'{"prompt": "a", "completion": "b"}', b'{"text": "t", "label": "l"}',
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
        b'{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}']


@st.composite
def line(draw) -> bytes:
    kind = draw(st.sampled_from(["record", "good", "truncated", "bytes", "deep", "scalar"]))
    if kind == "record":
        return json.dumps(draw(record)).encode("utf-8", "surrogatepass")
    if kind == "good":
        return draw(st.sampled_from(GOOD))
    if kind == "truncated":
        text = draw(st.sampled_from(GOOD))
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "deep":
        return b"[" * 100_000
    if kind == "scalar":
        return json.dumps(draw(scalar)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=40))


@st.composite
def file_bytes(draw) -> bytes:
    lines = draw(st.lists(line(), max_size=6))
    sep = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    body = sep.join(lines)
    if draw(st.booleans()) and lines:  # a JSON array of the same pieces
        body = b"[" + b",".join(lines) + b"]"
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + body


READERS = [
    lambda p: list(read_records(p)),
    *[lambda p, f=f: read_examples(p, f) for f in ["auto", *FORMATS]],
    *[lambda p, n=n: TASKS[n](TaskConfig(name=n)).read_file(p) for n in TASKS],
    lambda p: check(p, p),
    lambda p: from_logs([p], p.with_name("out.jsonl")),
]


def _valid(result) -> None:
    items = result if isinstance(result, list) else [result]
    for it in items:
        if isinstance(it, Example):
            assert isinstance(it.input, str) and isinstance(it.target, str)
            it.input.encode("utf-8")  # no lone surrogates get through


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=file_bytes(), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_every_reader_gives_records_or_a_clean_error(tmp_path_factory, data, suffix):
    path = Path(tmp_path_factory.mktemp("fuzz")) / f"data{suffix}"
    path.write_bytes(data)
    for read in READERS:
        try:
            _valid(read(path))
        except TunelabError as e:
            assert str(e).strip() and "\n" not in str(e).strip()
