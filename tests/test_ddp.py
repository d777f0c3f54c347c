"""One cell's training data-parallel (accelerate's DDP, or torch FSDP2 with `train.fsdp`;
2 CPU processes over gloo, started by torchrun: `accelerate launch` needs MPI for several
CPU processes) gives the same losses as a single process, and stores the cell once."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import torch

from tests.conftest import write_config

ARGS = ["cell", "--method", "lora", "--size", "8", "--seed", "0"]


def _info(db, processes: int) -> dict:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT info FROM runs WHERE status='done'").fetchall()
    assert len(rows) == 1
    info = json.loads(rows[0][0])
    assert info["processes"] == processes
    return info


def _predictions(db) -> list[str]:
    return [r[0] for r in sqlite3.connect(db).execute("SELECT prediction FROM predictions ORDER BY idx")]


@pytest.mark.slow
@pytest.mark.parametrize("fsdp", [False, True])
def test_ddp_two_cpu_processes_match_single_process(tmp_path, tiny_model_dir, viggo_dir, fsdp):
    launcher = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert launcher, "torchrun comes with torch; it must be installed"
    # epochs auto within 4 steps: the validation loss is measured by both processes too.
    # fp32: bf16 rounds differently when the batch is split, so only fp32 can be equal.
    method = ("  - {name: lora, train_sizes: [8], train: {max_steps: 4, lora_dropout: 0.0, precision: fp32, "
              f"fsdp: {str(fsdp).lower()}}}}}\n")
    single = write_config(tmp_path / "s.yaml", tiny_model_dir, viggo_dir, tmp_path / "s" / "t.db", method)
    ddp = write_config(tmp_path / "d.yaml", tiny_model_dir, viggo_dir, tmp_path / "d" / "t.db", method)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "tunelab", *ARGS[:1], str(single), *ARGS[1:]],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # --standalone: torchrun picks a free port itself (a fixed one failed when still held)
    r = subprocess.run([launcher, "--standalone", "--nproc_per_node", "2",
                        "-m", "tunelab", *ARGS[:1], str(ddp), *ARGS[1:]],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    single, parallel = _info(tmp_path / "s" / "t.db", 1), _info(tmp_path / "d" / "t.db", 2)
    one, two = single["losses"], parallel["losses"]
    assert len(one) == len(two) == 4
    assert two == pytest.approx(one, rel=1e-3)
    assert len(single["val_losses"]) >= 2
    assert parallel["val_losses"] == pytest.approx(single["val_losses"], rel=1e-3)
    assert parallel["best_step"] == single["best_step"]
    assert one[0] != one[-1]  # it trained: the loss moved
    assert parallel["trainable_params"] == single["trainable_params"]
    assert (single["parallel"], parallel["parallel"]) == ("none", "fsdp" if fsdp else "ddp")
    # Process 0 saved and evaluated the trained weights (for FSDP, gathered from the shards).
    a, b = _adapter(single["artifact"]), _adapter(parallel["artifact"])
    assert a.keys() == b.keys() and any("lora_B" in k for k in a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k
        if "lora_B" in k:
            assert a[k].abs().max() > 0, k  # B starts at zero: nonzero means it was trained
    assert _predictions(tmp_path / "d" / "t.db") == _predictions(tmp_path / "s" / "t.db")


def _adapter(path: str) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "adapter_model.safetensors"))
