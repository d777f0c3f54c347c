"""Shared by the benchmark scripts: environment, the real model, ViGGO examples, peak RSS,
and the result file each script writes.

Not a benchmark itself. Every script sets threads and env the same way, and ends with
`emit`, which prints its figures and writes them to results/bench_<script>.json with the
command, the code version and the machine kind; BENCHMARKS.md's tables are rendered from
those files (python scripts/render_results.py).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

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


RESULTS = Path(__file__).resolve().parent.parent / "results"


def machine() -> str:
    """The machine in words (no model name) and torch's threads."""
    from tunelab.core.provenance import machine_kind

    return f"{machine_kind()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def load(name: str = MODEL):
    from tunelab.backends.local_model import load_model
    from tunelab.core.config import ModelConfig

    return load_model(ModelConfig(name=name))


def viggo():
    """ViGGO splits from $TUNELAB_DATA_DIR (no test sampling: benches pick their own)."""
    from tunelab.core.config import TaskConfig
    from tunelab.tasks import get_task

    return get_task(TaskConfig(name="viggo")).splits()


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t


def emit(figures: dict[str, object], rows: list[dict] | None = None, name: str | None = None) -> Path:
    """The parseable tail every benchmark ends with (one `name: value` per line), and its
    result file results/bench_<script>.json (bench_<name>.json where a script writes
    several): the figures, the per-arm rows if any, and where they came from. Returns the
    file's path."""
    from tunelab.report.json_results import _finite, provenance

    figures = {k: v for k, v in figures.items() if k != "machine"}  # provenance names it
    for k, v in figures.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    script = Path(sys.argv[0]).stem
    name = name or script
    data = {"bench": name, "figures": figures, **({"rows": rows} if rows else {}),
            "provenance": provenance(sys.argv[1:], program=f"python bench/{script}.py")
            | {"threads": torch.get_num_threads()}}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench_{name}.json"
    path.write_text(json.dumps(_finite(data), indent=2, default=str) + "\n")
    print(f"wrote results/{path.name}", file=sys.stderr)
    return path
