"""chat: reply as the assistant in a (multi-turn) conversation.

Reads ShareGPT (`conversations: [{from, value}]`), OpenAI `messages` and Alpaca records
(default: the FastChat ShareGPT sample). The model sees every turn before the final
assistant turn and is scored on that turn by ROUGE-L and token F1. Fine-tuning trains on
every assistant turn of the conversation and on no user or system token (train.encode
builds the mask from each assistant turn's span in the rendered template).

Splits: records whose input repeats an earlier one (case/punctuation-insensitive) are
dropped first (the FastChat sample repeats its identity questions), then test and
validation are split off with `split_seed`, or come from the files named in the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab.check import duplicates
from tunelab.data import Example, read_examples, split
from tunelab.tasks.base import Splits, Task

INSTRUCTION = ("You are a helpful assistant. Reply to the user's last message, "
               "consistent with the conversation.")
FILE = "dummy_conversation.json"


@dataclass
class Chat(Task):
    name: str = "chat"
    folder: str = "sharegpt_fastchat_dummy"
    instruction: str = INSTRUCTION
    short_instruction: str = INSTRUCTION
    max_new_tokens: int = 96
    metric_names: list[str] = field(default_factory=lambda: ["rouge_l", "token_f1"])
    primary: str = "rouge_l"

    def _read(self, name: str) -> list[Example]:
        examples = read_examples(self.path(name), self.cfg.format)
        repeated = {id(p.a) for p in duplicates(examples)}
        return [e for e in examples if id(e) not in repeated]

    def splits(self) -> Splits:
        c = self.cfg
        train = self._read(c.train or FILE)
        made = []
        if c.test:
            test = self._read(c.test)
        else:
            train, test = split(train, c.split_fraction, c.split_seed)
            made.append("test")
        if c.validation:
            validation = self._read(c.validation)
        else:
            train, validation = split(train, c.split_fraction, c.split_seed + 1)
            made.append("validation")
        source = f"files: train={c.train or FILE}, test={c.test}; repeated inputs dropped"
        if made:
            source += f"; made {', '.join(made)} with split_seed={c.split_seed}"
        return Splits(train, validation, test, source)

    def turns(self, ex: Example) -> list[dict]:
        msgs = ex.meta.get("messages")
        return list(msgs[:-1]) if msgs else super().turns(ex)

    def user_message(self, ex: Example) -> str:
        """The last user message (what a few-shot exemplar shows)."""
        users = [m["content"] for m in ex.meta.get("messages", []) if m["role"] == "user"]
        return users[-1] if users else ex.input

    def describe(self) -> str:
        return "multi-turn chat (ShareGPT / OpenAI messages); ROUGE-L, token F1 of the final reply"
