"""Training throughput: tunelab's loop vs TRL SFTTrainer vs a plain PyTorch loop.

Run from the repository root with the venv activated, alone on the machine (ratios are
computed within this one invocation):
    python bench/train.py        # writes results/bench_train.json

Same work in every arm: SmolLM2-135M-Instruct fp32; the first STEPS*BATCH ViGGO training
examples in file order (no shuffling), BATCH per optimizer step, tokenised once by
tunelab's `encode` (completion-only loss); LoRA r=16, alpha=32, dropout 0 on all 7
linear projections (or full fine-tuning); AdamW (torch), constant lr, no weight decay.
Each arm runs in its own process, so its peak RSS is its own. The first step is warm-up
and excluded from step time and tokens/s. Real tokens are non-padding tokens.

Arms:
  tunelab   tunelab.train.loop.accumulate (supervised-only LM head, length-sorted micro-batches)
  tunelab_onebatch  the same without micro-batching (the step's 8 examples padded together)
  plain     model(input_ids, attention_mask, labels=...) on a dynamically padded batch
  trl       SFTTrainer, bf16=False, its other defaults (gradient checkpointing on)
  trl_nogc  the same with gradient_checkpointing=False
Afterwards every trained model is scored on the same 16 held-out validation examples
(mean completion-token cross-entropy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import emit, load, machine, peak_rss_gb, rss_gb, viggo  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LR = {"lora": 1e-3, "full": 5e-5}
RUNS = {
    "lora": ["tunelab", "plain", "trl", "trl_nogc", "tunelab_onebatch"],
    "full": ["tunelab", "plain", "trl"],
}


def encoded(tok, examples, max_length):
    from tunelab.backends.prompt import messages
    from tunelab.tasks.viggo import SHORT_INSTRUCTION
    from tunelab.train.loop import encode

    return [encode(tok, messages(SHORT_INSTRUCTION, e.input), e.target, max_length, e.id) for e in examples]


def setup(method: str, n_train: int, max_length: int):
    torch.manual_seed(0)
    model, tok = load()
    splits = viggo()
    train = encoded(tok, splits.train[:n_train], max_length)
    held = encoded(tok, splits.validation[:16], max_length)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                         task_type="CAUSAL_LM")
        model = get_peft_model(model, cfg)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    return model, tok, train, held


def heldout_loss(model, tok, held) -> float:
    from tunelab.train.loop import collate, completion_loss_sum

    model.eval()
    ids, att, sup = collate(held, tok.pad_token_id)
    with torch.no_grad():
        return (completion_loss_sum(model, ids, att, sup) / sup[:, 1:].sum()).item()


def loop(model, tok, train, batch, lr, step_fn) -> tuple[list[float], list[float]]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    times, losses = [], []
    for s in range(0, len(train), batch):
        t = time.perf_counter()
        losses.append(step_fn(model, train[s : s + batch], tok.pad_token_id))
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return times, losses


def tunelab_step(model, items, pad_id) -> float:
    from tunelab.train.loop import accumulate, micro_batches

    return accumulate(model, micro_batches(items), pad_id)[0]


def onebatch_step(model, items, pad_id) -> float:
    from tunelab.train.loop import accumulate

    return accumulate(model, [items], pad_id)[0]


def plain_step(model, items, pad_id) -> float:
    from tunelab.train.loop import collate

    ids, att, sup = collate(items, pad_id)
    labels = torch.where(sup, ids, torch.full_like(ids, -100))
    loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
    loss.backward()
    return loss.item()


def trl_train(model, tok, train, batch, lr, gc: bool) -> tuple[list[float], list[float]]:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Fixed(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):  # same order as the other arms
            return SequentialSampler(train_dataset or self.train_dataset)

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []
            self.losses: list[float] = []

        def on_train_begin(self, *a, **k):
            self.ends.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            self.ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    ds = Dataset.from_list([{"input_ids": e.ids, "completion_mask": [int(x) for x in e.supervised]}
                            for e in train])
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out, per_device_train_batch_size=batch, max_steps=len(train) // batch,
            learning_rate=lr, lr_scheduler_type="constant", optim="adamw_torch", weight_decay=0.0,
            bf16=False, completion_only_loss=True, gradient_checkpointing=gc, logging_steps=1,
            save_strategy="no", report_to=[], seed=0, dataloader_num_workers=0, use_cpu=True,
        )
        Fixed(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock]).train()
    times = [b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False)]
    return times, clock.losses


def child(method: str, arm: str, steps: int, batch: int, max_length: int) -> dict:
    model, tok, train, held = setup(method, steps * batch, max_length)
    loaded = rss_gb()
    lr = LR[method]
    if arm == "tunelab":
        times, losses = loop(model, tok, train, batch, lr, tunelab_step)
    elif arm == "tunelab_onebatch":
        times, losses = loop(model, tok, train, batch, lr, onebatch_step)
    elif arm == "plain":
        times, losses = loop(model, tok, train, batch, lr, plain_step)
    elif arm in ("trl", "trl_nogc"):
        times, losses = trl_train(model, tok, train, batch, lr, gc=arm == "trl")
    else:
        raise SystemExit(f"Unknown arm '{arm}'. Available: {', '.join(RUNS[method])}")
    peak = peak_rss_gb()
    tokens = [sum(len(e.ids) for e in train[s : s + batch]) for s in range(0, len(train), batch)]
    timed = times[1:]
    return {
        "method": method, "arm": arm, "steps": len(times),
        "tokens_per_s": sum(tokens[1 : len(times)]) / sum(timed),
        "step_s": statistics.median(timed), "peak_rss_gb": peak, "rss_loaded_gb": loaded,
        "heldout_loss": heldout_loss(model, tok, held), "losses": [round(x, 4) for x in losses],
        "tokens_per_step": statistics.mean(tokens),
        "supervised_per_step": statistics.mean(sum(e.supervised[1:]) for e in train),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "ARM"))
    ap.add_argument("--steps", type=int, default=7, help="optimizer steps, the first is warm-up")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--methods", default="lora,full")
    ap.add_argument("--arms", default="", help="comma list restricting the arms run")
    a = ap.parse_args()
    if a.child:
        print("RESULT " + json.dumps(child(*a.child, a.steps, a.batch, a.max_length)), flush=True)
        return
    rows = []
    for method in a.methods.split(","):
        for arm in RUNS[method]:
            if a.arms and arm not in a.arms.split(","):
                continue
            cmd = [sys.executable, __file__, "--child", method, arm, "--steps", str(a.steps),
                   "--batch", str(a.batch), "--max-length", str(a.max_length)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not lines:
                print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"{method}/{arm} failed (exit {out.returncode})")
            r = json.loads(lines[-1][7:])
            rows.append(r)
            print(f"{method:5} {arm:9} {r['tokens_per_s']:7.1f} tok/s  {r['step_s']:6.2f} s/step  "
                  f"peak {r['peak_rss_gb']:.2f} GB  held-out {r['heldout_loss']:.4f}  "
                  f"losses {r['losses']}", flush=True)
    print(f"machine: {machine()}; {a.steps} steps of {a.batch} examples, "
          f"{rows[0]['tokens_per_step']:.0f} real tokens/step, "
          f"{rows[0]['supervised_per_step']:.0f} supervised/example")
    figures = {}
    for r in rows:
        k = f"{r['method']}_{r['arm']}"
        figures |= {f"{k}_tokens_per_s": r["tokens_per_s"], f"{k}_step_s": r["step_s"],
                    f"{k}_peak_rss_gb": r["peak_rss_gb"], f"{k}_heldout_loss": r["heldout_loss"]}
    by = {(r["method"], r["arm"]): r for r in rows}
    for method in a.methods.split(","):
        ours = by[(method, "tunelab")]
        for arm in RUNS[method][1:]:
            if (method, arm) not in by:
                continue
            ref = by[(method, arm)]
            figures[f"{method}_speedup_vs_{arm}"] = ours["tokens_per_s"] / ref["tokens_per_s"]
        if (method, "plain") in by:  # the plain loop is the reference
            plain = by[(method, "plain")]["heldout_loss"]
            figures[f"{method}_heldout_rel_diff_vs_plain"] = abs(ours["heldout_loss"] - plain) / plain
    emit(figures, rows)


if __name__ == "__main__":
    main()
