"""torch.compile of the decoder layers (dynamic shapes) against eager, the same LoRA steps.

Run from the repository root with the venv activated, alone on the machine (ratios are
computed within this one invocation):
    python bench/compile.py        # writes results/bench_compile.json

Arms (each its own copy of the model, same seed, same LoRA init, same batches, fp32):
  eager     tunelab's loop as it runs today
  compiled  every decoder layer compiled in place (`nn.Module.compile(dynamic=True)`):
            sequence length and micro-batch size stay symbolic, so length-sorted batches
            of varying shape need no recompile; each layer still gets its own graph (its
            guards differ: measured, 29 recompiles for 30 layers), hence the raised
            recompile limit. The embeddings, final norm and tunelab's
            supervised-positions head stay eager.
The arms take their steps in turn (eager step 1, compiled step 1, ...), so a slowdown of
the machine hits both alike. Printed: each arm's first WARM steps' seconds (the compile
cost is in the compiled arm's), the median s/step of the steps after them, real tokens/s,
the speed ratio, the steps it takes to pay the compile cost back, and both arms' losses
(they should agree to about 4 decimals: same maths, fused).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import emit, machine, viggo  # noqa: E402
from precision import interleaved, lora_copy  # noqa: E402
from train import encoded  # noqa: E402

WARM = 2
"""Steps left out of the medians: the compiled arm compiles (and may specialise once) here."""


def layers(model) -> torch.nn.ModuleList:
    """The decoder layers of a PEFT-wrapped causal LM."""
    return model.get_base_model().model.layers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    arms = {"eager": "fp32", "compiled": "fp32"}
    # Each layer is guarded apart (the recompile log names its KV-cache slot): without this,
    # dynamo stops compiling after 8 graphs and the other layers run eager (measured: 1.01x).
    torch._dynamo.config.recompile_limit = 64
    models = {}
    for name in arms:
        models[name], tok = lora_copy(0)
        if name == "compiled":
            for layer in layers(models[name]):
                layer.compile(dynamic=True)
    data = encoded(tok, viggo().train[: args.steps * args.batch], 256)
    times, losses, tokens = interleaved(models, arms, data, args.steps, args.batch,
                                        tok.pad_token_id or 0, warm=WARM)
    out: dict[str, object] = {"machine": machine(), "steps": args.steps, "batch": args.batch}
    for name in arms:
        out[f"{name}_first_steps_s"] = " ".join(f"{x:.1f}" for x in times[name][:WARM])
        out[f"{name}_s_per_step"] = statistics.median(times[name][WARM:])
        out[f"{name}_tok_per_s"] = tokens / sum(times[name][WARM:])
        out[f"{name}_losses"] = " ".join(f"{x:.4f}" for x in losses[name])
    out["compiled_speedup"] = out["eager_s_per_step"] / out["compiled_s_per_step"]
    saved = out["eager_s_per_step"] - out["compiled_s_per_step"]
    extra = sum(times["compiled"][:WARM]) - sum(times["eager"][:WARM])
    out["compile_extra_s"] = extra
    out["steps_to_pay_back"] = extra / saved if saved > 0 else float("inf")
    out["max_loss_diff"] = max(abs(a - b) for a, b in zip(losses["eager"], losses["compiled"],
                                                          strict=True))
    emit(out)


if __name__ == "__main__":
    main()
