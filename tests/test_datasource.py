"""Where a task's data comes from: task.data_dir > $TUNELAB_DATA_DIR/<folder> > the shipped
copy > the public dataset id (never fetched here: load_dataset is replaced)."""

from pathlib import Path

import pytest

from tunelab import TunelabError
from tunelab.core.config import TaskConfig
from tunelab.data import datasource
from tunelab.methods import load_config
from tunelab.tasks import get_task

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNELAB_DATA_DIR", raising=False)
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise ConnectionError("offline (test)")

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", no_network)


def test_demo_task_loads_from_the_shipped_copy_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared, no data beside the working directory
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    task = get_task(cfg.task)
    assert task.root() == datasource.SHIPPED / "viggo"
    s = task.load()
    assert len(s.train) == 5103 and len(s.validation) == 714 and len(s.test) == 100


def test_every_shipped_config_task_resolves(monkeypatch):
    monkeypatch.chdir(ROOT)  # your_data.yaml names a file relative to the repository
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        task = get_task(load_config(path).task)
        assert task.root().is_dir(), path
        if task.folder:
            assert (task.root() / "SOURCE.md").is_file(), path  # source and licence ship with it


def test_mirror_wins_over_shipped_and_data_dir_over_both(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "viggo").mkdir(parents=True)
    monkeypatch.setenv("TUNELAB_DATA_DIR", str(mirror))
    assert get_task(TaskConfig(name="viggo")).root() == mirror / "viggo"
    assert get_task(TaskConfig(name="gsm8k")).root() == datasource.SHIPPED / "gsm8k"  # no mirror folder
    own = tmp_path / "own"
    assert get_task(TaskConfig(name="viggo", data_dir=str(own))).root() == own


def test_neither_mirror_nor_dataset_is_one_line_naming_both(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_DATA_DIR", str(tmp_path / "mirror"))
    with pytest.raises(TunelabError) as e:
        datasource.resolve("alpaca")  # not shipped: its licence is non-commercial
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "mirror" / "alpaca") in msg and "tatsu-lab/alpaca" in msg
    assert not (datasource.cache_dir() / "alpaca").exists()  # nothing half-written left behind


def test_public_dataset_is_exported_as_the_files_the_task_reads(monkeypatch):
    import datasets

    rows = {s: [{"meaning_representation": f"inform(name[G{s}{i}])", "target": f"G{s}{i} is a game."}
                for i in range(3)] for s in ("train", "validation", "test")}
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a: calls.append(a) or rows)
    monkeypatch.setattr(datasource, "SHIPPED", Path("/nonexistent"))
    root = get_task(TaskConfig(name="viggo")).root()
    assert calls == [("GEM/viggo", None)] and root == datasource.cache_dir() / "viggo"
    s = get_task(TaskConfig(name="viggo", n_test=2)).load()
    assert [e.target for e in s.train] == ["inform(name[Gtrain0])", "inform(name[Gtrain1])",
                                           "inform(name[Gtrain2])"]
    get_task(TaskConfig(name="viggo")).root()
    assert len(calls) == 1  # the export is reused, not fetched again
