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
             label: str = "eval") -> EvalResult:
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
            "idx": i,
            "example_id": ex.id,
            "input": ex.input,
            "target": ex.target,
            "prediction": g.text,
            "scores": scores[i],
            "prompt_tokens": g.prompt_tokens,
            "gen_tokens": g.gen_tokens,
            "latency_s": g.latency_s,
        })
    metrics = {
        name: bootstrap_ci([r["scores"][name] for r in rows], cfg.bootstrap)
        for name in task.metrics
    }
    cleaned = [task.clean(g.text) for g in gens]
    for name, m in task.corpus_metrics.items():
        metrics[name] = corpus_ci(m.fn, cleaned, [e.target for e in examples], cfg.bootstrap)
    return EvalResult(rows, metrics, time.perf_counter() - t0, prompts[:2])
