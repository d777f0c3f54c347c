"""Device placement (model.device), forward-pass tensors on the model's device, precision
by device, out-of-memory as one line, and the quantize refusal, all on a CPU-only machine."""

from __future__ import annotations

import copy
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import write_config
from tunelab import TunelabError
from tunelab.backends import device
from tunelab.backends.generate import fast_cache_ok, generate
from tunelab.backends.local_model import load_model
from tunelab.backends.prompt import messages
from tunelab.core.config import ModelConfig, TrainConfig
from tunelab.run.keys import model_identity
from tunelab.train.loop import encode, train_loop

ROOT = Path(__file__).parents[1]


def _cuda(monkeypatch, count: int = 2, major: int = 8) -> None:
    """Pretend torch sees `count` CUDA cards of compute capability major.0."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (major, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake Card")


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps", lambda: False)
    assert device.resolve("auto") == device.resolve("cpu") == torch.device("cpu")
    monkeypatch.setattr(device, "_mps", lambda: True)
    assert device.resolve("auto") == torch.device("mps")
    _cuda(monkeypatch)
    assert device.resolve("auto") == torch.device("cuda", 0)
    assert device.resolve("cuda:1") == torch.device("cuda", 1)


def test_each_rank_of_a_launch_takes_its_local_rank(monkeypatch):
    _cuda(monkeypatch)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device.resolve("auto") == device.resolve("cuda") == torch.device("cuda", 1)


@pytest.mark.parametrize("name,why", [("cuda", "no CUDA device"), ("cuda:x", "not cuda:N"),
                                      ("mps", "no Apple MPS"), ("tpu", "unknown 'tpu'")])
def test_unavailable_or_unknown_device_is_one_line(monkeypatch, name, why):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps", lambda: False)
    with pytest.raises(TunelabError, match=why):
        device.resolve(name)


def test_a_cuda_index_past_the_cards_is_refused(monkeypatch):
    _cuda(monkeypatch, count=2)
    with pytest.raises(TunelabError, match="cuda:5 requested but this machine has 2"):
        device.resolve("cuda:5")


@pytest.mark.parametrize("setting", ["cpu", "auto"])
def test_load_model_puts_the_weights_where_the_setting_says(tiny_model_dir, setting):
    model, _ = load_model(ModelConfig(name=str(tiny_model_dir), device=setting))
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}  # auto: CPU here
    assert device.placed() == torch.device("cpu")


def test_the_retrieval_encoder_follows_the_placed_model(monkeypatch):
    import tunelab.backends.embed as embed

    monkeypatch.setattr(embed, "_embedder", lambda dev: dev)
    monkeypatch.setattr(device, "_placed", [])
    assert embed.embedder() == "cpu"  # no model placed yet
    device.placed(torch.device("meta"))
    assert embed.embedder() == "meta"


def test_device_and_unset_quantize_leave_the_key_alone():
    base = model_identity(ModelConfig())
    assert model_identity(ModelConfig(device="cuda:1")) == base
    assert model_identity(ModelConfig(quantize="none")) == base
    assert model_identity(ModelConfig(quantize="4bit")) == {**base, "quantize": "4bit"}


def _items(tok, n=8):
    return [encode(tok, messages("Convert.", f"Game {i} is fun."), f"inform(name[Game {i}])", 128,
                   f"ex{i}") for i in range(n)]


def test_forward_pass_tensors_are_made_on_the_models_device(woken_model_dir, monkeypatch):
    """The model stays on the CPU while torch's default device is `meta`: a tensor made
    without naming the model's device lands on meta and the forward fails (on a GPU, it
    would land on the CPU beside CUDA weights). Training with validation, and generation
    with a shared prefix and rows leaving the batch at different steps, run through."""
    import tunelab.backends.generate as gen

    model, tok = load_model(ModelConfig(name=str(woken_model_dir), device="cpu"))
    for p in model.parameters():
        p.requires_grad_(True)
    items = _items(tok)
    fast_cache_ok()  # its own CPU self-check runs outside the meta default
    cfg = TrainConfig(batch_size=4, epochs=1, min_steps=1, min_budget=0, val_size=4)
    # a third of the vocabulary stops a row: rows leave the batch at different steps
    monkeypatch.setattr(gen, "stop_ids", lambda tok: [i for i in range(len(tok)) if i % 3 == 0])
    prompts = [f"<|im_start|>user\nGame {i} is rated {7 * i}<|im_end|>\n" for i in range(8)]
    with torch.device("meta"):
        stats = train_loop(model, tok, items, cfg, seed=0, val=items[:4])
        out = generate(model, tok, prompts, 12, batch_size=8)
    assert stats.steps >= 1 and stats.val_losses
    assert len({g.gen_tokens for g in out}) > 1  # the row selection ran


def test_frozen_weights_train_in_bf16_and_come_back_exact():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model[1].requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    with device.frozen_in(model, torch.bfloat16):
        assert model[1].weight.dtype == torch.bfloat16 and model[0].weight.dtype == torch.float32
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k]), k


def test_precision_auto_on_a_cuda_card_follows_its_bf16_support(monkeypatch):
    from tunelab.train.precision import choose

    _cuda(monkeypatch, major=8)
    d = choose("auto", device=torch.device("cuda", 0))
    assert d.precision == "bf16" and "Fake Card" in d.reason and "8.0" in d.reason
    _cuda(monkeypatch, major=7)
    assert choose("auto", device=torch.device("cuda", 0)).precision == "fp32"
    assert choose("auto", device=torch.device("mps")).precision == "fp32"


def test_quantize_is_refused_in_one_line_where_it_cannot_run(tiny_model_dir):
    with pytest.raises(TunelabError, match="quantize: unknown '3bit'"):
        ModelConfig(quantize="3bit")
    with pytest.raises(TunelabError, match="4bit needs a CUDA device"):
        load_model(ModelConfig(name=str(tiny_model_dir), device="cpu", quantize="4bit"))
    # on a CUDA device, without bitsandbytes (not installed here)
    with pytest.raises(TunelabError, match="8bit needs bitsandbytes, which is not installed"):
        device.load_kwargs(ModelConfig(quantize="8bit"), torch.device("cuda", 0))
    assert device.load_kwargs(ModelConfig(), torch.device("cuda", 0)) == {"attn_implementation": "sdpa"}


def test_generation_out_of_memory_is_one_line_naming_model_and_batch(tiny, monkeypatch):
    model, tok = tiny

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model = copy.deepcopy(model)
    monkeypatch.setattr(model, "forward", boom)
    with pytest.raises(TunelabError) as e:
        generate(model, tok, ["a", "b"], 4, batch_size=8, reuse_prefix=False, label="eval")
    msg = str(e.value)
    assert "\n" not in msg and str(model.config.name_or_path) in msg
    assert "out of cpu memory in eval; lower eval.batch_size (8) or eval.max_new_tokens (4)" in msg
    assert "model.quantize: 8bit or 4bit" in msg


def test_a_cell_out_of_memory_fails_alone_and_keeps_the_store(tmp_path, tiny_model_dir, viggo_dir,
                                                              monkeypatch):
    import tunelab.train.loop as train
    from tunelab.methods import load_config
    from tunelab.run.grid import run_grid

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(train, "completion_loss_sum", boom)
    store = tmp_path / "runs" / "s.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store,
                       "  - {name: zero_shot}\n  - {name: lora, train_sizes: [8]}\n")
    run_grid(load_config(cfg))
    rows = dict(sqlite3.connect(store).execute("SELECT method, status || ': ' || "
                                               "COALESCE(error, '') FROM runs").fetchall())
    assert rows["zero_shot"] == "done: "
    assert rows["lora"].startswith("failed: ") and "out of cpu memory in training" in rows["lora"]
    assert "lower train.batch_size (4), train.micro_tokens" in rows["lora"]
    assert "\n" not in rows["lora"]


@pytest.mark.slow
def test_gpu_check_dry_run_starts_and_writes_its_result(tmp_path):
    out = tmp_path / "bench_gpu_check.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run",
                        "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    import json

    result = json.loads(out.read_text())
    assert result["dry_run"] and result["device"].startswith("cpu")
    assert {row["part"] for row in result["rows"]} >= {"grid", "train", "generate"}
