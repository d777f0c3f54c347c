"""Disk caches: computed once, and never left half-written."""

from __future__ import annotations

import os

import pytest

from tunelab.core import cache


def test_cached_json_computes_once(tmp_path):
    calls = []
    path = tmp_path / "c" / f"{cache.digest(['model', 3])}.json"
    for _ in range(2):
        assert cache.cached_json(path, lambda: calls.append(1) or ["a", "b"]) == ["a", "b"]
    assert calls == [1]


def test_a_write_that_fails_leaves_no_file(tmp_path, monkeypatch):
    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        cache.write_atomic(tmp_path / "x.json", "[1, 2]")
    assert list(tmp_path.iterdir()) == []


def test_cell_keys_and_probe_runs_hash_through_the_one_digest():
    """Cell keys (run/keys.py) and probes.key call cache.digest; its bytes are the ones each
    hashed with its own copy before (sorted JSON, non-ASCII escaped), so no stored key or
    cache file changes."""
    import hashlib
    import json
    from dataclasses import asdict, dataclass

    from tunelab.probes import key

    @dataclass
    class Settings:
        model: str = "smollm2-135m"
        seed: int = 0

    parts = {"b": "Roméo ✓ \ud800", "a": [1, 2.5, None]}
    before = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert cache.digest(parts) == before
    s = Settings()
    blob = json.dumps(["facts", "base", asdict(s)], sort_keys=True, default=str)
    assert key("facts", "base", s) == hashlib.sha256(blob.encode()).hexdigest()[:16]
