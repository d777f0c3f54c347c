"""Cell keys (version 2) and the path that keeps stores written with version-1 keys."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.conftest import write_config
from tunelab import TunelabError
from tunelab.core.config import MethodConfig, RunConfig
from tunelab.methods import load_config
from tunelab.run.cells import cells


def _keys(cfg: RunConfig, task: dict | None = None) -> list[str]:
    return [c.key for c in cells(cfg, 100, task=task)]


def test_key_holds_the_methods_own_settings_task_version_and_data_only():
    base = RunConfig(methods=[MethodConfig(name="lora", train_sizes=[8]),
                              MethodConfig(name="few_shot", train_sizes=[8])])
    task = {"name": "viggo", "version": 1, "data": "abc"}
    keys = _keys(base, task)
    # a display label and a speed knob change nothing (a setting lora does not have, such as
    # k, is refused: settings live on each method's spec)
    other = replace(base, methods=[replace(base.methods[0], label="mine", models=[]),
                                   base.methods[1]])
    with pytest.raises(TunelabError, match=r"^methods.lora.k: not a setting of lora"):
        _keys(replace(base, methods=[replace(base.methods[0], k=9), base.methods[1]]), task)
    other.eval.batch_size = 64
    other.model.concurrency = 9
    assert _keys(other, task) == keys
    # its own settings, the task's version and its data do
    assert _keys(replace(base, methods=[replace(base.methods[0], prompt="full"), base.methods[1]]),
                 task)[0] != keys[0]
    assert _keys(replace(base, methods=[base.methods[0], replace(base.methods[1], k=2)]),
                 task)[1] != keys[1]
    assert _keys(base, {**task, "version": 2}) != keys
    assert _keys(base, {**task, "data": "abd"}) != keys
    assert _keys(replace(base, seeds=[1]), task) != keys


def test_the_budget_floor_enters_a_key_only_where_it_changes_the_budget():
    # min_budget raises the budget of small training sets only. A cell whose max_epochs
    # budget already reaches it keeps the key it had before the field existed (pinned:
    # computed by main 886dbe6, the commit before min_budget), so measured stores keep
    # their finished cells; a cell it raises gets a new key (it trains longer).
    from tunelab.core.config import TrainConfig

    task = {"name": "viggo"}
    cfg = RunConfig(methods=[MethodConfig(name="lora", train_sizes=[500, 100])])
    small, big = cells(cfg, 1000, task=task)
    assert (small.train_size, big.train_size) == (100, 500)
    assert big.key == "2afeb33740917b2e"  # 63 steps x 8 epochs = 504 >= 256
    assert small.key != "3a5ead8cab87e79f"  # 13 x 8 = 104 steps, raised to 256
    fixed = [c.key for c in cells(replace(cfg, train=TrainConfig(epochs=3)), 1000, task=task)]
    assert fixed == ["703b0396225dc175", "de00d8aeae3d0275"]  # fixed epochs: no floor
    off = cells(replace(cfg, train=TrainConfig(min_budget=0)), 1000, task=task)
    assert [c.key for c in off] == ["3a5ead8cab87e79f", "2afeb33740917b2e"]
    higher = cells(replace(cfg, train=TrainConfig(min_budget=600)), 1000, task=task)
    assert higher[1].key != big.key
    # plateau_drops (added later): off, every key above stays; on, a cell is new
    drops = cells(replace(cfg, train=TrainConfig(plateau_drops=3)), 1000, task=task)
    assert {c.key for c in drops}.isdisjoint({small.key, big.key})
    # cells with drops stored before a new best needed MIN_GAIN to reset patience (their
    # keys computed by main b56c658) are not reused: they trained by another rule
    assert {c.key for c in drops}.isdisjoint({"87d2c096e673fbac", "2c84bb6f62ccf9c8"})


def test_a_search_whose_rungs_changed_gets_a_new_key():
    # search.RUNGS: since 2026-12-02 the shorter rungs are shares of the budget without the
    # floor. A searched cell the floor raises trained longer rungs before (key pinned: main
    # 9624d4f), so it gets a new key; one the floor does not raise trains as before and
    # keeps its key.
    cfg = RunConfig(methods=[MethodConfig(name="lora", train_sizes=[500, 100],
                                          search={"lr": [1e-3, 2e-3]})])
    small, big = cells(cfg, 1000, task={"name": "viggo"})
    assert small.key != "63dd1acb5e9b4a2e"
    # Since 2026-12-03 the deciding rung is scored by the task metric on validation and
    # keeps the default unless beaten: every searched cell gets a new key (main 8ba6839
    # computed these three, 2e79bec2eba4ef47 the big one's since before the floor).
    few = RunConfig(methods=[MethodConfig(name="few_shot", train_sizes=[100], search={"k": [1, 3]})])
    (shots,) = cells(few, 1000, task={"name": "viggo"})
    assert {small.key, big.key, shots.key}.isdisjoint(
        {"a5c3009d7bf53aca", "2e79bec2eba4ef47", "98f661b4ed2921f4"})


def test_task_version_and_data_enter_through_prepare(tmp_path, viggo_dir):
    from tunelab.run.grid import prepare
    from tunelab.tasks.viggo import Viggo

    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, viggo_dir, tmp_path / "s.db",
                                   "  - {name: zero_shot}\n"))
    first = prepare(cfg).cells[0].key
    Viggo.version += 1
    try:
        assert prepare(cfg).cells[0].key != first
    finally:
        Viggo.version -= 1
    (viggo_dir / "test.csv").write_text((viggo_dir / "test.csv").read_text().replace("a", "b", 1))
    assert prepare(cfg).cells[0].key != first


def test_a_store_written_with_legacy_keys_is_reused_not_redone(tmp_path, tiny_model_dir, viggo_dir,
                                                                monkeypatch):
    import tunelab.run.executors as executors
    from tunelab.core.store import Store
    from tunelab.report import build as report
    from tunelab.run.grid import prepare, run_grid

    methods = "  - {name: zero_shot}\n  - {name: few_shot, k: 2, train_sizes: [8]}\n"
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir,
                                   tmp_path / "s.db", methods))
    old = prepare(cfg)  # an old store: its cells booked under their version-1 keys
    v2 = [c.key for c in old.cells]
    for c in old.cells:
        c.key = c.legacy_key
    executors.run_local(old, old.cells, True)
    before = report.results_markdown(report.load_arms(Store(cfg.store)))

    def no_compute(*a, **k):
        raise AssertionError("a finished legacy cell was computed again")

    monkeypatch.setattr(executors, "compute_cell", no_compute)
    keys = run_grid(cfg, fail_fast=True)
    store = Store(cfg.store)
    assert sorted(keys) == sorted(c.legacy_key for c in old.cells)
    assert report.results_markdown(report.load_arms(store, set(keys))) == before
    # the mapping is recorded: each version-2 key names its old run
    aliases = store.aliases()
    assert sorted(aliases) == sorted(v2) and set(aliases.values()) == set(keys)
    assert all(store.run(k)["id"] == v for k, v in aliases.items())


def test_a_stage_trains_at_its_kinds_rate_not_its_methods():
    # an SFT stage under DPO trained at DPO's 1e-4 (20x under LoRA's default): each stage
    # now takes its own kind's default unless the stage or the whole config sets an lr; a
    # stage whose rate does not change keeps its cell key
    from tunelab.core.config import StageConfig, TrainConfig

    task = {"name": "viggo"}
    dpo = MethodConfig(name="dpo", train_sizes=[8], stages=[StageConfig(kind="sft")])
    cell = cells(RunConfig(methods=[dpo]), 100, task=task)[0]
    assert cell.method.stages[0].train == {"lr": 2e-3}
    explicit = replace(dpo, stages=[StageConfig(kind="sft", train={"lr": 2e-3})])
    assert cells(RunConfig(methods=[explicit]), 100, task=task)[0].key == cell.key
    old = replace(dpo, stages=[StageConfig(kind="sft", train={"lr": 1e-4})])
    assert cells(RunConfig(methods=[old]), 100, task=task)[0].key != cell.key
    wide = RunConfig(methods=[dpo], train=TrainConfig(lr=5e-4))  # config-wide: every stage too
    assert cells(wide, 100, task=task)[0].method.stages[0].train == {}
    lora = MethodConfig(name="lora", train_sizes=[8], stages=[StageConfig(kind="sft")])
    assert cells(RunConfig(methods=[lora]), 100, task=task)[0].method.stages[0].train == {}
    # a dpo stage under lora trains at DPO's rate, not LoRA's 2e-3
    lora_dpo = replace(lora, stages=[StageConfig(kind="dpo")])
    assert cells(RunConfig(methods=[lora_dpo]), 100, task=task)[0].method.stages[0].train == {"lr": 1e-4}


def test_a_setting_added_later_keeps_stored_keys_at_its_unset_value():
    # few_shot's `draw` (added 2026-12-03): unset, every key is the one computed by main
    # e0248ed, before the field existed (v2 and legacy); set, the cell is another one
    from tunelab.run.keys import legacy_key

    cfg = RunConfig(methods=[MethodConfig(name="few_shot", train_sizes=[8], k=3),
                             MethodConfig(name="dynamic_few_shot", train_sizes=[8]),
                             MethodConfig(name="lora", train_sizes=[8])])
    assert [c.key for c in cells(cfg, 100, task={"name": "viggo"})] == [
        "091a91139677070d", "b7277765deb71acc", "4cd7b89b7c4d57dd"]
    assert [legacy_key(cfg, m, cfg.model, 8, 0, None) for m in cfg.methods] == [
        "5858bdc8a456de84", "3c8a8f5842f48784", "0e75099f6cac3472"]
    drawn = replace(cfg, methods=[replace(cfg.methods[0], draw=1)])
    assert cells(drawn, 100, task={"name": "viggo"})[0].key != "091a91139677070d"
