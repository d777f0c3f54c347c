"""Disk caches keyed by a content hash, written atomically.

Every cache tunelab keeps (the DPO model's own answers, paraphrases, embeddings, passage
indexes) names its files by `digest` of what the content depends on, and writes them
with `write_atomic`: a crash or a second process never leaves a half-written file that
a later run would read as the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def digest(parts, n: int = 16) -> str:
    """Short sha256 of a JSON-able value (dict keys sorted, so order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place (os.replace is
    atomic on one file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_json(path: Path, compute: Callable[[], object]):
    """The JSON value stored at `path`, or `compute()` stored there first."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    write_atomic(path, json.dumps(value, ensure_ascii=False))
    return value
