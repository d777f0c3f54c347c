"""reverse: say the words of a sentence in reverse order. A task written outside the
package, its examples made in code (no files): what a new task takes is this class and
one registration line."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tunelab.data.readers import Example
from tunelab.tasks.base import Splits, Task

WORDS = "red blue green cat dog bird runs sleeps eats big small old new fast slow".split()


def made(n: int, seed: int, prefix: str) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ws = rng.sample(WORDS, rng.randint(3, 5))
        out.append(Example(" ".join(ws), " ".join(reversed(ws)), id=f"{prefix}:{i}"))
    return out


@dataclass
class Reverse(Task):
    name: str = "reverse"
    instruction: str = "Repeat the words of the sentence in reverse order. Output them only, on one line."
    short_instruction: str = "Reverse the word order."
    max_new_tokens: int = 16
    one_line: bool = True

    def splits(self) -> Splits:
        seed = self.cfg.split_seed
        return Splits(made(24, seed, "train"), made(6, seed + 1, "validation"),
                      made(6, seed + 2, "test"), source=f"made in code, seed {seed}")

    def describe(self) -> str:
        return "sentence -> its words reversed; exact match, token F1"
