"""Training precision on this CPU: fp32 against bf16 autocast, the same LoRA steps.

Run from the repository root with the venv activated, alone on the machine (ratios are
computed within this one invocation):
    python bench/precision.py        # writes results/bench_precision.json

Arms (each its own copy of the model, same seed, same LoRA init, same batches):
  fp32      tunelab's loop as it runs with train.precision: fp32
  bf16      the same steps under torch.autocast(cpu, bfloat16) (train.precision: bf16);
            master weights, optimizer state and the loss stay fp32
The arms take their steps in turn (fp32 step 1, bf16 step 1, fp32 step 2, ...), so a
slowdown of the machine hits both alike. The first step of each arm is warm-up. Printed:
median s/step, real tokens/s, the speed ratio, every step's training loss, held-out loss
after training (the same 16 validation examples), and the start-up check's own decision
(tunelab.train.precision.choose) with its matmul figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import emit, load, machine, viggo  # noqa: E402
from train import encoded  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_copy(seed: int):
    from peft import LoraConfig, get_peft_model

    model, tok = load()
    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                             target_modules=TARGETS, task_type="CAUSAL_LM"))
    return model, tok


def interleaved(models: dict, precisions: dict, data: list, steps: int, batch: int, pad: int,
                warm: int = 1) -> tuple[dict, dict, int]:
    """The same LoRA steps on every arm, taken in turn (arm 1 step 1, arm 2 step 1, ...), so
    a slowdown of the machine hits all alike: each arm's seconds and loss per step, and the
    real tokens of the steps after the first `warm`."""
    from tunelab.train.loop import accumulate, micro_batches

    opts = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3,
                                    fused=True) for name, m in models.items()}
    times = {n: [] for n in models}
    losses = {n: [] for n in models}
    tokens = 0
    for step in range(steps):
        rows = data[step * batch:(step + 1) * batch]
        for name, m in models.items():
            m.train()
            t = time.perf_counter()
            loss, _, n_tok = accumulate(m, micro_batches(rows, 640), pad,
                                        precision=precisions[name])
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            times[name].append(time.perf_counter() - t)
            losses[name].append(loss)
        tokens += n_tok if step >= warm else 0
    return times, losses, tokens


def main() -> None:
    from tunelab.train.loop import Shard, validation_loss
    from tunelab.train.precision import autocast, choose

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    decision = choose()
    arms = {"fp32": "fp32", "bf16": "bf16"}
    models = {}
    for name in arms:
        models[name], tok = lora_copy(0)
    splits = viggo()
    data = encoded(tok, splits.train[: args.steps * args.batch], 256)
    held = encoded(tok, splits.validation[:16], 256)
    pad = tok.pad_token_id or 0
    times, losses, tokens = interleaved(models, arms, data, args.steps, args.batch, pad)
    out: dict[str, object] = {"machine": machine(), "decision": decision.precision,
                              "decision_reason": decision.reason}
    for name in arms:
        models[name].eval()
        with torch.no_grad(), autocast(arms[name]):
            total, n = validation_loss(Shard(models[name]), held, pad, 640)
        med = statistics.median(times[name][1:])
        out[f"{name}_s_per_step"] = med
        out[f"{name}_tok_per_s"] = tokens / sum(times[name][1:])
        out[f"{name}_heldout_loss"] = total / n
        out[f"{name}_losses"] = " ".join(f"{x:.4f}" for x in losses[name])
    out["bf16_speedup"] = out["fp32_s_per_step"] / out["bf16_s_per_step"]
    out["heldout_rel_diff"] = abs(out["bf16_heldout_loss"] / out["fp32_heldout_loss"] - 1)
    emit(out)


if __name__ == "__main__":
    main()
