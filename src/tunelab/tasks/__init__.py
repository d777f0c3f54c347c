"""Tasks, looked up by name: TASKS = {"viggo": Viggo, ...}."""

from tunelab import TunelabError
from tunelab.config import TaskConfig
from tunelab.tasks.base import Splits, Task
from tunelab.tasks.jsonl import Jsonl
from tunelab.tasks.viggo import Viggo

TASKS: dict[str, type[Task]] = {"viggo": Viggo, "jsonl": Jsonl}


def get_task(cfg: TaskConfig) -> Task:
    if cfg.name not in TASKS:
        raise TunelabError(f"Unknown task '{cfg.name}'. Available: {', '.join(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["TASKS", "Splits", "Task", "get_task"]
