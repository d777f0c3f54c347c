"""The cells of a grid (method x train size x seed x model) and their keys.

Cells run smallest training size first, so a partial grid already compares every
method. What a key hashes is in keys.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab import TunelabError
from tunelab.core.config import MethodConfig, ModelConfig, RunConfig, grid_models
from tunelab.methods import METHODS, get_spec, is_trained, needs_local_model, resolve
from tunelab.methods.stages import staged
from tunelab.run.keys import key, task_part
from tunelab.tasks.base import Splits


@dataclass
class Cell:
    method: MethodConfig
    train_size: int
    seed: int
    key: str
    """The store's run id (keys.key)."""
    model: ModelConfig = field(default_factory=ModelConfig)

    @property
    def label(self) -> str:
        return self.method.label or self.method.name


def sizes_of(m: MethodConfig, n_train_pool: int) -> list[int]:
    """The training-set sizes of a method's cells. A method that trains takes a size of 0
    (the default `train_sizes: [0]`, i.e. none given) as the whole training split: `{name:
    lora}` trains on all of it (it got 0 examples and failed before). distill keeps 0 as
    its own clear error (its size is how many inputs a teacher labels)."""
    if m.name == "zero_shot":
        return [0]
    sizes = m.train_sizes or [n_train_pool]
    if get_spec(m.name).trains and m.name != "distill":
        sizes = [s or n_train_pool for s in sizes]
    return [min(s, n_train_pool) for s in sizes]


def cells(cfg: RunConfig, n_train_pool: int, scoring: str | None = None,
          task: dict | None = None) -> list[Cell]:
    """All cells of the grid, smallest training size first (then model, method, seed); a
    method that ignores the seed (MethodSpec.seeded False: zero_shot) at the first seed only.
    `scoring`: the task's data-chosen scoring; classification (a changed prompt and metrics)
    enters the cell key, so such cells never resume from results scored the old way.
    `task`: the task's identity in the key (keys.task_identity; default: its name only)."""
    task = task_part(cfg, scoring, task)
    out = []
    for m_order, model in enumerate(grid_models(cfg)):
        for order, m in enumerate(cfg.methods):
            m = resolve(staged(cfg, m))  # each stage's own lr (an SFT stage under DPO: LoRA's rate)
            settings = m.settings
            if m.models and model.name not in m.models:
                continue
            if model.backend == "openai" and needs_local_model(m):
                raise TunelabError(
                    f"methods.{m.name}: needs the model's weights here ("
                    f"{'trains' if is_trained(m) else 'generates itself'}), but model '{model.name}' "
                    "uses the openai backend (prompting only: "
                    f"{', '.join(n for n, s in METHODS.items() if not s.needs_local_model)})")
            # a method that ignores the seed runs once: its other seeds would repeat it
            seeds = cfg.seeds if get_spec(m.name).seeded else cfg.seeds[:1]
            for size in sizes_of(m, n_train_pool):
                for seed in seeds:
                    k = key(cfg, m, settings, is_trained(m), model, size, seed, task)
                    out.append(((size, m_order, order, seed), Cell(m, size, seed, k, model)))
    names = {m.name for m in grid_models(cfg)}
    for m in cfg.methods:
        unknown = [n for n in m.models if n not in names]
        if unknown:
            raise TunelabError(f"methods.{m.name}.models: '{unknown[0]}' is not a model of this grid. "
                               f"Available: {', '.join(sorted(names))}")
    return [c for _, c in sorted(out, key=lambda t: t[0])]


def shortfalls(cfg: RunConfig, splits: Splits) -> list[str]:
    """One line per split that is smaller than the config asks for (the run goes on with
    what there is, but a user who asked for 50 test examples must hear they got 20)."""
    out = []
    n_test, n_train, n_val = len(splits.test), len(splits.train), len(splits.validation)
    if cfg.task.n_test > n_test:
        hint = (f"; the test split was made as split_fraction {cfg.task.split_fraction} of the "
                "file: raise it or name a test file" if "made test" in splits.source else "")
        out.append(f"task.n_test: {cfg.task.n_test} asked, but the test split has {n_test} "
                   f"examples; evaluating on {n_test}{hint}")
    for m in cfg.methods:
        if m.name == "zero_shot":
            continue
        for size in m.train_sizes:
            if size > n_train:
                out.append(f"methods.{m.label or m.name}.train_sizes: {size} asked, but the "
                           f"training split has {n_train} examples; that cell uses {n_train}")
        dev_size = getattr(resolve(m).settings, "dev_size", 0)  # prompt_search's
        if dev_size > n_val:
            out.append(f"methods.{m.label or m.name}.dev_size: {dev_size} asked, but the "
                       f"validation split has {n_val} examples; searching on {n_val}")
    return out
