"""The report reads everything from the store: no live method or task code, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tunelab.core.store import Store

SRC = Path(__file__).parent.parent / "src"


def _run(store: Store, key: str, method: str, n: int, cell_extra: dict) -> None:
    cell = {"method": {"name": method}, "train_size": n, "seed": 0, **cell_extra}
    store.begin(key, {"task": "viggo", "model": "m", "method": method, "label": method,
                      "train_size": n, "n_train": n, "seed": 0,
                      "config": {"task": {"name": "viggo"}, "cell": cell}})
    rows = [{"idx": i, "example_id": f"e{i}", "input": "i", "target": "t", "prediction": "p",
             "scores": {"slot_f1": float(i % 2)}, "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.1}
            for i in range(10)]
    store.finish(key, {"info": {}, "eval_seconds": 1.0}, {"slot_f1": (0.5, 0.2, 0.8)},
                 {"slot_f1": True}, rows)


def test_trained_and_primary_come_from_the_store_with_a_fallback_for_old_runs(tmp_path):
    from tunelab.report.build import load_arms, primary_metric

    old, new = Store(tmp_path / "old.db"), Store(tmp_path / "new.db")
    _run(old, "a", "lora", 8, {})  # stored before `trained` and `primary` were
    _run(old, "b", "few_shot", 8, {})
    _run(new, "c", "lora", 8, {"trained": False, "primary": "slot_f1"})
    _run(new, "d", "mystery", 8, {"trained": True, "primary": "slot_f1"})
    trained = {a.method: a.trained for a in load_arms(old)}
    assert trained == {"lora": True, "few_shot": False}
    assert primary_metric(load_arms(old)) == "slot_f1"  # viggo's own, from the task
    assert {a.method: a.trained for a in load_arms(new)} == {"lora": False, "mystery": True}


def test_report_command_imports_no_torch(tmp_path):
    store = Store(tmp_path / "s.db")
    _run(store, "a", "lora", 8, {"trained": True, "primary": "slot_f1"})
    _run(store, "b", "zero_shot", 0, {"trained": False, "primary": "slot_f1"})
    code = ("import sys\nfrom tunelab.cli.main import app\n"
            f"try:\n    app(['report', {str(tmp_path / 's.db')!r}, '-o', {str(tmp_path / 'r')!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("NO TORCH"), r.stdout[-2000:]
    assert (tmp_path / "r" / "report.html").exists()
