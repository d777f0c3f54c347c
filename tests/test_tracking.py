"""tracking: mlflow mirrors every finished cell into a local MLflow file store."""

from __future__ import annotations

import pytest

from tests.conftest import write_config

mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'tunelab[tracking]')")


def test_mlflow_logs_each_cell(tmp_path, tiny_model_dir, viggo_dir, monkeypatch):
    from tunelab.core.store import Store
    from tunelab.methods import load_config
    from tunelab.run.grid import run_grid

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # plain files, no database server
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "t.db",
                                   "  - {name: zero_shot}\n  - {name: lora, train_sizes: [8]}\n",
                                   "tracking: mlflow\n"))
    run_grid(cfg)
    runs = mlflow.search_runs(experiment_names=["tunelab-viggo"], output_format="list")
    assert len(runs) == 2
    stored = {r["id"]: r for r in Store(tmp_path / "t.db").runs("done")}
    for r in runs:
        key = r.data.tags["tunelab.cell"]
        assert key in stored
        m = r.data.metrics
        assert m["mr_exact_ci_lo"] <= m["mr_exact"] <= m["mr_exact_ci_hi"]
        assert r.data.metrics["eval_seconds"] == pytest.approx(stored[key]["eval_seconds"])
    lora = next(r for r in runs if r.data.params["method"] == "lora")
    assert lora.data.params["train.lr"] == "0.001" and "train_loss" in lora.data.metrics
