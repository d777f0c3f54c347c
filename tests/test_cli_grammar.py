"""One CLI grammar: --version, the store found the same way by every command (with a line
saying which), a damaged store in one line, --json that parses on every result command,
arms in a meaningful order, and `run` exiting non-zero when a cell failed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import write_config
from tunelab import __version__
from tunelab.cli.main import app
from tunelab.core.store import Store

runner = CliRunner()


def _store(path: Path, key: str) -> Path:
    s = Store(path)
    s.begin(key, {"task": "viggo", "method": "zero_shot", "label": "zero_shot", "model": "m",
                  "train_size": 0, "n_train": 0, "seed": 0, "config": {"out_dir": "elsewhere"}})
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.db.close()
    return path


def _ids(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["id"] for r in json.loads(result.stdout)]


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"tunelab {__version__}"


def test_store_is_found_the_same_way_with_a_line_saying_which(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    none = runner.invoke(app, ["ls"])
    assert none.exit_code == 2 and "no results store" in none.stderr and len(none.stderr.splitlines()) == 1
    _store(Path("runs/old.db"), "old-run")
    _store(Path("runs/demo/new.db"), "new-run")
    os.utime("runs/old.db", (1, 1))  # written long ago
    r = runner.invoke(app, ["ls", "--json"])
    assert _ids(r) == ["new-run"]
    assert r.stderr.strip() == (f"store: {Path('runs/demo/new.db')} (the most recent under runs/; "
                                "--store to choose another)")
    Path("c.yaml").write_text("task: {name: viggo}\nstore: runs/old.db\n")
    Path("notes.yaml").write_text("just: notes\n")  # not a config naming a store: ignored
    r = runner.invoke(app, ["ls", "--json"])
    assert _ids(r) == ["old-run"] and "store: runs/old.db (named by c.yaml" in r.stderr
    Path("d.yaml").write_text("store: runs/other.db\n")  # two configs: not obvious, so the newest
    assert _ids(runner.invoke(app, ["ls", "--json"])) == ["new-run"]
    r = runner.invoke(app, ["show", "old-run", "--store", "runs/old.db", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == "old-run" and r.stderr == ""


def test_damaged_store_is_one_line_naming_the_file(tmp_path):
    good = _store(tmp_path / "s.db", "k1")
    for name, damage in (("junk.db", None), ("page.db", 4096)):
        path = tmp_path / name
        if damage is None:
            path.write_text("not an SQLite file " * 50)
        else:  # a corrupted page: the runs table's root, after a readable header page
            shutil.copy(good, path)
            with open(path, "r+b") as f:
                f.seek(damage)
                f.write(b"\xff" * 4096)
        for cmd in (["ls"], ["show", "k1"], ["report"]):
            r = runner.invoke(app, [*cmd, "--store", str(path)])
            lines = r.output.strip().splitlines()
            assert r.exit_code == 2 and len(lines) == 1, (cmd, r.output)
            assert str(path) in lines[0] and "damaged" in lines[0] and "move it aside" in lines[0]


def test_arms_listed_prompting_by_cost_then_trained_by_size():
    from tunelab.decide.arms import Arm, arm_order

    def arm(method: str, n: int, trained: bool) -> Arm:
        return Arm("m", method, method, n, [{"config": json.dumps({"cell": {"trained": trained}})}])

    arms = [arm("lora", 500, True), arm("rag", 0, False), arm("few_shot", 100, False),
            arm("lora", 100, True), arm("zero_shot", 0, False), arm("full", 50, True)]
    got = [(a.method, a.n_train) for a in sorted(arms, key=arm_order)]
    assert got == [("zero_shot", 0), ("few_shot", 100), ("rag", 0), ("full", 50), ("lora", 100),
                   ("lora", 500)]


METHODS = "  - {name: zero_shot}\n  - {name: lora, train_sizes: [8]}\n"


def _json(args: list[str]):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (args, r.output)
    return json.loads(r.stdout)  # nothing but JSON on stdout


def test_every_result_command_prints_valid_json(tmp_path, tiny_model_dir, viggo_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store, METHODS)
    run = _json(["run", str(cfg), "--json"])
    assert {a["label"] for a in run["arms"]} == {"zero_shot", "lora"} and run["failed"] == []
    # report: --store from the config in this folder; written where run wrote
    (tmp_path / "runs" / "report" / "report.md").unlink()
    rep = _json(["report", "--json"])
    assert rep["report"]["md"] == str(tmp_path / "runs" / "report" / "report.md")
    assert Path(rep["report"]["md"]).exists() and rep["primary"] == run["primary"]
    runs = _json(["ls", "--json"])
    zs = next(r["id"] for r in runs if r["method"] == "zero_shot")
    lora = next(r["id"] for r in runs if r["method"] == "lora")
    assert _json(["show", zs, "--json"])["id"] == zs
    cell = _json(["cell", str(cfg), "--method", "zero_shot", "--size", "0", "--json"])
    assert cell["id"] == zs and cell["status"] == "done" and "mr_exact" in cell["metrics"]
    again = _json(["rerun", zs[:10], "-o", str(tmp_path / "again"), "--json"])
    assert again["identical"] and again["predictions_same"] == again["predictions_total"] == 6
    exp = _json(["export", lora, "-o", str(tmp_path / "adapter"), "--json"])
    assert Path(exp["path"]).exists() and exp["verified"] is None
    assert "viggo" in [t["name"] for t in _json(["tasks", "--json"])]
    assert _json(["tasks", "viggo", "--json"])["config_keys"]["n_test"]["doc"]
    check = _json(["data", "check", str(viggo_dir / "train.csv"), "--task", "viggo", "--json"])
    assert check["ok"] and check["n_train"] == 24


def test_run_with_a_failed_cell_finishes_the_others_and_exits_1(tmp_path, tiny_model_dir, viggo_dir,
                                                                 monkeypatch):
    import tunelab.run.sequential as grid  # where `tunelab run` builds each cell (in rounds)

    real = grid.build_cell

    def broken(cfg, cell, *a, **k):
        if cell.method.name == "zero_shot":
            raise RuntimeError("injected failure")
        return real(cfg, cell, *a, **k)

    monkeypatch.setattr(grid, "build_cell", broken)
    store = tmp_path / "runs" / "t.db"
    methods = "  - {name: zero_shot}\n  - {name: few_shot, k: 2, train_sizes: [8]}\n"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store, methods)
    r = runner.invoke(app, ["run", str(cfg), "--json"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert [a["label"] for a in data["arms"]] == ["few_shot"] and len(data["failed"]) == 1
    assert "1 of 2 cells failed" in r.stderr and Path(data["report"]["md"]).exists()
    status = {x["method"]: x["status"] for x in Store(store).runs()}
    assert status == {"zero_shot": "failed", "few_shot": "done"}
