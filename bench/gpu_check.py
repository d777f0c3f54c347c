"""GPU check: tunelab end to end on the accelerator, and its speed against TRL and model.generate.

Run from an activated virtualenv that holds torch, transformers, peft, accelerate and trl
(tunelab installed with `pip install --no-deps -e .`); it needs no network, no data
folder and no packaged weights (every model is initialised at random from a config):

    python bench/gpu_check.py             # on a GPU machine: sized to finish in minutes
    python bench/gpu_check.py --dry-run   # the same code paths on the CPU, tiny sizes

Parts (each runs even when an earlier one failed; a failure is a row with its error):
  grid      a tiny grid (zero_shot, few_shot, lora) on a made-up data set, end to end on
            the device: train, evaluate, report, export (merged) and re-score the export;
            every cell, training forward and generation batch must be on the device.
  train     tokens/s and peak device memory of a training step for a SmolLM2-135M-shaped
            and a ~1B (Llama-3.2-1B-shaped) model, LoRA and full: tunelab's step
            (train.accumulate, precision as `train.precision: auto` decides on the device)
            against TRL's SFTTrainer on the same batches in the same precision; the final
            losses side by side (equal loss check).
  generate  tokens/s of tunelab.backends.generate against plain model.generate (greedy), and how
            many of their outputs are equal.

Prints one table and writes results/bench_gpu_check.json: the command line, the code version,
the machine in words, and every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # a checkout without an install still runs

SHAPES = {
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                 num_attention_heads=9, num_key_value_heads=3, vocab_size=49152),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=1024),
}
"""Model shapes (LlamaConfig fields): SmolLM2-135M's, Llama-3.2-1B's, and the tests' tiny one."""

FULL = dict(models=("135m", "1b"), warmup=3, steps=20, batch=8, length=512, completion=128,
            prompts=64, new_tokens=64, gen_batch=16)
DRY = dict(models=("tiny",), warmup=1, steps=2, batch=2, length=32, completion=8,
           prompts=4, new_tokens=4, gen_batch=2)
"""Sizes: the full run (20 timed steps after warm-up per arm) and the CPU dry run."""

LR = {"lora": 1e-3, "full": 5e-5}
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")


def examples(n: int, seed: int = 0) -> list[dict]:
    """A made-up structured task, ViGGO-like: a sentence in, its meaning representation out."""
    import random

    rng = random.Random(seed)
    games, ratings = ["Portal", "Doom", "Halo", "Myst", "Tetris", "Quake"], ["good", "poor", "excellent"]
    out = []
    for _ in range(n):
        g, r, y = rng.choice(games), rng.choice(ratings), rng.randint(1990, 2020)
        out.append({"prompt": f"{g} came out in {y} and players found it {r}.",
                    "completion": f"inform(name[{g}], release_year[{y}], rating[{r}])"})
    return out


def tokenizer(texts: list[str]):
    """A byte-level BPE built from `texts` with a ChatML template (as tests/conftest.py)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tunelab.backends.local_model import prepare_tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>",
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    prepare_tokenizer(tok)  # left padding, as load_model sets it (model.generate needs it too)
    return tok


def random_model(shape: str, tok, dev: torch.device, seed: int = 0):
    """A Llama of this shape with random weights, made directly on `dev` (seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    kw = dict(SHAPES[shape])
    kw["vocab_size"] = max(kw["vocab_size"], len(tok))
    cfg = LlamaConfig(**kw, max_position_embeddings=4096, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    with dev:
        return LlamaForCausalLM(cfg).eval()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_gb(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


# ---- part 1: the tiny grid end to end -------------------------------------------------

def grid_part(dev: torch.device, work: Path) -> list[dict]:
    """The tests' tiny grid on the device; raises if any cell or forward ran elsewhere."""
    import tunelab.backends.generate as gen
    import tunelab.run.executors as executors
    import tunelab.train.loop as train
    from tunelab.backends.device import of
    from tunelab.methods import load_config
    from tunelab.report import build as report
    from tunelab.run.grid import run_grid
    from tunelab.ship.verify import ship_best

    data, model_dir = work / "data", work / "tiny-model"
    data.mkdir(parents=True)
    rows = examples(60)
    for name, part in (("train", rows[:36]), ("validation", rows[36:48]), ("test", rows[48:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    tok = tokenizer([r["prompt"] + " " + r["completion"] for r in rows])
    random_model("tiny", tok, torch.device("cpu")).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    store = work / "runs" / "gpu.db"
    cfg_path = work / "grid.yaml"
    cfg_path.write_text(
        f"task: {{name: jsonl, data_dir: '{data}', train: train.jsonl, validation: validation.jsonl,"
        f" test: test.jsonl, format: prompt_completion, n_test: 6}}\n"
        f"model: {{name: '{model_dir}', device: '{dev}'}}\n"
        "train: {batch_size: 4, epochs: 1, min_steps: 2, min_budget: 0, val_size: 4, lr: 0.001}\n"
        "eval: {batch_size: 6, max_new_tokens: 8, bootstrap: 100}\n"
        f"store: '{store}'\nout_dir: '{store.parent}'\nexport: {{verify: [merged]}}\n"
        "methods:\n  - {name: zero_shot}\n  - {name: few_shot, k: 2, train_sizes: [8]}\n"
        "  - {name: lora, train_sizes: [8]}\n")
    seen: dict[str, set] = {"cells": set(), "train": set(), "generate": set()}

    def watch(fn, kind, pos):  # records where argument `pos` lives (a model or a tensor)
        def wrapped(*a, **k):
            seen[kind].add(str(of(a[pos])))
            return fn(*a, **k)
        return wrapped

    real = (executors.compute_cell, train.completion_loss_sum, gen._prefill)
    executors.compute_cell = watch(real[0], "cells", 4)  # (cfg, cell, task, splits, model, tok)
    train.completion_loss_sum = watch(real[1], "train", 1)  # (model, ids, att, sup)
    gen._prefill = watch(real[2], "generate", 0)  # (model, ...): its batch is made there
    try:
        t0 = time.perf_counter()
        cfg = load_config(cfg_path)
        keys = run_grid(cfg, fail_fast=True)
        shipped = ship_best(cfg, keys)
        md, html = report.build(cfg.store, store.parent / "report", set(keys))
        seconds = time.perf_counter() - t0
    finally:
        executors.compute_cell, train.completion_loss_sum, gen._prefill = real
    want = {str(dev)}
    off = {k: sorted(v) for k, v in seen.items() if v != want}
    if off or not shipped or not Path(html).exists():
        raise RuntimeError(f"grid off the device {dev}: {off} (export re-scored: {len(shipped)})")
    return [{"part": "grid", "what": f"{len(keys)} cells + merged export re-scored, on {dev}",
             "seconds": round(seconds, 1), "cells": len(keys), "ok": True}]


# ---- part 2: training throughput, tunelab vs TRL ---------------------------------------

def batches(size: dict, vocab: int, n: int) -> list:
    """n steps of `batch` copy-task sequences (the completion repeats the prompt's start,
    so the loss falls), as tunelab Encoded items; the same items feed both loops."""
    from tunelab.train.loop import Encoded

    g = torch.Generator().manual_seed(0)
    out = []
    for s in range(n * size["batch"]):
        prompt = torch.randint(10, vocab, (size["length"] - size["completion"],), generator=g).tolist()
        ids = prompt + prompt[: size["completion"]]
        sup = [False] * len(prompt) + [True] * size["completion"]
        out.append(Encoded(ids, sup, f"s{s}"))
    return out


def trainable(model, method: str):
    from peft import get_peft_model

    from tunelab.core.config import TrainConfig
    from tunelab.methods.lora import lora_config

    if method == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        return get_peft_model(model, lora_config(TrainConfig(lora_r=16, lora_alpha=32)))
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def tunelab_arm(model, items, size, method, dev) -> dict:
    """tunelab's optimizer step (train.accumulate, micro-batched, precision auto on the
    device, frozen weights in bf16 where train_loop holds them so) on fixed batches."""
    from tunelab.backends.device import cuda_bf16, frozen_in
    from tunelab.core.config import TrainConfig
    from tunelab.train.loop import accumulate, micro_batches
    from tunelab.train.precision import choose

    prec = choose("auto", device=dev) if dev.type == "cuda" else choose("fp32")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR[method], weight_decay=0.0, fused=dev.type == "cuda")
    cfg, b = TrainConfig(), size["batch"]
    half = torch.bfloat16 if prec.precision == "bf16" and cuda_bf16(dev) else None
    times, losses = [], []
    model.train()
    with frozen_in(model, half):
        for s in range(0, len(items), b):
            sync(dev)
            t = time.perf_counter()
            loss, _, _ = accumulate(model, micro_batches(items[s : s + b], cfg.micro_tokens), 0,
                                    precision=prec.precision)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync(dev)
            times.append(time.perf_counter() - t)
            losses.append(loss)
    return {"times": times, "losses": losses, "precision": prec.precision}


def trl_arm(model, tok, items, size, method, dev, precision: str) -> dict:
    """TRL's SFTTrainer on the same items in the same order and precision (completion-only
    loss, constant lr, AdamW, no gradient checkpointing: tunelab does not checkpoint)."""
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Fixed(SFTTrainer):
        def _get_train_sampler(self, *a, **k):  # the same order as tunelab's arm
            return SequentialSampler(self.train_dataset)

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends, self.losses = [], []

        def on_step_begin(self, *a, **k):
            sync(dev)
            self.ends.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            sync(dev)
            self.ends[-1] = time.perf_counter() - self.ends[-1]

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    ds = Dataset.from_list([{"input_ids": e.ids, "completion_mask": [int(x) for x in e.supervised]}
                            for e in items])
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out, per_device_train_batch_size=size["batch"],
            max_steps=len(items) // size["batch"], learning_rate=LR[method],
            lr_scheduler_type="constant", optim="adamw_torch_fused" if dev.type == "cuda" else "adamw_torch",
            weight_decay=0.0, warmup_steps=0, max_grad_norm=0.0, bf16=precision == "bf16",
            completion_only_loss=True, gradient_checkpointing=False, logging_steps=1,
            save_strategy="no", report_to=[], seed=0, dataloader_num_workers=0,
            use_cpu=dev.type == "cpu", max_length=size["length"] + 8, padding_free=False)
        Fixed(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock]).train()
    return {"times": clock.ends, "losses": clock.losses}


def train_part(dev: torch.device, size: dict, tok) -> list[dict]:
    rows = []
    for shape in size["models"]:
        for method in ("lora", "full"):
            items = batches(size, SHAPES[shape]["vocab_size"], size["warmup"] + size["steps"])
            tokens = size["batch"] * size["length"]
            arms, prec = {}, "fp32"
            for arm in ("tunelab", "trl"):
                row = {"part": "train", "what": f"{shape} {method} {arm}", "model": shape,
                       "method": method, "arm": arm}
                try:
                    reset_peak(dev)
                    model = trainable(random_model(shape, tok, dev), method)
                    if arm == "tunelab":
                        r = tunelab_arm(model, items, size, method, dev)
                        prec = r["precision"]
                    else:
                        r = trl_arm(model, tok, items, size, method, dev, prec)
                    timed = r["times"][size["warmup"]:]
                    row.update(tokens_per_s=round(tokens * len(timed) / sum(timed)),
                               peak_gb=peak_gb(dev), precision=prec,
                               final_loss=round(r["losses"][-1], 4), steps=len(r["times"]))
                    arms[arm] = r["losses"][-1]
                    del model
                except Exception as e:  # one arm failing must not lose the others' figures
                    row.update(error=f"{type(e).__name__}: {e}", trace=traceback.format_exc(limit=3))
                rows.append(row)
            if len(arms) == 2:  # the equal loss check
                rel = abs(arms["tunelab"] - arms["trl"]) / max(1e-8, abs(arms["trl"]))
                rows[-1]["loss_rel_diff"] = rows[-2]["loss_rel_diff"] = round(rel, 4)
    return rows


# ---- part 3: generation throughput ------------------------------------------------------

def generate_part(dev: torch.device, size: dict, tok) -> list[dict]:
    from tunelab.backends.generate import generate
    from tunelab.backends.prompt import messages, render

    shape = size["models"][0]
    model = random_model(shape, tok, dev)
    prompts = [render(tok, messages("Convert the sentence.", r["prompt"]))
               for r in examples(size["prompts"], 1)]
    n, b = size["new_tokens"], size["gen_batch"]
    generate(model, tok, prompts[:b], n, batch_size=b)  # warm-up
    sync(dev)
    t = time.perf_counter()
    ours = generate(model, tok, prompts, n, batch_size=b)
    sync(dev)
    ours_s = time.perf_counter() - t
    plain, plain_tokens = [], 0
    t = time.perf_counter()
    for s in range(0, len(prompts), b):
        enc = tok(prompts[s : s + b], return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        plain += tok.batch_decode(new, skip_special_tokens=True)
        plain_tokens += int((new != tok.pad_token_id).sum())
    sync(dev)
    plain_s = time.perf_counter() - t
    same = sum(a.text.strip() == p.strip() for a, p in zip(ours, plain, strict=True))
    return [{"part": "generate", "what": f"{shape} tunelab.backends.generate", "arm": "tunelab",
             "tokens_per_s": round(sum(g.gen_tokens for g in ours) / ours_s), "same_outputs": same,
             "of": len(prompts)},
            {"part": "generate", "what": f"{shape} model.generate", "arm": "hf",
             "tokens_per_s": round(plain_tokens / plain_s), "same_outputs": same, "of": len(prompts)}]


# ---- driver -----------------------------------------------------------------------------

def version() -> str:
    try:
        r = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                           text=True, cwd=ROOT, timeout=10)
        if r.stdout.strip():
            return r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from tunelab import __version__

    return f"tunelab {__version__} (no git)"


def machine(dev: torch.device) -> str:
    from tunelab.backends.device import describe

    return (f"{describe(dev)}; {os.cpu_count()} CPUs ({platform.machine()}); torch {torch.__version__}"
            f"{', CUDA ' + str(torch.version.cuda) if dev.type == 'cuda' else ''}")


def table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"gpu_check on {result['device']}{' (dry run)' if result['dry_run'] else ''}")
    for col in ("part", "what", "tokens/s", "peak GB", "precision", "final loss", "loss diff", "note"):
        t.add_column(col)
    for r in result["rows"]:
        note = r.get("error") or (f"{r['same_outputs']}/{r['of']} outputs equal" if "of" in r else "")
        note = note or (f"{r['seconds']} s" if "seconds" in r else "")
        t.add_row(r["part"], r["what"], str(r.get("tokens_per_s", "")),
                  f"{r['peak_gb']:.2f}" if r.get("peak_gb") is not None else "",
                  r.get("precision", ""), str(r.get("final_loss", "")),
                  str(r.get("loss_rel_diff", "")), note[:80])
    Console(width=150).print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks that it starts")
    ap.add_argument("--device", default="auto", help="model.device for the check (default auto)")
    ap.add_argument("--out", default=None, help="result file (default results/bench_gpu_check.json, "
                    "or results/bench_gpu_check_dry_run.json with --dry-run, so a CPU dry run never "
                    "stands in for the GPU figures)")
    a = ap.parse_args()
    from tunelab.backends.device import resolve

    dev = torch.device("cpu") if a.dry_run else resolve(a.device)
    size = DRY if a.dry_run else FULL
    t0 = time.perf_counter()
    tok = tokenizer([r["prompt"] + " " + r["completion"] for r in examples(200)])
    rows: list[dict] = []
    for name, part in (("grid", lambda work: grid_part(dev, work)),
                       ("train", lambda work: train_part(dev, size, tok)),
                       ("generate", lambda work: generate_part(dev, size, tok))):
        with tempfile.TemporaryDirectory() as work:
            try:
                rows += part(Path(work))
            except Exception as e:  # the next part still runs; the error is a row
                rows.append({"part": name, "what": "failed", "error": f"{type(e).__name__}: {e}",
                             "trace": traceback.format_exc(limit=5)})
    from tunelab.report.json_results import provenance

    prov = {**provenance(sys.argv[1:], "python bench/gpu_check.py"), "machine": machine(dev)}
    result = {"provenance": prov, "command": prov["command"], "version": version(),
              "machine": machine(dev), "device": str(dev), "dry_run": a.dry_run, "sizes": size,
              "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    out = Path(a.out or ROOT / "results" / f"bench_gpu_check{'_dry_run' if a.dry_run else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    table(result)
    print(f"result: {out} ({result['seconds']} s)")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
