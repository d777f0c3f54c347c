"""A generic task from the user's own files.

Records may be prompt/completion, Alpaca (instruction/input/output), OpenAI chat
`messages` (the last assistant turn is the target) or text/label. Splits come from the
files named in the config; missing validation/test splits are made from train with
`split_seed`.

Scoring follows the data (task.scoring: auto): when the training completions look like
labels (tunelab.data.scoring.RULE), it is classification: label accuracy per example,
macro-F1 over the test set, and the instruction lists the label set so that prompting
arms answer a label rather than a paraphrase. Otherwise free text: short answers
(scoring.LONG_WORDS) by exact match and token F1, long ones by ROUGE-L, token F1 and
meaning similarity (sentence embeddings), where exact match would sit at 0 for every arm.
The choice and its reason are stored with every run and shown in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.data.readers import Example
from tunelab.data.scoring import KIND_METRICS, choose
from tunelab.tasks.base import Splits, Task
from tunelab.tasks.classify import INSTRUCTION, SHORT_INSTRUCTION
from tunelab.tasks.metrics import CORPUS_METRICS, Metric
from tunelab.tasks.metrics_text import semantic_similarities


@dataclass
class Jsonl(Task):
    name: str = "jsonl"
    instruction: str = "Follow the instruction and reply with the answer only."
    short_instruction: str = "Follow the instruction and reply with the answer only."
    max_new_tokens: int = 128

    def splits(self) -> Splits:
        s = self.file_splits()
        self.scoring = choose([e.target for e in s.train], self.cfg.scoring)
        if self.scoring.kind == "classification":
            self._as_classification(self.scoring.labels)
        elif self.scoring.kind in KIND_METRICS:
            self._as_text(KIND_METRICS[self.scoring.kind])
        return s

    def _as_text(self, names: list[str]) -> None:
        """Free text: the kind's metrics, the user's primary metric (task.metric) first."""
        self.metric_names = list(dict.fromkeys([*([self.cfg.metric] if self.cfg.metric else []), *names]))
        self.primary = self.metric_names[0]

    def score_all(self, predictions: list[str], examples: list[Example]) -> list[dict]:
        """As Task.score_all, with meaning similarity embedded in one batch."""
        names = self.metric_names
        if "semantic_sim" not in names:
            return super().score_all(predictions, examples)
        self.metric_names = [n for n in names if n != "semantic_sim"]
        try:
            rows = super().score_all(predictions, examples)
        finally:
            self.metric_names = names
        sims = semantic_similarities([self.clean(p) for p in predictions], [e.target for e in examples])
        return [{n: {**r, "semantic_sim": x}[n] for n in names} for r, x in zip(rows, sims, strict=True)]

    def _as_classification(self, labels: list[str]) -> None:
        self.metric_names = ["label_match"]
        self.primary = "label_match"
        if self.cfg.metric:  # the user's primary metric still comes first
            self.metric_names = list(dict.fromkeys([self.cfg.metric, "label_match"]))
            self.primary = self.cfg.metric
        self.one_line = True
        self.max_new_tokens = 16  # labels are at most scoring.MAX_WORDS words
        if not self.cfg.instruction:
            self.instruction = INSTRUCTION.format(labels=", ".join(labels))
            self.short_instruction = SHORT_INSTRUCTION

    @property
    def classifies(self) -> bool:
        return self.scoring is not None and self.scoring.kind == "classification"

    @property
    def corpus_metrics(self) -> dict[str, Metric]:
        return {"macro_f1": CORPUS_METRICS["macro_f1"]} if self.classifies else {}

    def describe(self) -> str:
        return ("your own JSONL/JSON/CSV (prompt/completion, alpaca, messages, text/label); "
                "classification (accuracy, macro-F1) if the completions look like labels, "
                "else free text: exact match, token F1 for short answers; ROUGE-L, token F1, "
                "meaning similarity for long ones")
