"""distill: a prompting teacher labels inputs, a LoRA student is trained on its answers.

The common real case: few labelled examples, many unlabelled inputs. The teacher is any
prompting method tunelab runs (default dynamic_few_shot over `labelled` gold examples), on
any model of the grid (the openai backend included). It answers N inputs whose targets it
never sees; the student is LoRA trained on those answers by lora.tune (the lora method's
own path: same defaults, stopped on the task's gold validation split).

Which examples, in the cell's seeded order of the training split: the first `labelled`
are the teacher's gold (the very ones a teacher arm at train size `labelled` holds, as
samples are nested), the next N are the inputs it labels. So the teacher never labels an
example it holds as a shot, and the student gets N teacher answers and no gold label: set
against a lora arm at N, only who wrote the labels differs (and `labelled` of the N
inputs). With `unlabelled: FILE` the inputs are N of the file's (seeded), less any input
that is also a gold one; there is then no gold to measure the teacher's agreement by.

The teacher's answers are cached on disk in chunks, keyed by its weights (or endpoint) and
the exact text it is sent, so a resumed grid does not pay the teacher twice, nor again for
the chunks a stopped grid finished; the seconds and tokens stored are those it cost when it ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from tunelab import TunelabError
from tunelab.backends.local_model import cache_root
from tunelab.backends.prompt import messages, render
from tunelab.backends.registry import backend_of
from tunelab.core.cache import cached_json, digest
from tunelab.core.config import MethodConfig, RunConfig, grid_models
from tunelab.data.datasource import data_dir
from tunelab.data.readers import DataError, Example, field_str, normalize_text, read_records, sample
from tunelab.eval.evaluate import evaluate
from tunelab.eval.predictor import ChatPredictor, Predictor, as_text
from tunelab.methods.base import REGISTRY, Context, MethodSpec, Shots, chat_predictor
from tunelab.methods.lora import tune
from tunelab.tasks.metrics import exact_match


@dataclass
class Distill(Shots):
    teacher: str = "dynamic_few_shot"
    """The prompting method that labels the student's inputs."""
    teacher_model: str | None = None
    """The model (a name of the grid's) the teacher runs on; default: the cell's own."""
    labelled: int = 100
    """Gold examples the teacher draws on (its shots)."""
    unlabelled: str | None = None
    """JSONL of inputs (field `input`) to label; default: training inputs, targets hidden."""
    keep_cut: bool = False
    """Also train on teacher answers that used the whole generation budget (default: drop
    them: an answer cut off at the limit is unfinished, often a repetition loop the student
    would learn)."""
    counts: ClassVar[tuple[str, ...]] = ("k", "labelled")

    def __post_init__(self):
        super().__post_init__()
        prompting = [n for n, s in REGISTRY.items() if not s.trains]
        if self.teacher not in prompting:
            why = "trains weights; " if self.teacher in REGISTRY else ""
            raise TunelabError(f"teacher: '{self.teacher}' {why}is not a prompting method. "
                               f"Available: {', '.join(prompting)}")


def check(s: Distill, cfg: RunConfig) -> None:
    """The teacher's model is one of the grid's and can run the teacher; the unlabelled
    file reads (a bad line is named now, before any cell runs)."""
    models = {m.name: m for m in grid_models(cfg)}
    if s.teacher_model is not None:
        if s.teacher_model not in models:
            raise TunelabError(f"teacher_model: '{s.teacher_model}' is not a model of this grid. "
                               f"Available: {', '.join(models)}")
        if models[s.teacher_model].backend == "openai" and REGISTRY[s.teacher].needs_local_model:
            raise TunelabError(f"teacher_model: {s.teacher} needs local weights, but "
                               f"'{s.teacher_model}' uses the openai backend")
    if s.unlabelled is not None:
        read_inputs(s.unlabelled)


def read_inputs(name: str) -> list[Example]:
    """The inputs of an unlabelled JSONL file (no targets), each named by file and line."""
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = data_dir() / path
    out = [Example(field_str(rec, "input", f"{path}:{line}"), "", id=f"{path.name}:{line}")
           for line, rec in read_records(path)]
    if not out:
        raise DataError(f"{path}: no inputs")
    return out


def examples(ctx: Context) -> tuple[list[Example], list[Example]]:
    """(the teacher's gold examples, the inputs it labels), disjoint (module docstring)."""
    s, n, pool = ctx.settings, len(ctx.train), ctx.pool or ctx.train
    if n < 1:
        raise TunelabError("distill: train size 0: give train_sizes (the inputs the teacher labels)")
    if s.unlabelled is None:
        if s.labelled + n >= len(pool):  # sample() keeps file order for a whole pool: not nested
            raise TunelabError(f"distill: labelled {s.labelled} + train size {n} leave no seeded order "
                               f"in the {len(pool)} training examples; lower one or give unlabelled:")
        order = sample(pool, s.labelled + n, ctx.seed)
        return order[:s.labelled], order[s.labelled:]
    gold = sample(pool, s.labelled, ctx.seed)
    seen = {normalize_text(e.input) for e in gold}
    inputs = [e for e in read_inputs(s.unlabelled) if normalize_text(e.input) not in seen]
    return gold, sample(inputs, n, ctx.seed)


def label(ctx: Context, gold: list[Example], inputs: list[Example]) -> tuple[dict, Predictor]:
    """The teacher's answers to `inputs` (targets hidden), its seconds and tokens; cached
    per chunk ("cached": chunks read from disk / all)."""
    s, t0 = ctx.settings, time.perf_counter()
    if s.teacher_model and ctx.load is None:
        raise TunelabError("distill: teacher_model needs the grid's models (Context.load)")
    model, tok = ctx.load(s.teacher_model) if s.teacher_model else (ctx.model, ctx.tok)
    spec = REGISTRY[s.teacher]  # a prompting method with no stages or search: its build alone
    own = {"k": s.k} if "k" in spec.names else {}
    tctx = replace(ctx, model=model, tok=tok, train=gold, settings=None, run_dir=ctx.run_dir / "teacher",
                   method=MethodConfig(name=s.teacher, train_sizes=[len(gold)], settings=own))
    pred = spec.build(replace(tctx, settings=spec.settings_of(tctx.method)))
    hidden = [replace(e, target="") for e in inputs]  # the teacher never holds their labels
    msgs = {e.id: pred.messages(e) for e in hidden}
    fixed, who = ChatPredictor(model, tok, lambda e: msgs[e.id]), backend_of(model).identity(model)
    setup_s, parts = time.perf_counter() - t0, []
    for i in range(0, len(hidden), CHUNK):
        chunk = hidden[i:i + CHUNK]
        prompts = [as_text(tok, msgs[e.id]) for e in chunk]
        key = digest([who, max_new(ctx), ctx.task.one_line, prompts], 20)
        path = cache_root() / "teacher" / f"{key}.json"
        hit = path.exists()
        where = f"teacher {s.teacher} {i + len(chunk)}/{len(hidden)}"
        part = cached_json(path, lambda c=chunk, w=where: _answer(fixed, ctx, c, w))
        if "cut" not in part:  # a chunk cached before `cut` was stored: its answers' token counts
            part["cut"] = [(backend_of(model).count_tokens(tok, a) or 0) >= max_new(ctx) - 1
                           for a in part["answers"]]
        parts.append({**part, "cached": hit})
    return {"answers": [a for p in parts for a in p["answers"]], "cut": [c for p in parts for c in p["cut"]],
            "seconds": setup_s + sum(p["seconds"] for p in parts),
            "prompt_tokens": sum(p["prompt_tokens"] for p in parts),
            "gen_tokens": sum(p["gen_tokens"] for p in parts),
            "cached": f"{sum(p['cached'] for p in parts)}/{len(parts)}"}, pred


def max_new(ctx: Context) -> int:
    """The teacher's generation budget: the run's, else the task's."""
    return ctx.eval_cfg.max_new_tokens or ctx.task.max_new_tokens


CHUNK = 50
"""Inputs labelled and cached together, so a grid stopped while the teacher labels keeps the
chunks it finished (labelling is the long part of a cell: a prompted teacher's long prompts,
once per input)."""


def _answer(pred: Predictor, ctx: Context, chunk: list[Example], label: str) -> dict:
    """One chunk's answers, with the seconds and tokens they took, and which of them used
    the whole generation budget (`cut`)."""
    t0 = time.perf_counter()
    rows = evaluate(pred, ctx.task, chunk, ctx.eval_cfg, label=label).rows
    return {"answers": [r["prediction"] for r in rows], "seconds": time.perf_counter() - t0,
            "cut": [r["gen_tokens"] >= max_new(ctx) for r in rows],
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
            "gen_tokens": sum(r["gen_tokens"] for r in rows)}


def agreement(task, answers: list[str], inputs: list[Example]) -> dict | None:
    """The teacher's answers scored against the gold targets they were made without: exact
    matches and the task's primary metric (None where there is no gold: an unlabelled file)."""
    if not inputs or any(not e.target for e in inputs):
        return None
    primary = task.primary
    if primary in task.metrics:
        scores = task.score_all(answers, inputs)
        value = sum(sc[primary] for sc in scores) / len(scores)
    else:  # a corpus metric (e.g. macro-F1)
        value = task.corpus_metrics[primary].fn([task.clean(a) for a in answers], [e.target for e in inputs])
    em = sum(exact_match(task.clean(a), e.target) for a, e in zip(answers, inputs, strict=True))
    return {"exact_match": em / len(inputs), primary: value, "n": len(inputs)}


def build(ctx: Context) -> Predictor:
    s, task = ctx.settings, ctx.task
    gold, inputs = examples(ctx)
    teacher, tpred = label(ctx, gold, inputs)
    # every finished answer, empty ones too: the student learns what the teacher does (counted
    # below); answers cut off at the generation limit only with keep_cut
    data = [Example(e.input, task.clean(a), id=e.id, meta=e.meta)
            for e, a, cut in zip(inputs, teacher["answers"], teacher["cut"], strict=True)
            if s.keep_cut or not cut]
    if not data:
        raise TunelabError(f"distill: all {len(inputs)} teacher answers were cut off at the generation "
                           f"limit ({max_new(ctx)} tokens); raise eval.max_new_tokens or set keep_cut")
    model, info, system = tune(replace(ctx, train=data))
    student_s = info.train_seconds
    teacher_backend = backend_of(tpred.model)
    info.update(**{
        "teacher": s.teacher, "teacher_model": s.teacher_model, "labelled": len(gold), "k": s.k,
        "teacher_labelled": len(inputs), "teacher_empty": sum(not e.target for e in data),
        "teacher_cut": sum(teacher["cut"]), "student_examples": len(data), "keep_cut": s.keep_cut,
        "teacher_seconds": teacher["seconds"], "student_seconds": student_s,
        # the teacher's labelling is part of what this arm costs once
        "train_seconds": teacher["seconds"] + student_s,
        "teacher_prompt_tokens": teacher["prompt_tokens"], "teacher_gen_tokens": teacher["gen_tokens"],
        "teacher_device": teacher_backend.device(tpred.model),
        "teacher_prices": teacher_backend.prices(tpred.model),
        "teacher_chunks_cached": teacher["cached"],
        "teacher_agreement": agreement(task, teacher["answers"], inputs),
        "teacher_examples": [{"id": e.id, "answer": a} for e, a in zip(inputs[:3], teacher["answers"],
                                                                      strict=False)],
    })
    # The student trained on other inputs than the cell's sample, whose first example
    # compute_cell lints evaluation against: the training rendering of that one, same system.
    info.train_prompt = render(ctx.tok, messages(system, task.turns(ctx.train[0])))
    return chat_predictor(ctx, model, system, info=info)


# its student is LoRA (lora.tune): LoRA's lr; it trains on teacher answers, not the cell's
# subset, so the min_budget floor is not exact; its student's adapter is not exported
SPEC = MethodSpec("distill", Distill, trains=True, needs_local_model=True, build=build, check=check,
                  lr=2e-3)
