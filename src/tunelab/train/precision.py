"""Which precision training runs in, decided by measuring this machine, never by habit.

CPUs differ by hundreds of times in bf16: an Intel Xeon with AMX multiplies bf16 matrices
2-5x faster than fp32, an AVX2 EPYC without bf16 units ~500x slower. `train.precision:
auto` (opt-in; the default is fp32, BENCHMARKS.md section 7) times a forward and backward
through a model-shaped block in both and picks bf16 autocast only where it is clearly
faster; the training loop then also checks, on the validation examples before the first
step, that the bf16 loss equals the fp32 one (`loss_agrees`) and falls back to fp32 where
it drifts. The decision and its figures are stored with the
run. bf16 here is autocast: master weights, optimizer state and the loss stay fp32, and
evaluation always runs the fp32 weights.

On a CUDA card nothing is timed (the CPU checks above say nothing about a GPU): auto takes
bf16 where the card has native bf16 (compute capability 8.0+), still checks the loss on
the validation examples, and training then also holds the frozen weights in bf16
(device.frozen_in). On Apple MPS auto stays fp32 (not measured here).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tunelab.core.cache import cached_json, digest
from tunelab.core.config import PRECISIONS

__all__ = ["PRECISIONS", "Decision", "autocast", "choose", "loss_agrees"]

MIN_SPEEDUP = 1.3
"""auto picks bf16 only when a model-shaped block runs at least this much faster in it:
a LoRA step is not all matmul (BENCHMARKS.md), so a smaller gain would not survive."""

MAX_LOSS_DRIFT = 0.01
"""auto keeps bf16 only if its validation loss is within this fraction of fp32's."""


@dataclass
class Decision:
    precision: str
    """fp32 or bf16 (autocast)."""
    reason: str
    fp32_ms: float | None = None
    bf16_ms: float | None = None
    """The start-up check's best times of the block (milliseconds)."""


def _block_seconds(precision: str, hidden: int, inner: int, rows: int = 512, reps: int = 3) -> float:
    """Best time of a forward and backward through a model-shaped MLP block (the bulk of a
    decoder layer's matmuls), frozen weights, in this precision: what a LoRA step does,
    casts included, unlike a bare square matmul."""
    up, down = torch.nn.Linear(hidden, inner, bias=False), torch.nn.Linear(inner, hidden, bias=False)
    up.requires_grad_(False)
    down.requires_grad_(False)
    x = torch.randn(rows, hidden, requires_grad=True)
    best = float("inf")
    for _ in range(reps + 1):  # the first is warm-up (kernel selection, first touch)
        t = time.perf_counter()
        with torch.enable_grad(), autocast(precision):  # callers may be under no_grad
            y = down(torch.nn.functional.silu(up(x)))
            y.float().sum().backward()
        best = min(best, time.perf_counter() - t)
    return best


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _measured(hidden: int, inner: int) -> Decision:
    """The decision for this machine: measured the first time, then read from the cache,
    so every run and every resumed grid on one machine trains in the same precision (a
    timing taken while the machine is busy must not flip it from one cell to the next)."""
    from tunelab.backends.local_model import cache_root

    key = f"{_cpu()}|{os.cpu_count()}|torch {torch.__version__}|{hidden}x{inner}"
    path = cache_root() / "precision" / f"{digest(key)}.json"

    def measure() -> dict:
        d = _measure(hidden, inner)
        d.reason += f" (measured {time.strftime('%Y-%m-%d')} on {key}; cached in {path})"
        return asdict(d)

    return Decision(**cached_json(path, measure))  # written atomically: read whole or not at all


def _measure(hidden: int, inner: int) -> Decision:
    try:
        # A small probe first: where bf16 is emulated (~500x slower) the full-size test
        # would take a minute; there the small one already says no.
        if _block_seconds("bf16", 64, 128, 64, 1) > 20 * _block_seconds("fp32", 64, 128, 64, 1):
            return Decision("fp32", "bf16 much slower than fp32 on this CPU (small probe)")
        fp32, bf16 = _block_seconds("fp32", hidden, inner), _block_seconds("bf16", hidden, inner)
    except RuntimeError as e:  # no bf16 kernel at all
        return Decision("fp32", f"bf16 unavailable ({e})")
    d = Decision("fp32", "", round(fp32 * 1e3, 2), round(bf16 * 1e3, 2))
    ratio = fp32 / bf16
    if ratio >= MIN_SPEEDUP:
        d.precision, d.reason = "bf16", f"bf16 block {ratio:.2f}x faster than fp32 on this CPU"
    else:
        d.reason = f"bf16 block only {ratio:.2f}x fp32 on this CPU"
    return d


def block_shape(model) -> tuple[int, int]:
    """(hidden, inner) of the linear layer at the parameter-weighted median, where most of
    the model's matmul work is (not a LoRA adapter's small matrices), for the start-up check.

    >>> lin = torch.nn.Linear
    >>> block_shape(torch.nn.Sequential(lin(8, 32), lin(32, 8), *[lin(8, 2) for _ in range(9)]))
    (8, 32)
    """
    lins = sorted((m for m in model.modules() if isinstance(m, torch.nn.Linear)),
                  key=lambda m: m.weight.numel())
    total, seen = sum(m.weight.numel() for m in lins), 0
    for m in lins:
        seen += m.weight.numel()
        if seen * 2 >= total:
            return min(m.in_features, m.out_features), max(m.in_features, m.out_features)
    return 576, 1536  # no linear layer: SmolLM2-135M's MLP


def choose(requested: str = "auto", hidden: int = 576, inner: int = 1536,
           device: torch.device | None = None) -> Decision:
    """The precision to train in on `device` (the model's; None: the CPU). auto on CPU:
    measured once per process and model shape (hidden, intermediate size; default
    SmolLM2-135M's), well under a second either way; on CUDA: the card's bf16 support."""
    from tunelab.backends.device import cuda_bf16, describe

    if requested != "auto":
        return Decision(requested, "set in the config")
    device = device or torch.device("cpu")
    if device.type == "cuda":
        cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
        if cuda_bf16(device):
            return Decision("bf16", f"{describe(device)} has native bf16 (compute capability {cap})")
        return Decision("fp32", f"{describe(device)} has no native bf16 (compute capability {cap})")
    if device.type != "cpu":
        return Decision("fp32", f"bf16 not measured on {device.type}; fp32")
    return _measured(hidden, inner)


def loss_agrees(fp32_loss: float, bf16_loss: float) -> bool:
    """Whether bf16 autocast gives the fp32 loss, within MAX_LOSS_DRIFT.

    >>> loss_agrees(2.000, 2.010), loss_agrees(2.000, 2.100)
    (True, False)
    """
    return abs(bf16_loss - fp32_loss) <= MAX_LOSS_DRIFT * abs(fp32_loss)


def autocast(precision: str, at=None):
    """The context a forward (and its backward) runs in for this precision, on the device
    of `at` (a model, tensor or device; None: CUDA where present, else the CPU)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    from tunelab.backends.device import autocast_type

    return torch.autocast(autocast_type(at), dtype=torch.bfloat16)
