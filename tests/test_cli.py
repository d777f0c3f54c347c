"""End to end through the CLI on a tiny random model: run -> store -> report; bad input."""

from __future__ import annotations

import json
import sqlite3

from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import viggo_rows, write_config
from tunelab.cli.main import app
from tunelab.tasks.metrics import bootstrap_ci

METHODS = (
    "  - {name: zero_shot}\n"
    "  - {name: few_shot, k: 2, train_sizes: [8]}\n"
    "  - {name: lora, train_sizes: [8]}\n"
)

runner = CliRunner()


def _runs(db):
    con = sqlite3.connect(db)
    return con.execute("SELECT method, status, n_train FROM runs ORDER BY method").fetchall()


def _half_right(monkeypatch):
    """Every arm answers the gold MR for 3 of the 6 test sentences: the tiny model alone scores
    0 everywhere (value = CI low = CI high = 0), which no check of the stored CIs can tell apart."""
    import tunelab.backends.hf

    gold = {r["ref"]: r["mr"] for r in viggo_rows("test", 6)}
    right = sorted(gold)[:3]
    real = tunelab.backends.hf.generate

    def generate(model, tok, prompts, *args, **kwargs):
        gens = real(model, tok, prompts, *args, **kwargs)
        for p, g in zip(prompts, gens, strict=True):
            g.text = next((gold[ref] for ref in right if ref in p), g.text)
        return gens

    monkeypatch.setattr(tunelab.backends.hf, "generate", generate)  # what the local backend calls


def test_run_store_report_and_resume(tmp_path, tiny_model_dir, viggo_dir, monkeypatch):
    _half_right(monkeypatch)
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store, METHODS)
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    assert _runs(store) == [("few_shot", "done", 8), ("lora", "done", 8), ("zero_shot", "done", 0)]
    con = sqlite3.connect(store)
    assert con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 3 * 6
    exact = con.execute("SELECT value, lo, hi FROM metrics WHERE name = 'mr_exact'").fetchall()
    assert len(exact) == 3 and all(v == 0.5 and lo < v < hi for v, lo, hi in exact), exact
    for run_id, name, *ci in con.execute("SELECT run_id, name, value, lo, hi FROM metrics").fetchall():
        scores = [json.loads(s)[name] for (s,) in con.execute(
            "SELECT scores FROM predictions WHERE run_id = ? ORDER BY idx", (run_id,))]
        assert tuple(ci) == bootstrap_ci(scores, 200) and ci[0] > 0, (name, ci)  # bootstrap: 200
    versions, commit = con.execute("SELECT versions, git_commit FROM runs LIMIT 1").fetchone()
    assert "transformers" in versions and commit
    html = (tmp_path / "runs" / "report" / "report.html").read_text()
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    for name in ("zero_shot", "few_shot", "lora"):
        assert name in html and name in md
    assert "data:image/png;base64," in html
    assert "[[" in md  # the masked training example is shown
    lora_id, info = con.execute("SELECT id, info FROM runs WHERE method = 'lora'").fetchone()
    adapter = tmp_path / "runs" / "cells" / lora_id / "adapter"
    assert json.loads(info)["artifact"] == str(adapter)
    assert list((tmp_path / "runs" / "cells").glob("*/adapter")) == [adapter]  # lora's only
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at 0: trained and saved

    again = runner.invoke(app, ["run", str(cfg)])
    assert again.exit_code == 0
    assert "3 already done" in again.output

    ls = runner.invoke(app, ["ls", "--store", str(store)])
    assert ls.exit_code == 0 and "lora" in ls.output
    run_id = con.execute("SELECT id FROM runs WHERE method='lora'").fetchone()[0]
    show = runner.invoke(app, ["show", run_id[:8], "--store", str(store)])
    assert show.exit_code == 0 and "mr_exact" in show.output


def _one_line_error(result, *needles):
    assert result.exit_code != 0
    line = [x for x in result.output.splitlines() if x.strip()]
    assert len(line) == 1, result.output
    for n in needles:
        assert n in line[0], line[0]


def test_unknown_method_keeps_earlier_runs(tmp_path, tiny_model_dir, viggo_dir):
    store = tmp_path / "runs" / "t.db"
    ok = write_config(tmp_path / "ok.yaml", tiny_model_dir, viggo_dir, store, "  - {name: zero_shot}\n")
    assert runner.invoke(app, ["run", str(ok)]).exit_code == 0
    bad = write_config(tmp_path / "bad.yaml", tiny_model_dir, viggo_dir, store, "  - {name: lorra}\n")
    _one_line_error(runner.invoke(app, ["run", str(bad)]), "Unknown method 'lorra'", "lora")
    assert _runs(store) == [("zero_shot", "done", 0)]


def test_unknown_config_key(tmp_path, tiny_model_dir, viggo_dir):
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "s.db",
                       "  - {name: zero_shot, shots: 3}\n")
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), "(zero_shot).shots: not a setting of zero_shot",
                    "train_sizes")


def _jsonl_config(tmp_path, tiny_model_dir, train_text: str):
    train = tmp_path / "train.jsonl"
    train.write_text(train_text)
    cfg = tmp_path / "j.yaml"
    cfg.write_text(
        f"task: {{name: jsonl, train: '{train}', n_test: 2}}\n"
        f"model: {{name: '{tiny_model_dir}'}}\nstore: '{tmp_path / 's.db'}'\n"
        f"out_dir: '{tmp_path}'\nmethods: [{{name: zero_shot}}]\n"
    )
    return cfg, train


def test_malformed_jsonl_names_file_and_line(tmp_path, tiny_model_dir):
    good = '{"prompt": "a", "completion": "b"}\n'
    cfg, train = _jsonl_config(tmp_path, tiny_model_dir, good * 3 + '{"prompt": "a", "compl\n')
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), f"{train}:4", "invalid JSON")


def test_missing_field_names_file_line_and_field(tmp_path, tiny_model_dir):
    good = '{"prompt": "a", "completion": "b"}\n'
    cfg, train = _jsonl_config(tmp_path, tiny_model_dir, good * 2 + '{"prompt": "a", "completion": 3}\n')
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), f"{train}:3", "completion", "string")


def test_leaked_test_set_is_refused(tmp_path, tiny_model_dir, viggo_dir):
    import shutil

    shutil.copy(viggo_dir / "train.csv", viggo_dir / "test.csv")
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "s.db",
                       "  - {name: zero_shot}\n")
    _one_line_error(runner.invoke(app, ["run", str(cfg)]), "test.csv", "input", "leaked")


def test_every_cell_failed_exits_non_zero_naming_the_count_and_first_error(
        tmp_path, tiny_model_dir, viggo_dir, monkeypatch):
    import tunelab.run.sequential as grid  # where `tunelab run` builds each cell (in rounds)

    def broken(cfg, cell, *a, **k):
        if cell.method.name in fails:
            raise AttributeError(f"'DynamicLayer' object has no attribute 'dtype' ({cell.method.name})")
        return real(cfg, cell, *a, **k)

    real, fails = grid.build_cell, {"zero_shot", "few_shot"}
    monkeypatch.setattr(grid, "build_cell", broken)
    methods = "  - {name: zero_shot}\n  - {name: few_shot, k: 2, train_sizes: [8]}\n"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "a.db", methods)
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 2
    last = [x for x in r.output.splitlines() if x.strip()][-1]
    assert last.startswith("error: 2 of 2 cells failed; first: ")
    assert "has no attribute 'dtype'" in last

    fails = {"few_shot"}  # one of two: the report is written, with a warning line, and exit 1
    cfg = write_config(tmp_path / "d.yaml", tiny_model_dir, viggo_dir, tmp_path / "b.db", methods)
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 1, r.output
    assert "warning: 1 of 2 cells failed; first: few_shot" in " ".join(r.output.split())
    assert "1 of 2 cells failed (the report has the others" in " ".join(r.stderr.split())
