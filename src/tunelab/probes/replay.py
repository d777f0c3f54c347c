"""Replay: general instruction examples mixed into the facts probe's fine-tuning, the usual
remedy for forgetting, so the probe can measure what it buys.

`replay` r is the share of the training mix made of general examples: with n fact
sentences, round(n * r / (1 - r)) examples are drawn (r = 0.5: as many as facts), seeded,
from an Alpaca-style file (JSON/JSONL records with `instruction`, optional `input`,
`output`; default $TUNELAB_DATA_DIR/alpaca/alpaca_5000.json, else the public Alpaca set
through `datasets`). They are trained as chat turns with the loss on the reply only, the
format the probe's questions are asked in.

The draw never includes what measures forgetting: a record whose reply is one of the
held-out general texts (perplexity), or one that holds every content word of a general
question together with its answer ("Name the capital of Norway." -> "... Oslo").
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from tunelab import TunelabError
from tunelab.backends.prompt import messages
from tunelab.data.readers import field_str, read_records
from tunelab.probes.kb import Question
from tunelab.train.loop import Encoded, encode

MAX_PROMPT_CHARS = 500
MAX_REPLY_CHARS = 800
"""Longer records are not drawn: they would be truncated at max_length and cost most of
the training time."""
STOP = frozenset("what which where when who whom whose does many much name called there that this "
                 "with from have into than they their your about most".split())


def default_path() -> Path:
    """alpaca_5000.json from the local mirror, else exported from the public Alpaca set."""
    from tunelab.data.datasource import resolve

    return resolve("alpaca") / "alpaca_5000.json"


def replay_count(n_train: int, fraction: float) -> int:
    """Examples to draw so they make up `fraction` of a mix with n_train others.

    >>> replay_count(50, 0.5), replay_count(50, 0.2), replay_count(50, 0.0)
    (50, 12, 0)
    """
    if not 0 <= fraction < 1:
        raise TunelabError(f"replay: expected a fraction in [0, 1), got {fraction}")
    return round(n_train * fraction / (1 - fraction))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def teaches(text: str, q: Question) -> bool:
    """True if `text` holds every content word of q (4+ letters, not a question word) and
    one of its answers as whole words: it may teach or rehearse that answer.

    >>> q = Question("g1", "What is the capital of Norway?", ["Oslo"])
    >>> teaches("State the capital of Norway. The capital of Norway is Oslo.", q)
    True
    >>> teaches("Norway has a long coast; its capital is large.", q)
    False
    """
    return _teaches(_text_marks(text), _question_marks(q))


def _text_marks(text: str) -> tuple[set[str], str]:
    words = _words(text)
    return set(words), f" {' '.join(words)} "


def _question_marks(q: Question) -> tuple[set[str], list[str]]:
    key = {w for w in _words(q.q) if len(w) >= 4 and w not in STOP}
    return key, [f" {' '.join(_words(a))} " for a in q.answers if _words(a)]


def _teaches(text: tuple[set[str], str], question: tuple[set[str], list[str]]) -> bool:
    (have, joined), (key, answers) = text, question
    return key <= have and any(a in joined for a in answers)


def draw(path: str | Path, n: int, seed: int, held_out: set[str], questions: list[Question]) -> list[dict]:
    """n records drawn without replacement (seeded) among the eligible ones: non-empty
    reply, short enough, not a held-out text, teaching no general question."""
    if n == 0:
        return []
    path = Path(path)
    if not path.is_file():
        raise TunelabError(f"{path}: replay data not found (give --replay-data: JSON/JSONL records "
                           "with instruction, input, output)")
    marks = [_question_marks(q) for q in questions]
    pool = []
    for line, rec in read_records(path):
        where = f"{path}:{line}"
        instruction, reply = field_str(rec, "instruction", where), str(rec.get("output") or "")
        inp = rec.get("input") or ""
        if not isinstance(inp, str):
            raise TunelabError(f"{where}: input: expected a string")
        prompt = f"{instruction}\n\n{inp}" if inp.strip() else instruction
        if not reply.strip() or len(prompt) > MAX_PROMPT_CHARS or len(reply) > MAX_REPLY_CHARS:
            continue
        text = _text_marks(f"{prompt}\n{reply}")
        if reply in held_out or any(_teaches(text, m) for m in marks):
            continue
        pool.append({"id": f"{path.name}:{line}", "prompt": prompt, "output": reply})
    if len(pool) < n:
        raise TunelabError(f"{path}: replay needs {n} examples, only {len(pool)} are eligible "
                           "(lower --replay)")
    return random.Random(seed).sample(pool, n)


def encoded(tok, records: list[dict], max_length: int = 256) -> list[Encoded]:
    """Chat examples (user: instruction and input, assistant: reply), loss on the reply."""
    return [encode(tok, messages("", r["prompt"]), r["output"], max_length, f"replay {r['id']}")
            for r in records]
