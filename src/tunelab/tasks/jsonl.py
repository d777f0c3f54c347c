"""A generic task from the user's own files.

Records may be prompt/completion, Alpaca (instruction/input/output) or OpenAI chat
`messages` (the last assistant turn is the target). Splits come from the files named in
the config; missing validation/test splits are made from train with `split_seed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.tasks.base import Splits, Task


@dataclass
class Jsonl(Task):
    name: str = "jsonl"
    instruction: str = "Follow the instruction and reply with the answer only."
    short_instruction: str = "Follow the instruction and reply with the answer only."
    max_new_tokens: int = 128

    def splits(self) -> Splits:
        return self.file_splits()

    def describe(self) -> str:
        return "your own JSONL/JSON/CSV (prompt/completion, alpaca, messages); exact match, token F1"
