"""executor: ray on a local Ray (2 CPUs): same cells, same store, same results as local."""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.test_reliability import snapshot

ray = pytest.importorskip("ray", reason="ray not installed (pip install 'tunelab[cluster]')")

METHODS = ("  - {name: zero_shot}\n  - {name: lora, train_sizes: [4, 8]}\n"
           "  - {name: few_shot, k: 99, train_sizes: [8]}\n")


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path, tiny_model_dir, viggo_dir):
    from tunelab.methods import load_config
    from tunelab.run.grid import run_grid

    local = load_config(write_config(tmp_path / "l.yaml", tiny_model_dir, viggo_dir,
                                     tmp_path / "l" / "t.db", METHODS))
    run_grid(local)
    cfg = load_config(write_config(tmp_path / "r.yaml", tiny_model_dir, viggo_dir,
                                   tmp_path / "r" / "t.db", METHODS,
                                   "executor: ray\nresources: {num_cpus: 1}\n"))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        keys = run_grid(cfg)
    finally:
        ray.shutdown()
    got, want = snapshot(tmp_path / "r" / "t.db"), snapshot(tmp_path / "l" / "t.db")
    assert len(keys) == 4 and sorted(got["runs"].values()) == ["done", "done", "done", "failed"]
    assert got == want  # the failing few_shot (k > pool) fails the same way in both
