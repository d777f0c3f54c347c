"""Config: YAML -> dataclasses -> dict round trip; shipped configs parse."""

import re
from pathlib import Path

import pytest

from tunelab import TunelabError
from tunelab.core.config import RunConfig, from_dict, to_dict
from tunelab.methods import METHODS, load_config, method_train, resolve
from tunelab.tasks import TASKS

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_round_trip():
    cfg = load_config(CONFIGS[0])
    back = from_dict(RunConfig, to_dict(cfg))
    back.methods = [resolve(m) for m in back.methods]  # own settings: read as a mapping, then the spec's
    assert back == cfg


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_parse_and_name_their_command(path):
    assert path.read_text().startswith("# tunelab run configs/")
    cfg = load_config(path)
    assert cfg.task.name in TASKS
    for m in cfg.methods:
        assert m.name in METHODS
        method_train(cfg, m)


def test_method_overrides_train():
    cfg = from_dict(RunConfig, {"train": {"lr": 0.1},
                                "methods": [{"name": "lora", "train": {"epochs": 3}}]})
    t = method_train(cfg, cfg.methods[0])
    assert (t.lr, t.epochs) == (0.1, 3.0)


def test_wrong_type_is_named():
    with pytest.raises(TunelabError, match=r"^config.train.batch_size: expected int"):
        from_dict(RunConfig, {"train": {"batch_size": "eight"}})


def test_bad_micro_token_budget_is_named_with_its_file(tmp_path):
    """Caught when the config is read, before any cell runs, naming the file and key."""
    path = tmp_path / "run.yaml"
    path.write_text("task: {name: viggo}\ntrain: {micro_tokens: 0}\n")
    want = f"{path}: config.train.micro_tokens: must be at least 1, got 0"
    with pytest.raises(TunelabError, match="^" + re.escape(want) + "$"):
        load_config(path)
    path.write_text("task: {name: viggo}\nmethods: [{name: lora, train: {micro_tokens: -5}}]\n")
    with pytest.raises(TunelabError, match="^" + re.escape(
            f"{path}: methods.lora.train.micro_tokens: must be at least 1, got -5") + "$"):
        load_config(path)


def test_each_training_method_gets_its_own_default_lr():
    from tunelab.core.config import MethodConfig, RunConfig, TrainConfig

    cfg = RunConfig()
    got = {m: method_train(cfg, MethodConfig(name=m)).lr for m in ("lora", "full", "prompt_tuning", "dpo")}
    assert got == {"lora": 2e-3, "full": 5e-5, "prompt_tuning": 3e-2, "dpo": 1e-4}  # each spec's lr
    assert got == {m: METHODS[m].lr for m in got} and got["lora"] / got["full"] == 40
    assert method_train(cfg, MethodConfig(name="distill")).lr == METHODS["lora"].lr  # its student is LoRA
    # A rate set at the top or on the method wins over the method's default.
    assert method_train(RunConfig(train=TrainConfig(lr=0.3)), MethodConfig(name="full")).lr == 0.3
    assert method_train(cfg, MethodConfig(name="full", train={"lr": 0.2})).lr == 0.2
