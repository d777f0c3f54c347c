"""prompt_search: pick the instruction and shot set that score best on validation data.

Candidates are the task's instructions, templated rewrites of them, and the model's own
paraphrases, each crossed with few-shot subsets of the training examples (none, and
seeded k-subsets). At most `budget` of these are scored on a seeded dev slice of the
VALIDATION split (`dev_size` examples); the test split never reaches this method, so the
choice cannot be tuned on the numbers it is reported with. The chosen prompt and every
candidate's dev score are stored with the run.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import ClassVar

from tunelab import TunelabError
from tunelab.backends.generate import generate
from tunelab.backends.prompt import messages, render, shots_of
from tunelab.data.readers import sample
from tunelab.eval.evaluate import evaluate
from tunelab.eval.predictor import Predictor, PredictorInfo
from tunelab.methods.base import Context, MethodSpec, Shots, chat_predictor

REWRITES = (
    "{i}\nReply with the answer only, in exactly the format described.",
    "You are a careful annotator. {i}",
    "Task: {i}\nBe exact: copy values from the input, add nothing.",
)

PARAPHRASE = (
    "Rewrite this instruction so that it is clearer and more precise. Reply with the "
    "rewritten instruction only.\n\n{i}",
    "Say the same instruction in different words, keeping every rule. Reply with the "
    "new instruction only.\n\n{i}",
)

@dataclass
class Settings(Shots):
    budget: int = 12
    """Evaluations (instruction x shot subset) on the dev slice."""
    dev_size: int = 20
    """Validation examples in the dev slice (the test split is never used)."""
    counts: ClassVar[tuple[str, ...]] = ("budget", "dev_size")  # k: 0 searches instructions only


SHOT_SUBSETS = 3
"""Seeded k-shot subsets tried besides no shots at all."""


def instructions(ctx: Context) -> list[str]:
    """The task's own instructions, templated rewrites, and the model's paraphrases."""
    task = ctx.task
    own = [task.instruction, task.short_instruction]
    rewrites = [t.format(i=task.instruction) for t in REWRITES]
    asks = [render(ctx.tok, messages("", p.format(i=task.instruction))) for p in PARAPHRASE]
    gens = generate(ctx.model, ctx.tok, asks, max_new_tokens=160, reuse_prefix=False,
                    label="prompt_search: paraphrases")
    paraphrases = [g.text.strip() for g in gens if len(g.text.split()) >= 3]
    return list(dict.fromkeys(own + rewrites + paraphrases))  # unique, order kept


def shot_sets(ctx: Context) -> list[list]:
    k = min(ctx.settings.k, len(ctx.train))
    sets = [[]]
    if k:
        sets += [sample(ctx.train, k, ctx.seed + s) for s in range(SHOT_SUBSETS)]
    return sets


def candidates(ctx: Context) -> list[tuple[str, list]]:
    """(instruction, shots) pairs within the budget; the task's own zero-shot prompt first."""
    pool = [(i, s) for i in instructions(ctx) for s in shot_sets(ctx)]
    first, rest = pool[:1], pool[1:]
    random.Random(ctx.seed).shuffle(rest)
    return (first + rest)[: max(1, ctx.settings.budget)]


def build(ctx: Context) -> Predictor:
    if not ctx.validation:
        raise TunelabError(f"methods.{ctx.method.name}: prompt_search needs a validation split")
    dev = sample(ctx.validation, ctx.settings.dev_size, ctx.seed)
    dev_cfg = replace(ctx.eval_cfg, bootstrap=100)
    primary = ctx.task.primary
    t0 = time.perf_counter()
    tried = []
    for n, (instr, shots) in enumerate(candidates(ctx)):
        pred = chat_predictor(ctx, ctx.model, instr, shots_of(shots, ctx.task.user_message))
        res = evaluate(pred, ctx.task, dev, dev_cfg, label=f"prompt_search {n + 1}")
        tried.append({"instruction": instr, "shots": [e.id for e in shots],
                      "dev_score": res.metrics[primary][0], "_shots": shots})
    better = (lambda a, b: a > b) if ctx.task.metrics[primary].higher_is_better else (lambda a, b: a < b)
    best = tried[0]
    for t in tried[1:]:
        if better(t["dev_score"], best["dev_score"]):
            best = t
    info = PredictorInfo(
        trainable_params=0,
        train_seconds=time.perf_counter() - t0,  # the search is this method's training
        chosen_prompt={k: v for k, v in best.items() if k != "_shots"},
        search=[{k: v for k, v in t.items() if k != "_shots"} for t in tried],
        dev_examples=[e.id for e in dev], dev_metric=primary,
    )
    return chat_predictor(ctx, ctx.model, best["instruction"],
                          shots_of(best["_shots"], ctx.task.user_message), info)


# it generates paraphrases itself, so it needs the weights here
SPEC = MethodSpec("prompt_search", Settings, trains=False, needs_local_model=True, build=build)
