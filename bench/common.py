"""Shared by the benchmark scripts: environment, the real model, ViGGO examples, peak RSS.

Not a benchmark itself. Every script sets threads and env the same way, so the figures
in BENCHMARKS.md are comparable.
"""

from __future__ import annotations

import os
import platform
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

MODEL = "smollm2-135m"


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**30


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), no GPU")


def load(name: str = MODEL):
    from tunelab.config import ModelConfig
    from tunelab.models import load_model

    return load_model(ModelConfig(name=name))


def viggo():
    """ViGGO splits from $TUNELAB_DATA_DIR (no test sampling: benches pick their own)."""
    from tunelab.config import TaskConfig
    from tunelab.tasks import get_task

    return get_task(TaskConfig(name="viggo")).splits()


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t


def emit(figures: dict[str, object]) -> None:
    """The parseable tail every benchmark ends with: one `name: value` per line."""
    for k, v in figures.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
