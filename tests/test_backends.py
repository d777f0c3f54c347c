"""Backends behind one interface (backends/base.Backend): every backend in the lookup
implements all of it, and a model object finds its backend without a type test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import torch

from tunelab.backends.base import BACKEND_ATTR, Backend
from tunelab.backends.openai_api import ApiModel
from tunelab.backends.registry import BACKENDS, backend_of

SRC = Path(__file__).parent.parent / "src" / "tunelab"


def members(cls) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(f) for n, f in vars(cls).items()
            if inspect.isfunction(f) and not n.startswith("_")}


def test_every_backend_implements_the_whole_interface():
    wanted = members(Backend)
    assert {"load", "generate", "count_tokens", "device", "cost", "prices", "identity"} <= set(wanted)
    for name, b in BACKENDS.items():
        assert b.name == name and isinstance(b.is_local, bool)
        for fn, sig in wanted.items():
            assert list(inspect.signature(getattr(b, fn)).parameters) == list(sig.parameters)[1:], (name, fn)


def test_a_model_object_names_its_backend():
    assert backend_of(torch.nn.Linear(2, 2)) is BACKENDS["hf"]  # any torch module: a local model
    api = object.__new__(ApiModel)  # no endpoint needed to ask which backend it is
    assert getattr(api, BACKEND_ATTR) == "openai" and backend_of(api) is BACKENDS["openai"]
    assert BACKENDS["hf"].is_local and not BACKENDS["openai"].is_local


def test_no_module_dispatches_on_the_api_models_type():
    """The API model is asked through its backend only: outside backends/, nothing tests
    for it or imports it."""
    found = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.parent.name != "backends"
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bApiModel\b", line)]
    assert found == []
