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


def _old_store(path: Path) -> None:
    """A store as written before runs had a kind: a cell, an export and a probe arm, told
    apart then only by their method's prefix."""
    import sqlite3

    from tunelab.core.store import SCHEMA

    old = "\n".join(line for line in SCHEMA.splitlines() if not line.lstrip().startswith("kind "))
    assert old != SCHEMA
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")  # as tunelab writes them
    con.executescript(old)
    runs = [("a", "lora", "viggo"), ("export:merged:a", "export:merged", "viggo"),
            ("p", "probe:facts", "facts")]
    for i, (key, method, task) in enumerate(runs):
        con.execute("INSERT INTO runs (id, status, task, method, label, model, n_train, seed, started) "
                    "VALUES (?, 'done', ?, ?, ?, 'm', 8, 0, ?)", (key, task, method, method, float(i)))
    con.commit()
    con.close()


def test_a_store_written_before_the_kind_column_reads_by_kind(tmp_path, monkeypatch):
    import sqlite3

    from tunelab.core import store as store_mod

    path = tmp_path / "old.db"
    _old_store(path)
    connect = sqlite3.connect
    with monkeypatch.context() as m:  # a read-only copy: kinds are derived, nothing is written
        m.setattr(store_mod.sqlite3, "connect", lambda p, **kw: connect(f"file:{p}?mode=ro", uri=True, **kw))
        ro = Store(path, create=False)
        assert [r["id"] for r in ro.runs("done", kind="export")] == ["export:merged:a"]
        ro.db.close()
    assert "kind" not in {c[1] for c in connect(path).execute("PRAGMA table_info(runs)")}
    s = Store(path, create=False)  # writable: the column is added once, kinds from the prefixes
    assert {c[1] for c in s.db.execute("PRAGMA table_info(runs)")} >= {"kind"}
    assert {r["id"]: r["kind"] for r in s.runs()} == {"a": "cell", "export:merged:a": "export", "p": "probe"}
    assert [r["id"] for r in s.runs("done", kind="cell")] == ["a"]
    assert [r["id"] for r in s.runs("done", kind="probe")] == ["p"]
    with s.db:  # kinds are read from the column, never parsed from the method again
        s.db.execute("UPDATE runs SET method='export:x' WHERE id='a'")
    assert [r["id"] for r in Store(path).runs(kind="cell")] == ["a"]


def test_every_kind_of_run_goes_through_one_writer_and_readers_filter_on_kind(tmp_path):
    from tunelab.report.build import load_arms

    s = Store(tmp_path / "s.db")
    _run(s, "a", "lora", 8, {"trained": True, "primary": "slot_f1"})
    rows = [{"idx": 0, "example_id": "e0", "input": "i", "target": "t", "prediction": "p",
             "scores": {"slot_f1": 1.0}, "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.1}]
    s.record("export", "x", {"task": "viggo", "model": "m", "method": "lora", "label": "lora", "n_train": 8,
                             "seed": 0, "info": {}}, {"slot_f1": (1.0, 1.0, 1.0)}, {"slot_f1": True}, rows)
    assert [a.runs[0]["id"] for a in load_arms(s)] == ["a"]  # an export named like a cell: still no arm
    assert s.run("x")["kind"] == "export" and s.run("a")["kind"] == "cell"
    s.record("export", "x", {"task": "viggo", "label": "again"}, {}, {}, [])  # a new attempt replaces it
    assert s.run("x")["model"] is None and s.predictions("x") == []
