"""classify: text -> one label from a fixed set, from JSONL/CSV records {text, label}.

Splits: the files named in the config (train, and test/validation if given, else made
from train with `split_seed`). The instruction lists the labels seen in training, so
zero-shot prompting knows the answer space. Scored per example by label accuracy and
over the test set by macro-F1 (mean per-label F1, bootstrap CI over examples).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab import TunelabError
from tunelab.data import Example, read_examples, split
from tunelab.metrics import CORPUS_METRICS, Metric
from tunelab.tasks.base import Splits, Task

INSTRUCTION = "Classify the text. Reply with exactly one label from: {labels}. Output the label only."
SHORT_INSTRUCTION = "Classify the text; reply with the label only."


@dataclass
class Classify(Task):
    name: str = "classify"
    instruction: str = INSTRUCTION
    short_instruction: str = SHORT_INSTRUCTION
    max_new_tokens: int = 12
    metric_names: list[str] = field(default_factory=lambda: ["label_match"])
    primary: str = "label_match"

    @property
    def corpus_metrics(self) -> dict[str, Metric]:
        return {"macro_f1": CORPUS_METRICS["macro_f1"]}

    def read_file(self, path, errors=None) -> list[Example]:
        return read_examples(path, "label", errors)

    def raw_splits(self) -> tuple[list[Example], list[Example], list[Example], str]:
        c = self.cfg
        if not c.train:
            raise TunelabError("task.train: the classify task needs a training file of {text, label}")
        train = self.read_file(self.path(c.train))
        made = []
        if c.test:
            test = self.read_file(self.path(c.test))
        else:
            train, test = split(train, c.split_fraction, c.split_seed)
            made.append("test")
        if c.validation:
            validation = self.read_file(self.path(c.validation))
        else:
            train, validation = split(train, c.split_fraction, c.split_seed + 1)
            made.append("validation")
        source = f"files: train={c.train}, validation={c.validation}, test={c.test}"
        if made:
            source += f"; made {', '.join(made)} with split_seed={c.split_seed}"
        return train, validation, test, source

    def splits(self) -> Splits:
        train, validation, test, source = self.raw_splits()
        labels = sorted({e.target for e in train})
        if "{labels}" in self.instruction:
            self.instruction = self.instruction.format(labels=", ".join(labels))
        return Splits(train, validation, test, source)

    def clean(self, prediction: str) -> str:
        lines = prediction.strip().splitlines()
        return lines[0].strip() if lines else ""

    def describe(self) -> str:
        return "text -> label from your {text, label} JSONL/CSV; accuracy, macro-F1"
