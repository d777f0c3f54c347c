"""Cell keys (version 3), and the migration that moves stores written with version-1 and
version-2 keys onto them (their finished cells reused, never recomputed)."""

from __future__ import annotations

import json
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
    # min_budget raises the budget of small training sets only: a cell whose max_epochs
    # budget already reaches it trains the same with or without it, and keeps its key
    from tunelab.core.config import TrainConfig

    task = {"name": "viggo"}
    cfg = RunConfig(methods=[MethodConfig(name="lora", train_sizes=[500, 100])])
    small, big = cells(cfg, 1000, task=task)
    assert (small.train_size, big.train_size) == (100, 500)
    assert [small.key, big.key] == ["f9b018b5c06ec798", "d9b82c2e09220291"]  # pinned: version 3
    off = cells(replace(cfg, train=TrainConfig(min_budget=0)), 1000, task=task)
    assert off[1].key == big.key  # 63 steps x 8 epochs = 504 >= 256
    assert off[0].key != small.key  # 13 x 8 = 104 steps, raised to 256
    fixed = cells(replace(cfg, train=TrainConfig(epochs=3)), 1000, task=task)
    fixed_off = cells(replace(cfg, train=TrainConfig(epochs=3, min_budget=0)), 1000, task=task)
    assert [c.key for c in fixed] == [c.key for c in fixed_off]  # fixed epochs: no floor
    higher = cells(replace(cfg, train=TrainConfig(min_budget=600)), 1000, task=task)
    assert higher[1].key != big.key
    drops = cells(replace(cfg, train=TrainConfig(plateau_drops=3)), 1000, task=task)
    assert {c.key for c in drops}.isdisjoint({small.key, big.key})


def test_a_searched_arm_is_its_own_cell():
    plain = RunConfig(methods=[MethodConfig(name="few_shot", train_sizes=[100])])
    few = RunConfig(methods=[MethodConfig(name="few_shot", train_sizes=[100], search={"k": [1, 3]})])
    (shots,) = cells(few, 1000, task={"name": "viggo"})
    assert shots.key == "5c9ffc595bbc71ad"  # pinned: version 3
    assert shots.key != cells(plain, 1000, task={"name": "viggo"})[0].key
    other = RunConfig(methods=[MethodConfig(name="few_shot", train_sizes=[100], search={"k": [1, 4]})])
    assert cells(other, 1000, task={"name": "viggo"})[0].key != shots.key


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


V2 = {"few_shot": "091a91139677070d", "dynamic_few_shot": "b7277765deb71acc", "lora": "4cd7b89b7c4d57dd"}
V1 = {"few_shot": "5858bdc8a456de84", "dynamic_few_shot": "3c8a8f5842f48784", "lora": "0e75099f6cac3472"}
"""Keys computed by the code that wrote stores before key version 3 (version 2, and the
version-1 keys it reproduced), for the grid of `_old_grid`."""


def _old_grid(store: str = "runs/tunelab.db") -> RunConfig:
    return RunConfig(methods=[MethodConfig(name="few_shot", train_sizes=[8], k=3),
                              MethodConfig(name="dynamic_few_shot", train_sizes=[8]),
                              MethodConfig(name="lora", train_sizes=[8])], store=store)


def test_the_frozen_code_reproduces_the_keys_older_stores_hold():
    from tunelab.run.migrate import old_keys

    cfg = _old_grid()
    grid = cells(cfg, 100, task={"name": "viggo"})
    assert [old_keys(cfg, c, None, {"name": "viggo"}) for c in grid] == [
        [V2[c.method.name], V1[c.method.name]] for c in grid]
    assert [c.key for c in grid] == ["dca3bcce180d6a8b", "0e8a04815a32a908", "818ef16f74f92a9a"]
    # v2 keys of searched, floored and plateau cells (pinned before version 3)
    from tunelab.core.config import TrainConfig

    lora = RunConfig(methods=[MethodConfig(name="lora", train_sizes=[500, 100])])
    floors = {"": TrainConfig(), "fixed": TrainConfig(epochs=3), "off": TrainConfig(min_budget=0)}
    got = {}
    for name, t in floors.items():
        c_cfg = replace(lora, train=t)
        got[name] = [old_keys(c_cfg, c, None, {"name": "viggo"})[0]
                     for c in cells(c_cfg, 1000, task={"name": "viggo"})]
    assert got["fixed"] == ["703b0396225dc175", "de00d8aeae3d0275"]
    assert got["off"] == ["3a5ead8cab87e79f", "2afeb33740917b2e"] and got[""][1] == "2afeb33740917b2e"


def _book(store, key: str, method: str, value: float, info: dict | None = None, config=None) -> None:
    store.begin(key, {"method": method, "label": method, "train_size": 8, "seed": 0,
                      "config": config or {}})
    row = {"idx": 0, "example_id": "e0", "input": "x", "target": "y", "prediction": "y",
           "scores": {"m": value}, "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.0}
    store.finish(key, {"info": info or {}}, {"m": (value, value, value)}, {"m": True}, [row])


def test_migrate_moves_v1_v2_aliased_runs_and_their_exports_once(tmp_path):
    from tunelab.core.store import Store
    from tunelab.run.migrate import migrate

    cfg = _old_grid(str(tmp_path / "s.db"))
    grid = cells(cfg, 100, task={"name": "viggo"})
    store = Store(cfg.store)
    _book(store, V1["few_shot"], "few_shot", 0.1)  # a store written with version-1 keys
    _book(store, V2["dynamic_few_shot"], "dynamic_few_shot", 0.2)  # ... with version 2
    _book(store, "0123456789abcdef", "lora", 0.3)  # found by an older grid under an alias
    store.db.execute("CREATE TABLE aliases (key TEXT PRIMARY KEY, run_id TEXT)")
    store.db.execute("INSERT INTO aliases VALUES (?, ?)", (V2["lora"], "0123456789abcdef"))
    store.db.commit()
    _book(store, "export:adapter:0123456789abcdef", "export:adapter", 0.3,
          {"export_of": "0123456789abcdef"}, {"export": {"of": "0123456789abcdef"}})
    _book(store, "ffffffffffffffff", "zero_shot", 0.9)  # no cell of this config: left alone
    store.begin(grid[0].key, {"method": "few_shot"})  # a crashed attempt under today's key

    assert migrate(store, cfg, grid, None, {"name": "viggo"}) == 3
    new = {c.method.name: c.key for c in grid}
    export = f"export:adapter:{new['lora']}"
    assert {r["id"] for r in store.runs("done")} == {*new.values(), export, "ffffffffffffffff"}
    assert [store.metrics(new[m])["m"]["value"] for m in new] == [0.1, 0.2, 0.3]
    assert [store.predictions(new[m])[0]["scores"] for m in new] == [{"m": 0.1}, {"m": 0.2}, {"m": 0.3}]
    exported = store.run(export)
    assert json.loads(exported["info"])["export_of"] == new["lora"]
    assert json.loads(exported["config"])["export"]["of"] == new["lora"]
    assert store.aliases() == {}
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert migrate(store, cfg, grid, None, {"name": "viggo"}) == 0  # once


def test_a_store_written_with_older_keys_is_reused_not_redone(tmp_path, tiny_model_dir, viggo_dir,
                                                               monkeypatch):
    import tunelab.run.executors as executors
    from tunelab.cli.main import app
    from tunelab.core.store import Store
    from tunelab.report import build as report
    from tunelab.run.grid import prepare, run_grid
    from tunelab.run.migrate import old_keys

    methods = "  - {name: zero_shot}\n  - {name: few_shot, k: 2, train_sizes: [8]}\n"
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir,
                                   tmp_path / "s.db", methods))
    old = prepare(cfg)  # an old store: zero_shot under its version-1 key, few_shot version 2
    scoring = old.task.scoring.kind if old.task.scoring else None
    from tunelab.run.keys import task_identity

    identity = task_identity(old.task, old.splits, scoring)
    v3 = [c.key for c in old.cells]
    (v2_zero, v1_zero), (v2_few, _) = [old_keys(cfg, c, scoring, identity) for c in old.cells]
    old.cells[0].key, old.cells[1].key = v1_zero, v2_few
    executors.run_local(old, old.cells, True)
    before = report.results_markdown(report.load_arms(Store(cfg.store)))

    def no_compute(*a, **k):
        raise AssertionError("a finished cell of an older store was computed again")

    monkeypatch.setattr(executors, "compute_cell", no_compute)
    keys = run_grid(cfg, fail_fast=True)
    assert keys == v3
    assert {r["id"] for r in Store(cfg.store).runs()} == set(v3)
    assert report.results_markdown(report.load_arms(Store(cfg.store), set(keys))) == before
    # `tunelab store migrate` says how many it moved: none left
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["store", "migrate", str(tmp_path / "c.yaml")])
    assert r.exit_code == 0 and "migrated 0 stored cells to key version 3" in r.stdout


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


def test_a_setting_enters_the_key_at_every_value():
    # few_shot's `draw`: unset (the cell's seed draws the shots) and set are different cells
    cfg = _old_grid()
    drawn = replace(cfg, methods=[replace(cfg.methods[0], draw=1)])
    assert cells(drawn, 100, task={"name": "viggo"})[0].key != cells(cfg, 100, task={"name": "viggo"})[0].key


def test_the_frozen_code_reads_a_method_entry_with_its_own_settings_object_alike():
    # a method entry whose own settings sit on a `settings` object (the spec's dataclass)
    # gives the same v1 and v2 keys as one holding them as its own fields
    import types

    from tunelab.methods import get_spec
    from tunelab.run.migrate import old_keys

    cfg = _old_grid()
    grid = cells(cfg, 100, task={"name": "viggo"})
    for c in grid:
        m = c.method
        entry = types.SimpleNamespace(name=m.name, train_sizes=m.train_sizes, label=m.label,
                                      train=m.train, models=m.models, stages=m.stages, search=m.search,
                                      settings=get_spec(m.name).settings_of(m))
        moved = replace(c, method=entry)
        assert old_keys(cfg, moved, None, {"name": "viggo"}) == [V2[m.name], V1[m.name]]
