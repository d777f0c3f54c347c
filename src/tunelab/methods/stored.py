"""A method entry as stored with its run, and read back from a stored run.

Until settings moved onto each method's spec, every method entry was one flat dataclass
holding every method's settings, and stored runs hold that flat layout. New runs store the
same layout (FLAT_V1 filled in, the method's own settings over it, its new settings beside
them), so the report (decide/arms.py fills a stored entry's missing keys from today's
MethodConfig) groups old and new runs of one arm alike; reading one back keeps the
method's own settings only. Old cell keys are run/migrate.py's, which keeps its own copy.
"""

from __future__ import annotations

import dataclasses

from tunelab.core.config import MethodConfig, from_dict, to_dict
from tunelab.methods.base import REGISTRY

FLAT_V1 = {"k": 5, "draw": None, "prompt": None, "chunk_size": 800, "chunk_overlap": 150,
           "budget": 12, "dev_size": 20, "beta": 0.1, "virtual_tokens": 20,
           "teacher": "dynamic_few_shot", "teacher_model": None, "labelled": 100,
           "unlabelled": None, "keep_cut": False}
"""Frozen: the per-method settings of the flat layout, at their defaults (never change it:
stored runs hold these)."""


def as_stored(method: MethodConfig) -> dict:
    """The entry in the flat layout: the keys every method takes, FLAT_V1, its own settings."""
    d = to_dict(method)
    own = d.pop("settings")
    if not isinstance(own, dict):  # pragma: no cover - asdict gives a dict for a dataclass
        own = dataclasses.asdict(own)
    return {**d, **FLAT_V1, **own}


def from_stored(data: dict, where: str = "stored method") -> MethodConfig:
    """A stored entry (flat layout, or a new one) as a MethodConfig holding its method's own
    settings only: the flat layout's other methods' settings are dropped."""
    method = from_dict(MethodConfig, data, where)
    spec = REGISTRY.get(method.name)
    if spec is None or not isinstance(method.settings, dict):
        return method
    own = {k: v for k, v in method.settings.items() if k in spec.names}
    return dataclasses.replace(method, settings=spec.settings_of(dataclasses.replace(method, settings=own)))
