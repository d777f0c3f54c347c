"""Few-shot evaluation speed: tunelab.backends.generate vs a naive loop of model.generate.

Run from the repository root with the venv activated, alone on the machine:
    python bench/eval.py [--n 200] [--naive 40] [--batch 16]   # writes results/bench_eval.json

ViGGO, the task's fixed seeded test slice of --n examples, 5 training examples as shots
(the few_shot method's prompt: full instruction + 5 chat turns, ~640 tokens), greedy,
max 88 new tokens, base SmolLM2-135M-Instruct. tunelab runs all --n examples; the naive
loop (one `model.generate` per example, stop at EOS/end-of-turn) costs seconds per
example, so it runs on the first --naive examples of the same slice, and the ratio is
taken on that same subset (tunelab is timed on it separately). Predictions must match
exactly; the script fails if any differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import Timer, emit, load, machine, peak_rss_gb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--naive", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    from tunelab.backends.generate import generate
    from tunelab.backends.local_model import stop_ids
    from tunelab.backends.prompt import messages, render, shots_of
    from tunelab.core.config import TaskConfig
    from tunelab.data.readers import sample
    from tunelab.tasks import get_task

    model, tok = load()
    task = get_task(TaskConfig(name="viggo", n_test=a.n))
    s = task.load()
    shots = shots_of(sample(s.train, 5, 0), task.user_message)
    prompts = [render(tok, messages(task.instruction, task.user_message(e), shots)) for e in s.test]
    max_new = task.max_new_tokens
    sub = prompts[: a.naive]

    with Timer() as t_all:
        ours = [g.text for g in generate(model, tok, prompts, max_new, a.batch)]
    with Timer() as t_sub:
        ours_sub = [g.text for g in generate(model, tok, sub, max_new, a.batch)]
    naive = []
    with Timer() as t_naive, torch.no_grad():
        for p in sub:
            ids = tok(p, return_tensors="pt", add_special_tokens=False)
            out = model.generate(**ids, max_new_tokens=max_new, do_sample=False,
                                 eos_token_id=stop_ids(tok), pad_token_id=tok.pad_token_id)
            naive.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    differ = sum(x != y for x, y in zip(naive, ours_sub, strict=True))
    differ += sum(x != y for x, y in zip(ours[: a.naive], ours_sub, strict=True))
    n_tok = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"machine: {machine()}; mean prompt {sum(n_tok) / len(n_tok):.0f} tokens")
    emit({
        "examples": len(prompts), "naive_subset": len(sub), "batch_size": a.batch,
        "tunelab_examples_per_s": len(prompts) / t_all.s,
        "tunelab_subset_examples_per_s": len(sub) / t_sub.s,
        "naive_subset_examples_per_s": len(sub) / t_naive.s,
        "speedup_on_subset": t_naive.s / t_sub.s,
        "predictions_differing": differ, "peak_rss_gb": peak_rss_gb(),
    })
    if differ:
        raise SystemExit(f"{differ} predictions differ between batched and one-at-a-time generation")


if __name__ == "__main__":
    main()
