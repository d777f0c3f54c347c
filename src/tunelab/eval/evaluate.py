"""Run a Predictor over examples: per-example predictions, scores, costs, bootstrap CIs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tunelab.backends.registry import backend_of
from tunelab.core.config import EvalConfig
from tunelab.data.readers import Example
from tunelab.eval.predictor import Predictor, as_text
from tunelab.tasks.base import Task
from tunelab.tasks.metrics import bootstrap_ci, corpus_ci


@dataclass
class EvalResult:
    rows: list[dict]
    metrics: dict[str, tuple[float, float, float]]
    """name -> (mean, CI low, CI high)."""
    seconds: float
    prompts: list[str] = field(default_factory=list)
    """The exact rendered prompts of the first examples (settings swing scores)."""


def evaluate(pred: Predictor, task: Task, examples: list[Example], cfg: EvalConfig,
             label: str = "eval", start: int = 0) -> EvalResult:
    """Score `examples` (the test slice, or the part of it from position `start` on: a
    round of sequential evaluation; rows keep their positions in the slice)."""
    t0 = time.perf_counter()
    # messages once per example (a method may record what it chose for each), rendered
    # here for every method: the API model is sent the same messages the text shows
    msgs = [pred.messages(e) for e in examples]
    prompts = [as_text(pred.tok, m) for m in msgs]
    max_new = cfg.max_new_tokens or task.max_new_tokens
    gens = backend_of(pred.model).generate(pred.model, pred.tok, msgs, prompts, max_new,
                                           batch_size=cfg.batch_size, label=label, one_line=task.one_line)
    scores = task.score_all([g.text for g in gens], examples)
    rows = []
    for i, (ex, g) in enumerate(zip(examples, gens, strict=True)):
        rows.append({
            "idx": start + i,
            "example_id": ex.id,
            "input": ex.input,
            "target": ex.target,
            "prediction": g.text,
            "scores": scores[i],
            "prompt_tokens": g.prompt_tokens,
            "gen_tokens": g.gen_tokens,
            "latency_s": g.latency_s,
        })
    return EvalResult(rows, summarize(rows, task, cfg), time.perf_counter() - t0, prompts[:2])


def summarize(rows: list[dict], task: Task, cfg: EvalConfig) -> dict[str, tuple[float, float, float]]:
    """Each metric's (mean, CI low, CI high) over scored rows (per-example metrics from
    their scores, corpus metrics from the predictions and targets)."""
    metrics = {
        name: bootstrap_ci([r["scores"][name] for r in rows], cfg.bootstrap)
        for name in task.metrics
    }
    cleaned = [task.clean(r["prediction"]) for r in rows]
    for name, m in task.corpus_metrics.items():
        metrics[name] = corpus_ci(m.fn, cleaned, [r["target"] for r in rows], cfg.bootstrap)
    return metrics


def joined(parts: list[EvalResult], task: Task, cfg: EvalConfig) -> EvalResult:
    """Rounds of one predictor's evaluation as one result over all their rows."""
    rows = [r for p in parts for r in p.rows]
    return EvalResult(rows, summarize(rows, task, cfg), sum(p.seconds for p in parts), parts[0].prompts)
