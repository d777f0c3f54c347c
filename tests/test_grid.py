"""Grid cells: models x methods x sizes x seeds, ordering, per-method model filter."""

from __future__ import annotations

import pytest

from tunelab import TunelabError
from tunelab.core.config import MethodConfig, ModelConfig, RunConfig
from tunelab.methods import load_config
from tunelab.run.cells import cells


def _cfg(**kw) -> RunConfig:
    return RunConfig(models=[ModelConfig(name="a"), ModelConfig(name="b")], seeds=[0, 1], **kw)


def test_models_multiply_cells_smallest_size_first():
    cfg = _cfg(methods=[MethodConfig(name="zero_shot"),
                        MethodConfig(name="lora", train_sizes=[50, 10], models=["a"])])
    grid = cells(cfg, 1000)
    assert [(c.model.name, c.method.name, c.train_size, c.seed) for c in grid] == [
        ("a", "zero_shot", 0, 0), ("b", "zero_shot", 0, 0), ("a", "lora", 10, 0), ("a", "lora", 10, 1),
        ("a", "lora", 50, 0), ("a", "lora", 50, 1)]
    assert len({c.key for c in grid}) == len(grid)


def test_single_model_key_unchanged_by_models_list():
    one = RunConfig(model=ModelConfig(name="a"))
    listed = RunConfig(models=[ModelConfig(name="a")])
    assert [c.key for c in cells(one, 10)] == [c.key for c in cells(listed, 10)]


def test_a_training_method_without_train_sizes_trains_on_the_whole_split():
    # `{name: lora}` got a cell of 0 examples and failed with an IndexError
    cfg = RunConfig(methods=[MethodConfig(name="lora"), MethodConfig(name="full", train_sizes=[0, 50]),
                             MethodConfig(name="few_shot"), MethodConfig(name="zero_shot")])
    got = [(c.method.name, c.train_size) for c in cells(cfg, 300)]
    assert sorted(got) == [("few_shot", 0), ("full", 50), ("full", 300), ("lora", 300), ("zero_shot", 0)]


def test_unknown_model_filter_and_training_on_api_model_fail_clearly():
    cfg = _cfg(methods=[MethodConfig(name="lora", train_sizes=[8], models=["c"])])
    with pytest.raises(TunelabError, match="'c' is not a model of this grid. Available: a, b"):
        cells(cfg, 100)
    api = RunConfig(model=ModelConfig(name="gpt", backend="openai"),
                    methods=[MethodConfig(name="full", train_sizes=[8])])
    with pytest.raises(TunelabError, match="openai backend"):
        cells(api, 100)


def test_shipped_compare_config_builds_its_grid():
    cfg = load_config("configs/compare.yaml")
    grid = cells(cfg, 5000)
    got = sorted({(c.model.name, c.method.name) for c in grid})
    assert got == [("gemma3-270m", "few_shot"), ("gemma3-270m", "zero_shot"),
                   ("smollm2-135m", "few_shot"), ("smollm2-135m", "lora"), ("smollm2-135m", "zero_shot")]
    assert len(grid) == 3 * 2 + 2  # zero_shot ignores the seed: once per model


def test_a_method_that_ignores_the_seed_runs_once():
    # zero_shot decodes the same prompt greedily whatever the seed: seeds 1, 2 repeated seed
    # 0's generation (a third of a reference run's evaluation time)
    cfg = RunConfig(seeds=[3, 1, 2], methods=[MethodConfig(name="zero_shot"),
                                              MethodConfig(name="few_shot", train_sizes=[8])])
    got = [(c.method.name, c.seed) for c in cells(cfg, 100)]
    assert got == [("zero_shot", 3), ("few_shot", 1), ("few_shot", 2), ("few_shot", 3)]
