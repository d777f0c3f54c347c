"""Adding a method or a task from outside the package (tests/plugins), each by one
registration line, and running it through everything a shipped one meets: config
validation, a tiny-model cell, `search:` over its own setting, the report, and for a
training method `tunelab export` and a training stage. CONTRIBUTING.md's walk-throughs
describe exactly this."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.plugins import bm25_shots, norm_tune, reverse_task
from tunelab import TunelabError
from tunelab.cli.main import app
from tunelab.core.config import MethodConfig, RunConfig
from tunelab.methods import METHODS, load_config, method_train, register
from tunelab.methods.base import MethodSpec
from tunelab.tasks import TASKS

runner = CliRunner()
ROOT = Path(__file__).parents[1]


@pytest.fixture
def plugins(monkeypatch):
    """The two methods and the task registered, one line each, and removed afterwards."""
    before = dict(METHODS)
    register(bm25_shots.SPEC)
    register(norm_tune.SPEC)
    monkeypatch.setitem(TASKS, "reverse", reverse_task.Reverse)
    yield
    METHODS.clear()
    METHODS.update(before)


def _config(tmp_path: Path, model: Path, methods: list[dict]) -> Path:
    path = tmp_path / "c.yaml"
    store = tmp_path / "runs" / "s.db"
    path.write_text(
        "task: {name: reverse, n_test: 6}\n"
        f"model: {{name: '{model}'}}\n"
        "train: {batch_size: 4, min_steps: 2, min_budget: 0, max_epochs: 1, save: true}\n"
        "eval: {batch_size: 4, max_new_tokens: 8, bootstrap: 200}\n"
        f"store: '{store}'\nout_dir: '{store.parent}'\n"
        f"methods:\n" + "".join(f"  - {json.dumps(m)}\n" for m in methods))
    return path


@pytest.mark.parametrize("entry, msg", [
    ({"name": "bm25_shots", "k3": 1.0}, "methods[0] (bm25_shots).k3: not a setting of bm25_shots"),
    ({"name": "bm25_shots", "b": 2}, "methods.bm25_shots.b: must be between 0 and 1, got 2.0"),
    ({"name": "bm25_shots", "k1": "high"}, "methods.bm25_shots.k1: expected float, got 'high'"),
    ({"name": "lora", "b": 0.5}, "methods[0] (lora).b: not a setting of lora"),  # b is bm25's alone
    ({"name": "bm25_shots", "search": {"b": [0.5, 3]}}, "search.b.b: must be between 0 and 1"),
    ({"name": "norm_tune", "last_layers": "x"}, "methods.norm_tune.last_layers: expected int"),
    ({"name": "lora", "stages": [{"kind": "rlhf"}]}, "Available: sft, dpo, norm"),
])
def test_a_plugin_methods_settings_are_checked_when_the_config_is_read(plugins, tmp_path, entry, msg):
    path = _config(tmp_path, tmp_path, [entry])
    with pytest.raises(TunelabError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ") and msg in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_a_plugin_is_unknown_without_its_registration_line(tmp_path):
    path = _config(tmp_path, tmp_path, [{"name": "bm25_shots"}])
    with pytest.raises(TunelabError, match="Unknown method 'bm25_shots'"):
        load_config(path)


def test_a_training_plugin_declares_its_defaults_on_its_spec(plugins):
    assert method_train(RunConfig(), MethodConfig(name="norm_tune")).lr == norm_tune.SPEC.lr == 1e-2
    # its stage trains at its own kind's lr, under a method with another one
    from tunelab.core.config import StageConfig
    from tunelab.methods.stages import staged

    m = staged(RunConfig(), MethodConfig(name="lora", stages=[StageConfig(kind="norm")]))
    assert m.stages[0].train == {"lr": 1e-2}


def test_plugin_methods_and_task_run_cells_search_export_and_report(plugins, tmp_path, tiny_model_dir):
    """One grid on the plugin task: the prompting plugin plain and searched over its own
    `b`, the training plugin, and the training plugin as a stage under the prompting one."""
    cfg = _config(tmp_path, tiny_model_dir, [
        {"name": "bm25_shots", "k": 2, "train_sizes": [8]},
        {"name": "bm25_shots", "k": 2, "train_sizes": [8], "search": {"b": [0.0, 0.75]}},
        {"name": "norm_tune", "train_sizes": [8], "last_layers": 1},
        {"name": "bm25_shots", "k": 2, "label": "norm then bm25", "stages": [{"kind": "norm"}],
         "train_sizes": [8]}])
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code == 0, r.output
    store = tmp_path / "runs" / "s.db"
    rows = sqlite3.connect(store).execute("SELECT id, label, status, info FROM runs").fetchall()
    runs = {label: (rid, status, json.loads(info)) for rid, label, status, info in rows}
    assert {s for _, s, _ in runs.values()} == {"done"}, runs.keys()
    plain, searched = runs["bm25_shots"][2], runs["bm25_shots searched"][2]
    assert plain["bm25"] == {"k1": 1.2, "b": 0.75}  # its settings at work, shots chosen per input
    assert len(plain["shots"]) >= 6 and all(len(ids) == 2 for ids in plain["shots"].values())
    chosen = searched["settings_search"]["chosen"]["b"]
    assert chosen in (0.0, 0.75) and searched["bm25"]["b"] == chosen
    assert searched["settings_search"]["default"] == {"b": 0.75}
    tuned = runs["norm_tune"][2]
    # last_layers 1: the last layer's two norms and the final norm, nothing else
    hidden = json.loads((tiny_model_dir / "config.json").read_text())["hidden_size"]
    assert tuned["trainable_params"] == 3 * hidden and Path(tuned["artifact"]).name == "model"
    (stage,) = runs["norm then bm25"][2]["stages"]
    assert stage["stage"] == "norm on task" and stage["n_train"] == 8
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert all(f"| {label}" in md for label in ("bm25_shots", "bm25_shots searched", "norm_tune")), md
    out = tmp_path / "export"
    r = runner.invoke(app, ["export", runs["norm_tune"][0], "--store", str(store), "-o", str(out),
                            "--format", "merged"])
    assert r.exit_code == 0, r.output
    assert any(p.suffix == ".safetensors" for p in out.rglob("*")), list(out.rglob("*"))


def test_contributing_walks_through_what_this_file_does():
    """The walk-throughs name the plugin files, the registration lines used above, and
    only MethodSpec fields that exist."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    method = text.split("## Adding a method")[1].split("\n## ")[0]
    task = text.split("## Adding a task")[1].split("\n## ")[0]
    for name in ("bm25_shots.py", "norm_tune.py", "tests/test_add_method.py"):
        assert name in method, name
    assert "register(SPEC)" in method and 'TASKS["<name>"] = ' in task and "reverse_task.py" in task
    fields = {f.name for f in dataclasses.fields(MethodSpec)}
    named = set(re.findall(r"\b(\w+)=", method))
    assert named and named <= fields, named - fields
    settings = {f.name for f in dataclasses.fields(bm25_shots.Settings)}
    assert {"k1", "b"} <= settings and all(f"`{s}`" in method for s in ("k1", "b"))


def test_a_stored_entry_keeps_the_flat_layout_and_reads_back_its_methods_own_settings():
    from tunelab.methods import resolve
    from tunelab.methods.stored import as_stored, from_stored

    m = resolve(MethodConfig(name="few_shot", k=3, train_sizes=[8]))
    d = as_stored(m)
    assert d["k"] == 3 and d["chunk_size"] == 800 and "settings" not in d  # as every stored run
    assert from_stored(d).settings == m.settings
    # an entry stored flat for lora carries every method's settings: only lora's are read
    assert dataclasses.asdict(from_stored({**d, "name": "lora"}).settings) == {"prompt": None}
