"""A generic task from the user's own files.

Records may be prompt/completion, Alpaca (instruction/input/output) or OpenAI chat
`messages` (the last assistant turn is the target). Splits come from the files named in
the config; missing validation/test splits are made from train with `split_seed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab import TunelabError
from tunelab.data import read_examples, split
from tunelab.tasks.base import Splits, Task


@dataclass
class Jsonl(Task):
    name: str = "jsonl"
    instruction: str = "Follow the instruction and reply with the answer only."
    short_instruction: str = "Follow the instruction and reply with the answer only."
    max_new_tokens: int = 128

    def splits(self) -> Splits:
        c = self.cfg
        if not c.train:
            raise TunelabError("task.train: the jsonl task needs a training file")
        train = read_examples(self.path(c.train), c.format)
        made = []
        if c.test:
            test = read_examples(self.path(c.test), c.format)
        else:
            train, test = split(train, c.split_fraction, c.split_seed)
            made.append("test")
        if c.validation:
            validation = read_examples(self.path(c.validation), c.format)
        else:
            train, validation = split(train, c.split_fraction, c.split_seed + 1)
            made.append("validation")
        source = f"files: train={c.train}, validation={c.validation}, test={c.test}"
        if made:
            source += f"; made {', '.join(made)} with split_seed={c.split_seed}"
        return Splits(train, validation, test, source)

    def describe(self) -> str:
        return "your own JSONL/JSON/CSV (prompt/completion, alpaca, messages); exact match, token F1"
