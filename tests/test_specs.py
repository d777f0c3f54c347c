"""Every registered method spec, walked through what a user's config meets: validation
when the config is read, a cell on the tiny model, and the report. A method added to
METHODS with a piece forgotten fails here, not in a user's grid."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
from typer.testing import CliRunner

from tests.conftest import write_config
from tunelab import TunelabError
from tunelab.cli.main import app
from tunelab.core.config import MethodConfig
from tunelab.methods import METHODS, load_config
from tunelab.methods.base import COMMON

runner = CliRunner()

SMALL = {"few_shot": {"k": 2}, "dynamic_few_shot": {"k": 2}, "rag": {"k": 2, "chunk_size": 120,
         "chunk_overlap": 30}, "prompt_search": {"k": 2, "budget": 2, "dev_size": 3},
         "prompt_tuning": {"virtual_tokens": 4}, "distill": {"k": 2, "labelled": 4, "keep_cut": True}}
"""Settings that keep each method's cell small on the tiny model (others: defaults). The tiny
model writes one token until the generation limit, so distill keeps its cut-off answers."""


def _entry(name: str, **extra) -> str:
    return "  - " + json.dumps({"name": name, "train_sizes": [8], **SMALL.get(name, {}), **extra}) + "\n"


def test_registry_names_and_settings_agree():
    fields = {f.name for f in dataclasses.fields(MethodConfig)}
    assert fields == {*COMMON, "settings"}  # the shared entry holds no method's own setting
    for name, spec in METHODS.items():
        assert spec.name == name
        own = {f.name for f in dataclasses.fields(spec.settings)}
        assert not own & fields, (name, own & fields)  # each setting is its spec's alone
        assert spec.needs_local_model or not spec.trains, name
        assert (spec.lr is not None) == spec.trains, name  # every training method declares its lr
        assert spec.mergeable <= (spec.saved is not None), name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_config_rejects_a_key_that_is_not_the_methods_own(tmp_path, name, viggo_dir):
    own = {f.name for f in dataclasses.fields(METHODS[name].settings)}
    foreign = next(k for k in ("k", "beta", "virtual_tokens", "chunk_size") if k not in own)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, viggo_dir, tmp_path / "s.db",
                       _entry(name, **{foreign: 3}))
    with pytest.raises(TunelabError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert str(cfg) in msg and f"methods[0] ({name}).{foreign}: not a setting of {name}" in msg
    ok = write_config(tmp_path / "ok.yaml", tmp_path, viggo_dir, tmp_path / "s.db", _entry(name))
    assert load_config(ok).methods[0].name == name


def test_bad_settings_fail_when_the_config_is_read(tmp_path, viggo_dir):
    for entry, msg in [(_entry("rag", chunk_overlap=200), "methods.rag.chunk_overlap: must be"),
                       (_entry("lora", prompt="long"), "methods.lora.prompt: unknown 'long'"),
                       (_entry("lora", stages=[{"kind": "rlhf"}]), "stages[0].kind: Unknown stage")]:
        cfg = write_config(tmp_path / "c.yaml", tmp_path, viggo_dir, tmp_path / "s.db", entry)
        with pytest.raises(TunelabError) as e:
            load_config(cfg)
        assert str(e.value).startswith(f"{cfg}: ") and msg in str(e.value), str(e.value)


def test_every_spec_runs_a_cell_and_reaches_the_report(tmp_path, tiny_model_dir, viggo_dir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "games.md").write_text("Portal 2 is a puzzle game released in 2011 by Valve. " * 5)
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store,
                       "".join(_entry(n) for n in METHODS))
    cfg.write_text(cfg.read_text().replace("n_test: 6}", f"n_test: 6, corpus: '{corpus}'}}"))
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code == 0, r.output
    rows = sqlite3.connect(store).execute("SELECT method, status, config FROM runs").fetchall()
    assert sorted(m for m, _, _ in rows) == sorted(METHODS)
    for method, status, config in rows:
        cell = json.loads(config)["cell"]
        assert status == "done" and cell["trained"] == METHODS[method].trains, method
        assert cell["primary"] == "slot_f1" and cell["higher_is_better"] is True
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert all(f"| {name}" in md for name in METHODS), md
