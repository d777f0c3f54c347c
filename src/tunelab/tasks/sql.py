"""sql: question + CREATE TABLE context -> SQL (sql-create-context).

Splits: the data has one file, so each example goes to test, validation or train by a
hash of its question (`split_of`): stable whatever the file order or subset, and a
question asked twice never lands in two splits. Scored by execution accuracy (gold and
predicted query return the same rows on generated databases, run in `tunelab.tasks.sql_sandbox`)
and by exact match after sqlglot normalisation. A prediction that fails to parse or run
scores 0; its error is kept with the prediction (`sql_error`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tunelab.data.readers import DataError, Example, field_str, read_records
from tunelab.tasks.base import SCORED_BY_TASK, Splits, Task
from tunelab.tasks.metrics import METRICS, Metric
from tunelab.tasks.sql_sandbox import execution_match

INSTRUCTION = """\
Write one SQLite query that answers the question, using only the tables and columns \
in the CREATE TABLE statements. Output the SQL query only, on one line, with no explanation."""

SHORT_INSTRUCTION = "Write the SQL query."
FILE = "sql_create_context_subset.jsonl"


def split_of(question: str) -> str:
    """'test' (10%), 'validation' (10%) or 'train', from a hash of the question.

    >>> split_of("How many heads of the departments are older than 56 ?")
    'train'
    """
    bucket = int(hashlib.sha256(question.strip().lower().encode()).hexdigest(), 16) % 10
    return {0: "test", 1: "validation"}.get(bucket, "train")


def read(path, errors: list[DataError] | None = None) -> list[Example]:
    out = []
    for line, rec in read_records(path, errors):
        where = f"{path}:{line}"
        try:
            question = field_str(rec, "question", where)
            context = field_str(rec, "context", where)
            answer = field_str(rec, "answer", where)
        except DataError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        out.append(Example(f"{context}\n\nQuestion: {question}", answer, id=f"{path.name}:{line}",
                           meta={"context": context, "question": question, "line": line}))
    return out


@dataclass
class Sql(Task):
    name: str = "sql"
    folder: str = "sql_create_context"
    instruction: str = INSTRUCTION
    short_instruction: str = SHORT_INSTRUCTION
    max_new_tokens: int = 96
    metric_names: list[str] = field(default_factory=lambda: ["sql_exact"])
    primary: str = "execution_accuracy"

    @property
    def metrics(self) -> dict[str, Metric]:
        return {"execution_accuracy": Metric(SCORED_BY_TASK),
                **{n: METRICS[n] for n in self.metric_names}}

    def splits(self) -> Splits:
        path = self.path(self.cfg.train or FILE)
        parts: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
        for ex in read(path):
            parts[split_of(ex.meta["question"])].append(ex)
        return Splits(parts["train"], parts["validation"], parts["test"],
                      source=f"file: {path}; split by sha256(question) % 10: 0 test, 1 validation")

    def read_file(self, path, errors=None) -> list[Example]:
        return read(path, errors)

    def clean(self, prediction: str) -> str:
        text = prediction.strip()
        if text.startswith("```"):  # models like to fence code
            text = text.strip("`").removeprefix("sql").removeprefix("sqlite")
        return text.strip().split("\n\n")[0].strip()

    def score(self, prediction: str, ex: Example) -> dict:
        pred = self.clean(prediction)
        hit, error = execution_match(pred, ex.target, ex.meta["context"], self.cfg.split_seed)
        out = {"execution_accuracy": hit, **{n: METRICS[n].fn(pred, ex.target) for n in self.metric_names}}
        if error:
            out["sql_error"] = error[:200]
        return out

    def describe(self) -> str:
        return "question + CREATE TABLE -> SQL; execution accuracy (sandboxed SQLite), sqlglot exact match"
