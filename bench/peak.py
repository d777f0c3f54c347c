"""Measured fp32 matmul peak of this CPU, and tunelab's LoRA training as a fraction of it.

Run from the repository root with the venv activated, alone on the machine:
    python bench/peak.py        # writes results/bench_peak.json

Peak: C = A @ B with 2048x2048 fp32 matrices (2 * 2048^3 FLOP), 30 repetitions after 3
warm-up ones, on torch's default threads (2 here): median and best GFLOP/s.
Useful training FLOP/s (the issue's stated formula): N = all model parameters,
  LoRA: 4 * N FLOP per real token (forward 2N + input gradients 2N; frozen weights get
        no weight gradient, adapter FLOPs are <2% and not counted),
  full: 6 * N FLOP per real token (forward 2N + input gradients 2N + weight gradients 2N),
times real tokens/s of tunelab's loop, measured here on 4 timed steps (+1 warm-up).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, machine  # noqa: E402
from train import child  # noqa: E402


def matmul_gflops(n: int = 2048, reps: int = 30) -> list[float]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        out.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return out


def main() -> None:
    rates = matmul_gflops()
    median, best = statistics.median(rates), max(rates)
    from common import load

    n_params = sum(p.numel() for p in load()[0].parameters())
    figures = {"matmul_median_gflops": median, "matmul_best_gflops": best, "model_params": n_params}
    for method, per_token in (("lora", 4), ("full", 6)):
        r = child(method, "tunelab", steps=5, batch=8, max_length=256)
        useful = per_token * n_params * r["tokens_per_s"] / 1e9
        figures |= {f"{method}_tokens_per_s": r["tokens_per_s"], f"{method}_useful_gflops": useful,
                    f"{method}_fraction_of_median_peak": useful / median}
    print(f"machine: {machine()}")
    emit(figures)


if __name__ == "__main__":
    main()
