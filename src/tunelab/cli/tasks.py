"""`tunelab tasks`: the shipped tasks, one line each, or one in full (text or JSON)."""

from __future__ import annotations

import inspect
from dataclasses import asdict

from tunelab.core.ui import out, say


def task_list() -> None:
    from tunelab.core.config import TaskConfig
    from tunelab.tasks import TASKS

    for n, cls in TASKS.items():
        t = cls(TaskConfig(name=n))
        out.print(f"{n:10s} {t.describe()} (primary: {t.primary})", highlight=False, soft_wrap=True)


def _task(name: str):
    from tunelab.core.config import TaskConfig
    from tunelab.tasks import get_task

    return get_task(TaskConfig(name=name))


def _keys(name: str) -> dict[str, dict]:
    from tunelab.core.config import TaskConfig, field_docs

    defaults = asdict(TaskConfig(name=name))
    return {key: {"default": defaults[key], "doc": doc} for key, doc in field_docs(TaskConfig).items()}


def task_json(name: str | None) -> list[dict] | dict:
    """The task list, or one task in full, as data."""
    from tunelab.tasks import TASKS

    if name is None:
        return [{"name": n, "description": t.describe(), "primary": t.primary}
                for n, t in ((n, _task(n)) for n in TASKS)]
    t = _task(name)
    return {"name": name, "description": t.describe(), "instruction": t.instruction,
            "short_instruction": t.short_instruction, "primary": t.primary,
            "metrics": {n: {"higher_is_better": m.higher_is_better} for n, m in t.all_metrics.items()},
            "about": inspect.getdoc(inspect.getmodule(type(t))) or "", "config_keys": _keys(name)}


def show_task(name: str) -> None:
    from tunelab.core.config import RunConfig, field_docs

    t = _task(name)
    say(f"{name}: {t.describe()}")
    say(f"instruction (system prompt):\n{t.instruction}")
    say("prompt: the tokenizer's chat template over [system: instruction, (shots), user: input]; "
        f"fine-tuned methods use the short instruction: {t.short_instruction!r}")
    for n, m in t.all_metrics.items():
        star = " (primary)" if n == t.primary else ""
        say(f"metric {n}: higher_is_better={m.higher_is_better}{star}")
    say(inspect.getdoc(inspect.getmodule(type(t))) or "")
    say("\nconfig keys under `task:` (default in brackets):")
    for key, k in _keys(name).items():
        say(f"  {key} [{k['default']}]: {k['doc']}")
    say("other top-level keys: " + ", ".join(field_docs(RunConfig))
        + " (a commented example: configs/your_data.yaml; `tunelab init FILE` writes one for your file)")
