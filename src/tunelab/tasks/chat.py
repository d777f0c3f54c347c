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

from tunelab.data.check import duplicates
from tunelab.data.readers import Example
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

    def read_split(self, path) -> list[Example]:
        examples = self.read_file(path)
        repeated = {id(p.a) for p in duplicates(examples)}
        return [e for e in examples if id(e) not in repeated]

    def splits(self) -> Splits:
        s = self.file_splits(FILE)
        s.source += "; repeated inputs dropped"
        return s

    def turns(self, ex: Example) -> list[dict]:
        msgs = ex.meta.get("messages")
        return list(msgs[:-1]) if msgs else super().turns(ex)

    def user_message(self, ex: Example) -> str:
        """The last user message (what a few-shot exemplar shows)."""
        users = [m["content"] for m in ex.meta.get("messages", []) if m["role"] == "user"]
        return users[-1] if users else ex.input

    def describe(self) -> str:
        return "multi-turn chat (ShareGPT / OpenAI messages); ROUGE-L, token F1 of the final reply"
