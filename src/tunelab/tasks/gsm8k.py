"""gsm8k: grade-school maths word problems, answered with reasoning then `#### number`.

Splits: the official train.jsonl / test.jsonl; validation is split off train with
`split_seed`. Targets keep the worked solution (chain of thought) but drop the
calculator annotations `<<48/2=24>>`, so few-shot exemplars and fine-tuning both show
reasoning in plain text. Scored by the final number only: after `####` in the target,
and the last number in the prediction (commas stripped), equal as numbers. Reasoning
needs room: max_new_tokens defaults to 256 (eval.max_new_tokens overrides it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tunelab.data.readers import DataError, Example, field_str, read_records, split
from tunelab.tasks.base import Splits, Task

INSTRUCTION = """\
Solve the maths word problem. Reason step by step in a few short sentences, then give \
the final answer on its own last line as: #### <number>"""

SHORT_INSTRUCTION = "Solve the problem; end with #### <number>."
CALC = re.compile(r"<<[^>]*>>")


def read(path, errors: list[DataError] | None = None) -> list[Example]:
    out = []
    for line, rec in read_records(path, errors):
        where = f"{path}:{line}"
        try:
            question = field_str(rec, "question", where)
            answer = field_str(rec, "answer", where)
            if "####" not in answer:
                raise DataError(f"{where}: answer: no '#### <number>' final answer")
        except DataError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        out.append(Example(question, CALC.sub("", answer), id=f"{path.name}:{line}", meta={"line": line}))
    return out


@dataclass
class Gsm8k(Task):
    name: str = "gsm8k"
    folder: str = "gsm8k"
    instruction: str = INSTRUCTION
    short_instruction: str = SHORT_INSTRUCTION
    max_new_tokens: int = 256
    metric_names: list[str] = field(default_factory=lambda: ["number_match"])
    primary: str = "number_match"

    def splits(self) -> Splits:
        root = self.root()
        train = read(self.path(self.cfg.train or root / "train.jsonl"))
        test = read(self.path(self.cfg.test or root / "test.jsonl"))
        train, validation = split(train, self.cfg.split_fraction, self.cfg.split_seed + 1)
        return Splits(train, validation, test,
                      source=f"files: {root}/{{train,test}}.jsonl; validation split off train "
                             f"with split_seed={self.cfg.split_seed}")

    def read_file(self, path, errors=None) -> list[Example]:
        return read(path, errors)

    def describe(self) -> str:
        return "maths word problems with chain-of-thought; final-number accuracy"
