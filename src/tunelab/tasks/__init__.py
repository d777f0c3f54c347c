"""Tasks, looked up by name: TASKS = {"viggo": Viggo, ...}."""

from tunelab import TunelabError
from tunelab.core.config import TaskConfig
from tunelab.tasks.base import Splits, Task
from tunelab.tasks.chat import Chat
from tunelab.tasks.classify import Classify
from tunelab.tasks.gsm8k import Gsm8k
from tunelab.tasks.jsonl import Jsonl
from tunelab.tasks.sql import Sql
from tunelab.tasks.tone import Tone
from tunelab.tasks.viggo import Viggo
from tunelab.tasks.viggo_act import ViggoAct

TASKS: dict[str, type[Task]] = {
    "viggo": Viggo, "jsonl": Jsonl, "sql": Sql, "gsm8k": Gsm8k, "tone": Tone, "chat": Chat,
    "classify": Classify, "viggo_act": ViggoAct,
}


def get_task(cfg: TaskConfig) -> Task:
    if cfg.name not in TASKS:
        raise TunelabError(f"Unknown task '{cfg.name}'. Available: {', '.join(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["TASKS", "Splits", "Task", "get_task"]
