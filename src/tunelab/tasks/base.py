"""What every task provides: its data splits, instruction, and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tunelab import TunelabError
from tunelab.core.config import TaskConfig
from tunelab.data.datasource import data_dir, resolve
from tunelab.data.readers import DataError, Example, read_examples, sample, split
from tunelab.data.scoring import Scoring
from tunelab.tasks.metrics import METRICS, Metric, get_metric
from tunelab.tasks.metrics_text import first_line


def _scored_by_task(pred: str, ref: str) -> float:
    raise TunelabError("this metric needs more than (prediction, reference): the task's score() computes it")


SCORED_BY_TASK = _scored_by_task
"""The fn of a Metric that a task computes itself in score()/score_all() (it needs
state: an SQL schema, a style classifier); the Metric still carries higher_is_better."""


@dataclass
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    source: str
    """How the splits were obtained (recorded with every run)."""


@dataclass
class Task:
    """A task knows how to load its data, phrase its prompt and score a prediction."""

    cfg: TaskConfig
    name: str = "task"
    folder: str = ""
    instruction: str = "Answer the request."
    short_instruction: str = "Answer the request."
    max_new_tokens: int = 64
    one_line: bool = False
    """Only the first non-empty line is scored (see clean): generation stops after it."""
    metric_names: list[str] = field(default_factory=lambda: ["exact_match", "token_f1"])
    primary: str = "exact_match"
    scoring: Scoring | None = None
    """Set by tasks that choose their scoring from the data (jsonl), stored with each run."""
    version: ClassVar[int] = 1
    """Part of every cell key. Bump it (in the task's class) whenever the instruction, the
    cleaning (clean), the scoring or the way splits are made changes, so a resumed grid
    never mixes results of two versions of the task (as lm-eval versions its tasks).
    Data file contents need no bump: their hash is in the key already."""

    def __post_init__(self):
        if self.cfg.metric:
            get_metric(self.cfg.metric)
            if self.cfg.metric not in self.metric_names:
                self.metric_names = [self.cfg.metric, *self.metric_names]
            self.primary = self.cfg.metric
        if self.cfg.instruction:
            self.instruction = self.short_instruction = self.cfg.instruction

    @property
    def metrics(self) -> dict[str, Metric]:
        """Per-example metrics: each prediction gets a score, averaged over the test set."""
        return {n: METRICS[n] for n in self.metric_names}

    @property
    def corpus_metrics(self) -> dict[str, Metric]:
        """Metrics over the whole test set, fn(preds, refs) (e.g. macro-F1)."""
        return {}

    @property
    def all_metrics(self) -> dict[str, Metric]:
        return {**self.metrics, **self.corpus_metrics}

    def root(self) -> Path:
        """task.data_dir, else the task's folder found by tunelab.data.datasource.resolve."""
        if self.cfg.data_dir:
            return Path(self.cfg.data_dir)
        return resolve(self.folder) if self.folder else data_dir()

    def path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() or p.exists() else self.root() / p

    def splits(self) -> Splits:
        raise NotImplementedError

    def load(self) -> Splits:
        """Splits with the test set cut to the fixed, seeded evaluation slice."""
        s = self.splits()
        if not s.train or not s.test:
            raise TunelabError(f"task {self.name}: empty train or test split ({s.source})")
        s.test = sample(s.test, self.cfg.n_test, self.cfg.split_seed)
        return s

    def read_file(self, path, errors: list[DataError] | None = None) -> list[Example]:
        """Examples of one file in this task's format (`tunelab data check --task`)."""
        return read_examples(path, self.cfg.format, errors)

    def read_split(self, path) -> list[Example]:
        """The examples of one split file (a task may drop some, as chat drops repeats)."""
        return self.read_file(path)

    def file_splits(self, train_file: str | None = None) -> Splits:
        """Splits from the files the config names: train (default `train_file`), and
        validation/test if given, else made from train with split_seed (in the source)."""
        c = self.cfg
        train_name = c.train or train_file
        if not train_name:
            raise TunelabError(f"task.train: the {self.name} task needs a training file")
        train = self.read_split(self.path(train_name))
        made = []
        if c.test:
            test = self.read_split(self.path(c.test))
        else:
            train, test = split(train, c.split_fraction, c.split_seed)
            made.append("test")
        if c.validation:
            validation = self.read_split(self.path(c.validation))
        else:
            train, validation = split(train, c.split_fraction, c.split_seed + 1)
            made.append("validation")
        source = f"files: train={train_name}, validation={c.validation}, test={c.test}"
        if made:
            source += f"; made {', '.join(made)} with split_seed={c.split_seed}"
        return Splits(train, validation, test, source)

    def user_message(self, ex: Example) -> str:
        return ex.input

    def turns(self, ex: Example) -> list[dict]:
        """The conversation the model answers (chat tasks give several turns)."""
        return [{"role": "user", "content": self.user_message(ex)}]

    def clean(self, prediction: str) -> str:
        """The part of the generated text that is scored: the first non-empty line for a
        one_line task (generation stops there too), else the whole text."""
        return first_line(prediction) if self.one_line else prediction.strip()

    def score(self, prediction: str, ex: Example) -> dict[str, float]:
        pred = self.clean(prediction)
        return {n: m.fn(pred, ex.target) for n, m in self.metrics.items()}

    def score_all(self, predictions: list[str], examples: list[Example]) -> list[dict]:
        """Scores of every prediction (tasks whose scorer is a model batch this)."""
        return [self.score(p, e) for p, e in zip(predictions, examples, strict=True)]

    def describe(self) -> str:
        return self.instruction.splitlines()[0]
