"""Peak RSS and throughput of tunelab's LoRA loop vs sequence length and batch size.

Run from the repository root with the venv activated, alone on the machine:
    python bench/memory.py        # writes results/bench_memory.json

Synthetic examples of exactly L tokens (random ids, last 35% supervised, as in ViGGO),
B per optimizer step; LoRA r=16 on all 7 projections, fp32. Each (L, B, budget) runs in
its own process: 1 warm-up step + 1 timed step; peak RSS is the whole process's
(model ~0.54 GB included). budget is train.MICRO_TOKENS, the padded tokens per
micro-batch; "whole" pads the step's B examples into one batch. Activations saved for
backward grow with the tokens of a micro-batch (~1.3 MB per token for this model), so
the budget bounds memory whatever B and L are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, load, machine, peak_rss_gb, rss_gb  # noqa: E402

CASES = [(128, 8, "640"), (256, 8, "640"), (512, 8, "640"), (256, 4, "640"), (256, 16, "640"),
         (256, 8, "256"), (256, 8, "whole")]


def child(length: int, batch: int, budget: str) -> dict:
    from peft import LoraConfig, get_peft_model

    from tunelab.train.loop import Encoded, accumulate, micro_batches

    torch.manual_seed(0)
    model, tok = load()
    loaded = rss_gb()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    cut = int(length * 0.65)
    data = [Encoded(torch.randint(100, 40000, (length,)).tolist(), [i >= cut for i in range(length)], f"{j}")
            for j in range(batch)]
    parts = [data] if budget == "whole" else micro_batches(data, int(budget))
    model.train()
    times = []
    for _ in range(2):
        t = time.perf_counter()
        accumulate(model, parts, tok.pad_token_id)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return {"tokens_per_s": batch * length / times[-1], "peak_rss_gb": peak_rss_gb(), "loaded_gb": loaded}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        L, B, budget = sys.argv[2:5]
        print("RESULT " + json.dumps(child(int(L), int(B), budget)), flush=True)
        return
    figures, rows = {}, []
    print("| seq len | batch | micro-batch budget | peak RSS GB | real tokens/s |")
    print("|---|---|---|---|---|")
    for L, B, budget in CASES:
        out = subprocess.run([sys.executable, __file__, "--child", str(L), str(B), budget],
                             capture_output=True, text=True, check=True)
        r = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
        print(f"| {L} | {B} | {budget} | {r['peak_rss_gb']:.2f} | {r['tokens_per_s']:.0f} |", flush=True)
        rows.append({"seq_len": L, "batch": B, "micro_batch_budget": budget,
                     "peak_rss_gb": r["peak_rss_gb"], "tokens_per_s": r["tokens_per_s"]})
        figures |= {f"L{L}_B{B}_{budget}_peak_rss_gb": r["peak_rss_gb"],
                    f"L{L}_B{B}_{budget}_tokens_per_s": r["tokens_per_s"]}
    print(f"machine: {machine()}; model loaded: {r['loaded_gb']:.2f} GB RSS")
    emit(figures | {"model_loaded_gb": r["loaded_gb"]}, rows)


if __name__ == "__main__":
    main()
