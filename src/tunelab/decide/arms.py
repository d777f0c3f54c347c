"""The arms of a store: finished runs grouped into arms, with their per-example scores.

An arm is one resolved configuration minus the seed (task, model, evaluation, method
settings, training settings, training-set size); seeds of one arm are averaged per test
example before bootstrapping. Two arms that would share a name (two `lora` entries with
different settings, or runs of different configs in one store) are named apart by the
settings that differ, never averaged together. Reads only the store: no torch.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from tunelab.core.config import (
    EvalConfig,
    MethodConfig,
    ModelConfig,
    TaskConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from tunelab.core.store import Store
from tunelab.decide.verdict import MARGIN
from tunelab.eval.predictor import PredictorInfo
from tunelab.eval.predictor import stored_info as run_info  # a stored cell's info, typed
from tunelab.tasks.metrics import bootstrap_ci
from tunelab.train.stopping import Curve, convergence


@dataclass
class Arm:
    model: str
    label: str
    method: str
    n_train: int
    runs: list[dict]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """metric -> example_id -> score averaged over seeds."""
    ci: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    higher: dict[str, bool] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    seed_means: dict[str, list[float]] = field(default_factory=dict)
    """metric -> one mean per seed (the spread a different seed would give)."""
    seed_scores: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    """metric -> seed -> example_id -> score (the forecast resamples seeds and examples)."""
    show_model: bool = False
    """Several models in the report: names carry the model."""
    sized: bool = False
    """Its method ran at several training-set sizes (e.g. few-shot pools): a learning curve."""

    @property
    def name(self) -> str:
        n = f" n={self.n_train}" if self.trained or self.sized else ""
        return f"{self.model + ' ' if self.show_model else ''}{self.label}{n}"

    @property
    def curve(self) -> tuple[str, str]:
        """Arms on one learning curve share model and method label."""
        return self.model, self.label

    @property
    def cost_s(self) -> float:
        """Compute spent on the arm per seed: training plus evaluation wall time."""
        return self.mean("train_seconds") + self.mean("eval_seconds")

    def info_mean(self, key: str) -> float:
        """Mean over seeds of a PredictorInfo field (0.0 where no seed has it)."""
        vals = [getattr(run_info(r), key) for r in self.runs if r.get("info")]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else 0.0

    @property
    def cell(self) -> dict:
        """The first run's stored cell config (method, model, train, scoring, primary...)."""
        return json.loads(self.runs[0]["config"] or "{}").get("cell", {})

    @property
    def trained(self) -> bool:
        return stored_trained(self.cell, self.method)

    @property
    def info(self) -> PredictorInfo:
        """What the first seed's method reported (eval/predictor.py)."""
        return run_info(self.runs[0])

    @property
    def convergence(self) -> str | None:
        """Why a seed of this arm did not converge (the first one), or None."""
        for r in self.runs:
            converged, note = judged(run_info(r))
            if converged is False:
                return note or "validation loss"
        return None

    @property
    def collapsed(self) -> str | None:
        """Why the arm's answers say nothing about its method: one answer to nearly every
        test example (COLLAPSED) while the references vary; else None."""
        return collapse([e["prediction"] for e in self.examples], [e["target"] for e in self.examples])

    @property
    def looks(self) -> int:
        """Looks at the test slice its comparisons are adjusted for: those sequential
        evaluation planned (decide/looks.py); 1 for a run scored on the whole slice."""
        return max(int(run_info(r).looks or 1) for r in self.runs)

    @property
    def n_scored(self) -> int:
        """Test examples the arm was scored on (the fewest of its seeds)."""
        return min(len(d) for d in self.scores.values()) if self.scores else len(self.examples)

    @property
    def stopped(self) -> str | None:
        """Why sequential evaluation stopped scoring it; None if it ran on a fixed slice."""
        return run_info(self.runs[0]).stopped

    @property
    def training(self) -> str:
        """How training ended, for the table: steps, epochs, why it stopped."""
        i = self.info
        if not self.trained or i.train_steps is None:
            return "—"
        flag = "; NOT CONVERGED" if self.convergence else ""
        if i.stop_reason is None:  # stored before validation-driven training, or staged
            return f"{i.train_steps} steps{flag}"
        return (f"{i.train_steps} steps, {i.epochs_trained or 0:.1f} ep, "
                f"{i.stop_reason.replace('_', ' ')}{flag}")

    def mean(self, key: str) -> float:
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return float(np.mean(vals)) if vals else 0.0


PARTS = {"task": TaskConfig, "eval": EvalConfig, "model": ModelConfig, "method": MethodConfig,
         "train": TrainConfig}
NOT_ARM = {"method": ("train_sizes", "models", "label", "train"), "train": ("save",),
           "eval": ("batch_size", "bootstrap", "sequential", "round_size"),
           "model": ("api_key_env", "concurrency", "max_retries", "timeout", "price_prompt",
                     "price_completion")}
"""Settings that choose which cells run, how fast, or what they are called, not what an arm
is: the same lora n=50 from configs listing sizes [50] and [50, 100] is one arm. (A method's
train overrides are in the resolved train settings already.)"""


def settings(run: dict) -> dict[str, object]:
    """The run's resolved configuration minus seed and training-set size, flattened
    ({"train.lr": 0.001, ...}). Fields a stored config lacks (it predates them) read as
    their defaults, so an older run is not split from a newer one."""
    cfg = json.loads(run["config"] or "{}")
    cell = cfg.get("cell", {})
    stored = {"task": cfg.get("task"), "eval": cfg.get("eval"), "model": cell.get("model"),
              "method": cell.get("method") or {"name": run["method"]}, "train": cell.get("train")}
    if not stored_trained(cell, run["method"]):
        del stored["train"]  # prompting arms ignore training settings, as the cell key does
    flat = {}
    for part, d in stored.items():
        for k, v in {**to_dict(PARTS[part]()), **(d or {})}.items():
            if k not in NOT_ARM.get(part, ()):
                flat[f"{part}.{k}"] = v
    return flat


def _same(run: dict) -> tuple[str, str, str]:
    return run["model"], run["label"], json.dumps(settings(run), sort_keys=True, default=str)


def _show(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)


def distinct_labels(runs: list[dict]) -> dict[tuple[str, str, str], str]:
    """Display label per settings: the method label, and where two settings share a model
    and label, the settings that differ, e.g. "lora (lr=0.001)"."""
    share = defaultdict(dict)
    for r in runs:
        share[(r["model"], r["label"])][_same(r)] = settings(r)
    out = {}
    for (_, label), group in share.items():
        differ = sorted(k for k in set().union(*group.values())
                        if len({_show(s.get(k)) for s in group.values()}) > 1)
        leaf = [k.split(".", 1)[1] for k in differ]
        for same, s in group.items():
            named = [f"{leaf[i] if leaf.count(leaf[i]) == 1 else k}={_show(s.get(k))}"
                     for i, k in enumerate(differ)]
            out[same] = f"{label} ({', '.join(named)})" if named else label
    return out


def load_arms(store: Store, keys: set[str] | None = None) -> list[Arm]:
    """Finished runs grouped into arms (all runs, or only those whose key is in `keys`)."""
    # probe arms and exports are read by probes/summary.py and report/shipped_section.py
    done = [r for r in store.runs("done", kind="cell") if (keys is None or r["id"] in keys)]
    labels = distinct_labels(done)
    groups = defaultdict(dict)
    for r in sorted(done, key=lambda r: r["finished"] or 0):
        # one run per seed: a cell run again under another config is the same experiment
        groups[(r["model"], labels[_same(r)], r["method"], r["n_train"])][r["seed"]] = r
    arms = []
    for (model, label, method, n), by_seed in groups.items():
        runs = list(by_seed.values())
        arm = Arm(model, label, method, n, runs)
        per = defaultdict(lambda: defaultdict(list))
        stored = defaultdict(list)
        for r in runs:
            for name, m in store.metrics(r["id"]).items():
                arm.higher[name] = bool(m["higher_is_better"])
                arm.seed_means.setdefault(name, []).append(m["value"])
                stored[name].append((m["value"], m["lo"], m["hi"]))
            preds = predictions(store, r["id"])
            arm.examples = arm.examples or preds
            for p in preds:
                eid = p["example_id"]
                for name, v in p["scores"].items():
                    if isinstance(v, int | float):  # tasks may keep a note, e.g. an SQL error
                        per[name][eid].append(v)
                        arm.seed_scores.setdefault(name, {}).setdefault(r["seed"], {})[eid] = v
        arm.scores = {k: {e: float(np.mean(v)) for e, v in d.items()} for k, d in per.items()}
        arm.ci = {k: bootstrap_ci(list(d.values())) for k, d in arm.scores.items()}
        for name, vals in stored.items():  # corpus metrics (e.g. macro-F1): no per-example score
            if name not in arm.ci:  # the stored bootstrap CI; over seeds, the mean of each bound
                arm.ci[name] = tuple(float(np.mean(v)) for v in zip(*vals, strict=True))
        arms.append(arm)
    several = len({a.model for a in arms}) > 1
    sizes = defaultdict(set)
    for a in arms:
        sizes[a.curve].add(a.n_train)
    for a in arms:
        a.show_model = several
        a.sized = len(sizes[a.curve]) > 1
    return sorted(arms, key=arm_order)


PROMPT_COST = {"zero_shot": 0, "few_shot": 1, "dynamic_few_shot": 2, "rag": 3, "prompt_search": 4}
"""Prompting methods from cheapest to dearest (prompt tokens, extra calls): the order they
are listed in; any other untrained method comes after them."""


def arm_order(a: Arm) -> tuple:
    """Per model: prompting arms by cost, then trained arms by training-set size."""
    rank = 0 if a.trained else PROMPT_COST.get(a.method, len(PROMPT_COST))
    return a.model, a.trained, rank, a.n_train, a.label


def predictions(store: Store, run_id: str) -> list[dict]:
    """A run's stored predictions, their example ids made unique (unique_ids)."""
    preds = store.predictions(run_id)
    ids = unique_ids([p["example_id"] for p in preds])
    return [{**p, "example_id": i} for p, i in zip(preds, ids, strict=True)]


def unique_ids(ids: list[str]) -> list[str]:
    """Example ids made unique by their order of occurrence. Runs stored while a one-line
    JSON array gave every record the id `file:1` hold one id for the whole test slice:
    keyed by id, their scores averaged into one "example" and every interval had zero
    width. The slice's order is the same for every seed and arm, so repeats still pair.

    >>> unique_ids(["a", "b", "a", "a"])
    ['a', 'b', 'a#2', 'a#3']
    """
    seen: Counter = Counter()
    out = []
    for i in ids:
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


COLLAPSED = 0.9
"""Share of test examples given one and the same answer that marks an arm as collapsed,
when no reference answer is that common (a lr too hot for its schedule left LoRA answering
'give_opinion' to 40 of 40 test inputs of a 9-label file)."""


def collapse(predictions: list[str], targets: list[str]) -> str | None:
    """Why these predictions are one answer repeated, or None.

    >>> collapse(["a"] * 9 + ["b"], list("abcdefghij"))
    "one answer ('a') to 9 of 10 test examples, whose references hold 10 different ones"
    >>> collapse(["a"] * 9 + ["b"], ["a"] * 10) is None, collapse(list("ab"), list("ab")) is None
    (True, True)
    """
    if len(predictions) < 10:
        return None
    (top, n), = Counter(p.strip() for p in predictions).most_common(1)
    if n < COLLAPSED * len(predictions) or Counter(targets).most_common(1)[0][1] >= n:
        return None
    return (f"one answer ({top[:40]!r}) to {n} of {len(predictions)} test examples, whose "
            f"references hold {len(set(targets))} different ones")


def judged(info: PredictorInfo) -> tuple[bool | None, str | None]:
    """(converged, why not) of a stored run: its stored validation curve judged by the
    current rule (stopping.convergence: a corrected rule reaches stored runs too), else the
    flag stored with it. A run trained in stages (sft+dpo) is judged on each stage too."""
    for stage in info.stages or []:  # a stage's record: its tune's info, its label and size
        converged, note = judged(PredictorInfo.from_json(stage))
        if converged is False:
            return False, f"its {stage.get('stage', 'training')} stage: {note}"
    if len(info.val_losses or []) >= 2 and info.stop_reason:
        return convergence(Curve(info.val_steps, info.val_losses), info.stop_reason)
    return info.converged, info.convergence_note


TRAINED_UNRECORDED = {"lora", "full", "prompt_tuning", "dpo"}
"""The methods that trained when runs did not yet record `trained` (key version 1)."""


def stored_trained(cell: dict, method: str) -> bool:
    """Whether a run changed weights, as stored with it. Runs stored before `trained` was
    (key version 1) fall back to the method names that trained then, or any stages."""
    if "trained" in cell:
        return bool(cell["trained"])
    m = cell.get("method") or {"name": method}
    return m["name"] in TRAINED_UNRECORDED or bool(m.get("stages"))


def primary_metric(arms: list[Arm]) -> str:
    """The primary metric, as stored with the runs. Runs stored before it was fall back
    to the task's own (tasks import no torch, so the report still needs none)."""
    if arms[0].cell.get("primary"):
        return arms[0].cell["primary"]
    from tunelab.tasks import get_task

    return get_task(from_dict(TaskConfig, json.loads(arms[0].runs[0]["config"])["task"])).primary


def shared_metrics(arms: list[Arm]) -> list[str]:
    """Metrics every arm has, in the first arm's order."""
    return [m for m in arms[0].ci if all(m in a.ci for a in arms)]


def stored_configs(arms: list[Arm]) -> list[dict]:
    """The run config every run of these arms was made with, as stored (one per run)."""
    return [json.loads(r["config"] or "{}") for a in arms for r in a.runs]


def stored_margin(arms: list[Arm]) -> float:
    """The equivalence margin (points) the runs were made with: the largest, if they differ."""
    cfgs = stored_configs(arms)
    return max((c.get("report", {}).get("margin", MARGIN) for c in cfgs), default=MARGIN)


def stored_target(arms: list[Arm]) -> float | None:
    """The forecast's goal the runs were made with (report.target), if any: the highest."""
    cfgs = stored_configs(arms)
    found = [c["report"]["target"] for c in cfgs if c.get("report", {}).get("target") is not None]
    return max(found) if found else None
