"""Where a LoRA training step's time goes, and the fused-AdamW lever for full fine-tuning.

Run from the repository root with the venv activated, alone on the machine:
    python bench/breakdown.py [--steps 2]        # writes results/bench_breakdown.json

Same work as bench/train.py's `tunelab` arm (first 8*(steps+1) ViGGO training examples,
8 per step, LoRA r=16 on all 7 projections, supervised-only LM head, micro-batches):
one warm-up step, then --steps steps under torch.profiler. Prints the top ops by self
CPU time, and the share of the step spent in matrix multiplies (aten::mm/addmm/bmm/
linear's kernels) vs everything else. Then, for full fine-tuning's optimizer, the time of
one AdamW step over all 134.5M parameters as `torch.optim.AdamW(params)` picks it on CPU
(tunelab's train.py uses this) and with fused=True (median of 5 after 1 warm-up;
gradients are random, values unused).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import emit, load, machine  # noqa: E402
from train import setup, tunelab_step  # noqa: E402

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu"}


def profile_lora(steps: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    model, tok, train, _ = setup("lora", 8 * (steps + 1), 256)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()

    def step(items):
        tunelab_step(model, items, tok.pad_token_id)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(train[:8])
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for s in range(1, steps + 1):
            step(train[8 * s: 8 * (s + 1)])
    wall = (time.perf_counter() - t) / steps
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key in MATMUL)
    return {"lora_step_s": wall, "lora_matmul_share": mm / total}


def adamw_step_s(fused: bool | None, params: list[torch.Tensor]) -> float:
    opt = torch.optim.AdamW(params, lr=1e-5, fused=fused)
    times = []
    for _ in range(6):
        t = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    print(machine())
    figures = profile_lora(args.steps)
    model, _ = load()
    params = [p.detach().requires_grad_(True) for p in model.parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    figures["full_adamw_default_s"] = adamw_step_s(None, params)
    figures["full_adamw_fused_s"] = adamw_step_s(True, params)
    figures["fused_speedup"] = figures["full_adamw_default_s"] / figures["full_adamw_fused_s"]
    emit(figures)


if __name__ == "__main__":
    main()
