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
