"""Typed config schema helpers: a YAML mapping coerced onto a dataclass, one line naming
the key for anything it cannot hold, and the field docstrings the docs are built from."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing

from tunelab import TunelabError


def _convert(tp, value, where: str):
    """Coerce a YAML value to the annotated type, or fail naming the key."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:  # checked by its owner (a method's settings: methods.load_config)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TunelabError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for a in args:
            try:
                return _convert(a, value, where)
            except TunelabError:
                continue
        raise TunelabError(f"{where}: {value!r} is not a valid {tp}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value]
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise TunelabError(f"{where}: expected a mapping")
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise TunelabError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, data: dict, where: str = "config"):
    """Build dataclass `cls` from a dict, rejecting unknown keys. A dataclass's own check
    (__post_init__) raises naming its field first; `where` is put before it. A class with
    OTHER_KEYS (a field name) takes the keys it lacks into that mapping instead: a method
    entry's own settings, which the method's spec checks (the registry sits above config)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    other = getattr(cls, "OTHER_KEYS", None)
    if other is not None and any(k not in names for k in data):
        rest = {k: v for k, v in data.items() if k not in names}
        data = {**{k: v for k, v in data.items() if k in names}, other: {**data.get(other, {}), **rest}}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise TunelabError(
            f"{where}: unknown key '{unknown[0]}'. Available: {', '.join(names)}"
        )
    values = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except TunelabError as e:
        raise TunelabError(f"{where}.{e}") from None


def field_docs(cls) -> dict[str, str]:
    """Each field of dataclass `cls` with its docstring (the string under it in the class
    body; "" if none), in order: the help text of `tunelab tasks NAME`.

    >>> from tunelab.core.config import EvalConfig
    >>> field_docs(EvalConfig)["batch_size"]
    'Prompts per generation batch.'
    """
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                    and isinstance(after.value.value, str):
                doc = " ".join(after.value.value.split())
            docs[node.target.id] = doc
    return docs


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
