"""rag: top-k passages of the task's corpus in the prompt, with their source ids.

The corpus (task.corpus: a folder of .txt/.md files or a JSONL of passages) is cut into
overlapping chunks and indexed with MiniLM + faiss; the index is saved in the run's
folder and reloaded when the same chunks are asked for again. The instruction tells the
model to answer only from the passages or say it does not know. Retrieval recall@k is
recorded when examples carry `gold_passages` (source or passage ids). For "RAG + FT",
give the method a training stage: `{name: rag, stages: [{kind: sft}]}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tunelab import TunelabError
from tunelab.backends.prompt import messages
from tunelab.backends.retrieve import passage_index, read_corpus
from tunelab.data.readers import Example
from tunelab.eval.predictor import ChatPredictor, Predictor, PredictorInfo
from tunelab.methods.base import Context, MethodSpec, Shots, instruction, with_user_prefix

RULE = ("Answer only from the passages below. If they do not contain the answer, "
        "reply exactly: I don't know.")


@dataclass
class Settings(Shots):
    chunk_size: int = 800
    """Characters per corpus chunk."""
    chunk_overlap: int = 150
    """Characters shared by consecutive chunks, so no fact is cut in two everywhere."""

    counts: ClassVar[tuple[str, ...]] = ("k", "chunk_size")

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise TunelabError(f"chunk_overlap: must be at least 0 and below chunk_size "
                               f"({self.chunk_size}), got {self.chunk_overlap}")


def recall(gold: list[str], retrieved: list[str]) -> float:
    """Share of gold ids found among the retrieved passage ids (a gold id may name a
    whole source: `doc.md` matches `doc.md#3`).

    >>> recall(["a.md", "b#1"], ["a.md#0", "c#2"])
    0.5
    """
    hits = {r.split("#")[0] for r in retrieved} | set(retrieved)
    return sum(g in hits for g in gold) / len(gold)


def build(ctx: Context) -> Predictor:
    m, s, task = ctx.method, ctx.settings, ctx.task
    if not task.cfg.corpus:
        raise TunelabError(f"methods.{m.name}: rag needs task.corpus (a folder of .txt/.md "
                           "files or a JSONL of passages)")
    passages = read_corpus(task.path(task.cfg.corpus), s.chunk_size, s.chunk_overlap)
    index = passage_index(passages, ctx.run_dir / "index")
    system = f"{instruction(ctx)}\n{RULE}"
    recalls: list[float] = []
    info = PredictorInfo(trainable_params=0, passages=len(passages), index=str(ctx.run_dir / "index"),
                         retrieved={})

    def to_msgs(ex: Example) -> list[dict]:
        (rows,) = index.search([task.user_message(ex)], s.k)
        ids = [index.ids[i] for i in rows]
        info.retrieved[ex.id] = ids
        if ex.meta.get("gold_passages"):
            recalls.append(recall(ex.meta["gold_passages"], ids))
            info.extra[f"recall_at_{s.k}"] = sum(recalls) / len(recalls)
            info.recall_examples = len(recalls)
        context = "\n\n".join(f"[{index.ids[i]}] {index.texts[i]}" for i in rows)
        # the passages go before the last user message; earlier turns stay as they were
        return messages(system, with_user_prefix(task.turns(ex), f"Passages:\n{context}\n\n"))

    return ChatPredictor(ctx.model, ctx.tok, to_msgs, info)


SPEC = MethodSpec("rag", Settings, trains=False, needs_local_model=False, build=build,
                  # with a training stage, the short instruction the stage trained on
                  unset={"prompt": lambda ctx: "short" if ctx.method.stages else "full"})
