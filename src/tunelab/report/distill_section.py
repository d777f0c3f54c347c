"""The report's "Distillation" section: each distill arm (a student trained on a teacher's
answers) set against the student trained on gold labels (a lora arm of the same model and
training size) and against the teacher itself (the teacher method's arm at `labelled`
examples, same k, on the teacher's model), each by the paired difference on the test
examples with its 95% CI (verdict.compare, as everywhere in the report); with how well the
teacher's labels agreed with the gold ones it never saw, and what labelling cost. A
comparison arm that is not in the store is named as the entry to add, never made up.
Reads stored arms only (no torch).
"""

from __future__ import annotations

from tunelab.core.config import CostConfig
from tunelab.decide.cost import tokens_usd
from tunelab.decide.verdict import compare
from tunelab.eval.predictor import PredictorInfo


def _k(arm) -> int | None:
    return (arm.cell.get("method") or {}).get("k")


def _plain(arm) -> bool:
    """Neither staged nor searched: the arm is what its method name says."""
    m = arm.cell.get("method") or {}
    return not m.get("stages") and not m.get("search")


def gold_arm(arms: list, d):
    """The lora arm trained on gold labels at the student's size, on its model."""
    found = [a for a in arms if a.method == "lora" and a.model == d.model and a.n_train == d.n_train
             and _plain(a)]
    return found[0] if found else None


def _teacher_n(info: PredictorInfo) -> int:
    """The training size of the teacher's own arm (zero_shot's cells are all n=0)."""
    return 0 if info.teacher == "zero_shot" else info.labelled


def teacher_arm(arms: list, d):
    """The teacher's own arm: its method, its model, `labelled` examples, the same k."""
    i = d.info
    model = i.teacher_model or d.model
    found = [a for a in arms if a.method == i.teacher and a.model == model
             and a.n_train == _teacher_n(i) and _k(a) == i.k and _plain(a)]
    return found[0] if found else None


def _entry(method: str, n: int, k: int | None = None, model: str | None = None) -> str:
    """The config entry that would add a missing comparison arm."""
    parts = [f"name: {method}"] + ([f"k: {k}"] if k is not None else []) + [f"train_sizes: [{n}]"]
    parts += [f"models: [{model}]"] if model else []
    return "{" + ", ".join(parts) + "}"


def versus(d, other, metric: str, margin: float, role: str, add: str) -> dict:
    """One comparison row: student - other, paired, or which entry to add."""
    if other is None:
        return {"role": role, "arm": None, "add": add}
    c = compare(d, other, metric, margin)
    return {"role": role, "arm": other.name, "score": other.ci[metric], "d": c.d, "lo": c.lo,
            "hi": c.hi, "n": c.n, "sentence": c.sentence()}


def rows(arms: list, metric: str, margin: float, cost: CostConfig) -> list[dict]:
    """One entry per distill arm: its score, the two comparisons, the teacher's label
    agreement and labelling cost (seconds; tokens; dollars for a priced API teacher)."""
    out = []
    for d in (a for a in arms if a.method == "distill" and a.runs[0].get("info")):
        i = d.info
        if i.teacher is None:
            continue
        tmodel = i.teacher_model
        teacher_tok = (d.info_mean("teacher_prompt_tokens"), d.info_mean("teacher_gen_tokens"))
        api = i.teacher_device == "api"
        out.append({
            "arm": d.name, "score": d.ci[metric],
            "teacher": f"{i.teacher} (k={i.k}) over {i.labelled} gold examples"
                       f" on {tmodel or d.model}",
            "labelled_by_teacher": i.teacher_labelled, "empty": i.teacher_empty or 0,
            "cut": i.teacher_cut or 0, "kept": i.student_examples, "keep_cut": i.keep_cut,
            "agreement": i.teacher_agreement,
            "teacher_s": d.info_mean("teacher_seconds"), "student_s": d.info_mean("student_seconds"),
            "teacher_tokens": teacher_tok, "device": i.teacher_device,
            "teacher_usd": tokens_usd(*teacher_tok, tuple(i.teacher_prices or (None, None)), cost)
                           if api else None,
            "comparisons": [
                versus(d, gold_arm(arms, d), metric, margin, "student on gold labels",
                       _entry("lora", d.n_train, model=d.model if d.show_model else None)),
                versus(d, teacher_arm(arms, d), metric, margin, "the teacher itself",
                       _entry(i.teacher, _teacher_n(i), i.k, tmodel)),
            ],
        })
    return out
