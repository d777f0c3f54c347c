"""classify: text -> one label from a fixed set, from JSONL/CSV records {text, label}.

Splits: the files named in the config (train, and test/validation if given, else made
from train with `split_seed`). The instruction lists the labels seen in training, so
zero-shot prompting knows the answer space. Scored per example by label accuracy and
over the test set by macro-F1 (mean per-label F1, bootstrap CI over examples).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab.data.readers import DataError, Example, detect_format, read_examples, read_records
from tunelab.tasks.base import Splits, Task
from tunelab.tasks.metrics import CORPUS_METRICS, Metric

INSTRUCTION = "Classify the text. Reply with exactly one label from: {labels}. Output the label only."
SHORT_INSTRUCTION = "Classify the text; reply with the label only."


def other_format(path) -> str:
    """A hint when the file holds another known record format (say prompt/completion)."""
    try:
        line, rec = next(read_records(path, []))
        fmt = detect_format(rec, f"{path}:{line}")
    except (DataError, StopIteration):
        return ""
    if fmt == "label":
        return ""
    return (f" (the records are {fmt}, not text/label: use task jsonl, which scores "
            "label-like completions as classification)")


@dataclass
class Classify(Task):
    name: str = "classify"
    instruction: str = INSTRUCTION
    short_instruction: str = SHORT_INSTRUCTION
    max_new_tokens: int = 12
    one_line: bool = True
    metric_names: list[str] = field(default_factory=lambda: ["label_match"])
    primary: str = "label_match"

    @property
    def corpus_metrics(self) -> dict[str, Metric]:
        return {"macro_f1": CORPUS_METRICS["macro_f1"]}

    def read_file(self, path, errors=None) -> list[Example]:
        try:
            return read_examples(path, "label", errors)
        except DataError as e:
            raise DataError(f"{e}{other_format(path)}") from None

    def raw_splits(self) -> Splits:
        return self.file_splits()

    def splits(self) -> Splits:
        s = self.raw_splits()
        labels = sorted({e.target for e in s.train})
        if "{labels}" in self.instruction:
            self.instruction = self.instruction.format(labels=", ".join(labels))
        return s

    def describe(self) -> str:
        return "text -> label from your {text, label} JSONL/CSV; accuracy, macro-F1"
