"""Crash safety, determinism and concurrent writers, on the tiny model in subprocesses.

The reference is one uninterrupted run; a grid killed with SIGKILL at random moments and
rerun until it finishes, and two grids writing one store at once, must both end with the
same metrics, predictions, per-step training losses and trained adapter, cell for cell.
They run the "woken" tiny model (tests/conftest.py): its losses and outputs depend on the
training subset and seed, so a cell trained on other data cannot pass for the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_config

METHODS = (
    "  - {name: zero_shot}\n"
    "  - {name: few_shot, k: 2, train_sizes: [8]}\n"
    "  - {name: lora, train_sizes: [4, 8]}\n"
)
EXTRA = "seeds: [0, 1]\n"
N_CELLS = 1 + 2 * (1 + 2)  # zero_shot once (it ignores the seed), seeds x (few_shot, lora x 2)
CLI = [sys.executable, "-c", "from tunelab.cli.main import app; app()"]


def _start(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "run", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})


def _adapter_hash(db: Path, run_id: str) -> str | None:
    """sha256 of the cell's saved adapter (out_dir is the store's folder in these configs)."""
    path = db.parent / "cells" / run_id / "adapter" / "adapter_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def snapshot(db: Path) -> dict:
    """What a result is: per cell, status, metrics, predictions, per-step training losses and
    the trained adapter's hash (timings excluded)."""
    con = sqlite3.connect(db)
    # Cells by what they are, not by key: the key hashes the data folder's path too.
    cell = {i: (m, n, s) for i, m, n, s in con.execute("SELECT id, label, n_train, seed FROM runs")}
    runs = {cell[i]: st for i, st in con.execute("SELECT id, status FROM runs")}
    trained = {cell[i]: (json.loads(info or "{}").get("losses"), _adapter_hash(db, i))
               for i, info in con.execute("SELECT id, info FROM runs")}
    metrics = sorted((cell[r[0]], *r[1:]) for r in con.execute(
        "SELECT run_id, name, value, lo, hi FROM metrics"))
    preds = sorted((cell[r[0]], *r[1:]) for r in con.execute(
        "SELECT run_id, idx, example_id, prediction, scores, prompt_tokens, gen_tokens FROM predictions"))
    con.close()
    return {"runs": runs, "metrics": metrics, "predictions": preds, "trained": trained}


def assert_discriminating(snap: dict, n_trained: int) -> None:
    """The trained cells' losses and adapters differ from one another, so comparing them can
    tell a cell trained on another subset or seed from the right one."""
    done = [v for v in snap["trained"].values() if v[0]]
    assert len(done) == n_trained and all(h for _, h in done)
    assert len({tuple(losses) for losses, _ in done}) == n_trained
    assert len({h for _, h in done}) == n_trained
    assert len({p[3] for p in snap["predictions"]}) > 1  # not one output for everything


def _statuses(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return [r[0] for r in con.execute("SELECT status FROM runs")]
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def _done(db: Path) -> int:
    return _statuses(db).count("done")


def _running(db: Path) -> bool:
    return "running" in _statuses(db)


def _cfg(tmp_path: Path, tiny_model_dir, viggo_dir, name: str) -> Path:
    store = tmp_path / name / "t.db"
    store.parent.mkdir()
    return write_config(tmp_path / f"{name}.yaml", tiny_model_dir, viggo_dir, store, METHODS, EXTRA)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, woken_model_dir) -> dict:
    """One uninterrupted run, shared by the tests that compare against it."""
    from tests.conftest import viggo_rows, write_csv

    tmp = tmp_path_factory.mktemp("reference")
    data = tmp / "viggo"
    data.mkdir()
    for split, n in [("train", 24), ("validation", 6), ("test", 6)]:  # as the viggo_dir fixture
        write_csv(data / f"{split}.csv", viggo_rows(split, n))
    cfg = _cfg(tmp, woken_model_dir, data, "ref")
    t0 = time.perf_counter()
    p = _start(cfg)
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    snap = snapshot(tmp / "ref" / "t.db")
    snap["wall"] = time.perf_counter() - t0
    assert len(snap["runs"]) == N_CELLS and set(snap["runs"].values()) == {"done"}
    assert_discriminating(snap, 4)  # lora at two sizes x two seeds
    return snap


@pytest.mark.slow
def test_kill9_at_random_points_then_resume_gives_identical_store(tmp_path, woken_model_dir,
                                                                  viggo_dir, reference):
    cfg = _cfg(tmp_path, woken_model_dir, viggo_dir, "killed")
    db = tmp_path / "killed" / "t.db"
    rng = random.Random(8)
    at_kill = []
    for _ in range(12):
        if _done(db) >= N_CELLS:
            # A kill landed after the last cell (while the report was written): nothing is
            # left to interrupt in this store, so start a fresh one; the final store must
            # still match the reference.
            for f in db.parent.glob("t.db*"):
                f.unlink()
        # Kill moments follow the grid's progress, not the clock (shared CPUs vary several-
        # fold): wait until a random number of cells is done and one is running, then a
        # random fraction of a second more.
        p = _start(cfg)
        target = rng.randint(_done(db), N_CELLS - 1)
        while p.poll() is None and not (_done(db) >= target and _running(db)):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.0))
        if p.poll() is not None:  # finished before the kill: nothing left to interrupt
            continue
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        at_kill.append(sorted(snapshot(db)["runs"].values()) if db.exists() else [])
        if len(at_kill) >= 3 and any("running" in s for s in at_kill):
            break
    assert len(at_kill) >= 2
    assert any("running" in s for s in at_kill), at_kill  # some kill hit a half-done cell
    for _ in range(6):  # the same command, until it exits cleanly
        p = _start(cfg)
        if p.wait(timeout=300) == 0:
            break
    else:
        pytest.fail(p.stderr.read().decode()[-2000:])
    assert snapshot(db) == {k: v for k, v in reference.items() if k != "wall"}


@pytest.mark.slow
def test_two_grids_into_one_store(tmp_path, woken_model_dir, viggo_dir, reference):
    cfg = _cfg(tmp_path, woken_model_dir, viggo_dir, "shared")
    twin = tmp_path / "twin.yaml"
    twin.write_text(cfg.read_text())
    a, b = _start(cfg), _start(twin)
    assert a.wait(timeout=300) == 0, a.stderr.read().decode()[-2000:]
    assert b.wait(timeout=300) == 0, b.stderr.read().decode()[-2000:]
    assert snapshot(tmp_path / "shared" / "t.db") == {k: v for k, v in reference.items() if k != "wall"}


def test_same_config_and_seed_give_same_training(tmp_path, woken_model_dir, viggo_dir):
    from tunelab.methods import load_config
    from tunelab.run.grid import run_grid

    snaps = []
    for name in ("a", "b", "c"):
        seeds = "seeds: [1]\n" if name == "c" else ""
        cfg = load_config(write_config(tmp_path / f"{name}.yaml", woken_model_dir, viggo_dir,
                                       tmp_path / name / "t.db", "  - {name: lora, train_sizes: [8]}\n",
                                       seeds))
        run_grid(cfg)
        snaps.append(snapshot(tmp_path / name / "t.db"))
    assert snaps[0] == snaps[1] and len(snaps[0]["predictions"]) == 6
    assert_discriminating({"trained": {**snaps[0]["trained"], **snaps[2]["trained"]},
                           "predictions": snaps[0]["predictions"]}, 2)  # seed 1 trains otherwise


def test_rerun_reproduces_a_stored_run_and_ls_shows_states(tmp_path, woken_model_dir, viggo_dir):
    from typer.testing import CliRunner

    from tunelab.cli.main import app
    from tunelab.core.store import Store

    runner = CliRunner()
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", woken_model_dir, viggo_dir, store,
                       "  - {name: lora, train_sizes: [8], train: {lr: 0.002}}\n"
                       "  - {name: few_shot, k: 50, train_sizes: [8]}\n")
    assert runner.invoke(app, ["run", str(cfg)]).exit_code == 1  # few_shot fails (k > pool): exit 1
    s = Store(store)
    lora = s.runs("done")[0]["id"]
    r = runner.invoke(app, ["rerun", lora[:8], "--store", str(store), "--out", str(tmp_path / "re")])
    assert r.exit_code == 0, r.output
    assert "reproduced exactly" in r.output and "predictions identical: 6/6" in r.output
    info = json.loads(s.run(lora)["info"])
    steps = len(info["losses"])
    assert steps >= 2 and f"training losses ({steps} steps): identical" in r.output
    info["losses"][-1] += 1e-6  # same scores, a training that went otherwise
    s.db.execute("UPDATE runs SET info=? WHERE id=?", (json.dumps(info), lora))
    s.db.commit()
    r = runner.invoke(app, ["rerun", lora[:8], "--store", str(store), "--out", str(tmp_path / "re1")])
    assert r.exit_code == 1 and f"training losses ({steps} steps): DIFFER" in r.output
    assert "predictions identical: 6/6" in r.output and "NOT reproduced" in r.output
    s.db.execute("UPDATE predictions SET prediction='tampered' WHERE run_id=? AND idx=0", (lora,))
    s.db.commit()
    r = runner.invoke(app, ["rerun", lora[:8], "--store", str(store), "--out", str(tmp_path / "re2")])
    assert r.exit_code == 1 and "5/6" in r.output and "NOT reproduced" in r.output
    s.db.execute("UPDATE runs SET status='running' WHERE id=?", (lora,))
    s.db.commit()
    ls = runner.invoke(app, ["ls", "--store", str(store)], env={"COLUMNS": "250"})
    assert "running" in ls.output and "failed" in ls.output and "k=50 but only 8" in ls.output


def test_full_disk_gives_one_clear_error_and_keeps_stored_runs(tmp_path, tiny_model_dir, viggo_dir):
    from tunelab import TunelabError
    from tunelab.core.store import Store, StoreError

    s = Store(tmp_path / "t.db")
    s.begin("a", {"method": "x"})
    s.finish("a", {}, {"m": (1.0, 1.0, 1.0)}, {"m": True}, [])
    # A page cap makes SQLite behave exactly as on a full disk.
    pages = s.db.execute("PRAGMA page_count").fetchone()[0]
    s.db.execute(f"PRAGMA max_page_count={pages}")
    row = {"idx": 0, "example_id": "e", "input": "x" * 100_000, "target": "t", "prediction": "p",
           "scores": {}, "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.0}
    s.begin("b", {"method": "x"})
    try:
        s.finish("b", {}, {}, {}, [row])
    except StoreError as e:
        msg = str(e)
    else:
        raise AssertionError("a full store must raise")
    assert issubclass(StoreError, TunelabError)
    assert msg.startswith(f"{tmp_path / 't.db'}: cannot write results store:") and "full" in msg
    assert "\n" not in msg
    assert s.status("a") == "done" and s.metrics("a")["m"]["value"] == 1.0


def test_read_only_store_gives_one_clear_error(tmp_path):
    from tunelab.core.store import Store, StoreError

    s = Store(tmp_path / "t.db")
    # Root ignores file modes, so open the same file the way a read-only mount would.
    s.db = sqlite3.connect(f"file:{tmp_path / 't.db'}?mode=ro", uri=True)
    with pytest.raises(StoreError, match="cannot write results store: attempt to write a readonly"):
        s.begin("a", {"method": "x"})
