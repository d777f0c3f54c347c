"""Report: table with CIs, plots, example predictions, and a recommendation from numbers.

An arm is one resolved configuration minus the seed (task, model, evaluation, method
settings, training settings, training-set size); seeds of one arm are averaged per test
example before bootstrapping. Two arms that would share a name (two `lora` entries with
different settings, or runs of different configs in one store) are named apart by the
settings that differ, never averaged together. The findings come from verdict.py.
"""

from __future__ import annotations

import base64
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tunelab import TunelabError, search  # noqa: E402
from tunelab.config import (  # noqa: E402
    CostConfig,
    EvalConfig,
    MethodConfig,
    ModelConfig,
    TaskConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from tunelab.confusion import breakdown  # noqa: E402
from tunelab.cost import stored_cost  # noqa: E402
from tunelab.cost import table as cost_table  # noqa: E402
from tunelab.distilled import rows as distilled_rows  # noqa: E402
from tunelab.examples import side_by_side  # noqa: E402
from tunelab.flips import report_flips  # noqa: E402
from tunelab.forecast import forecasts  # noqa: E402
from tunelab.keys import V1_TRAINED  # noqa: E402
from tunelab.metrics import bootstrap_ci  # noqa: E402
from tunelab.plots import confusion_heatmap, forecast_plot, loss_curves, pareto_plot  # noqa: E402
from tunelab.store import Store  # noqa: E402
from tunelab.verdict import MARGIN, curves, enough, recommend  # noqa: E402


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
        vals = [json.loads(r["info"]).get(key) for r in self.runs if r.get("info")]
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
    def info(self) -> dict:
        return _info(self.runs[0])

    @property
    def convergence(self) -> str | None:
        """Why a seed of this arm did not converge (the first one), or None."""
        for r in self.runs:
            i = _info(r)
            if i.get("converged") is False:
                return i.get("convergence_note") or "validation loss"
        return None

    @property
    def training(self) -> str:
        """How training ended, for the table: steps, epochs, why it stopped."""
        i = self.info
        if not self.trained or "train_steps" not in i:
            return "—"
        if "stop_reason" not in i:  # stored before validation-driven training
            return f"{i['train_steps']} steps"
        flag = "; NOT CONVERGED" if self.convergence else ""
        return (f"{i['train_steps']} steps, {i.get('epochs_trained', 0):.1f} ep, "
                f"{i['stop_reason'].replace('_', ' ')}{flag}")

    def mean(self, key: str) -> float:
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return float(np.mean(vals)) if vals else 0.0


PARTS = {"task": TaskConfig, "eval": EvalConfig, "model": ModelConfig, "method": MethodConfig,
         "train": TrainConfig}
NOT_ARM = {"method": ("train_sizes", "models", "label", "train"), "train": ("save",),
           "eval": ("batch_size", "bootstrap"),
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
    done = [r for r in store.runs("done") if (keys is None or r["id"] in keys)
            and not (r["method"] or "").startswith(("probe:", "export:"))]  # probes/summary.py, shipped.py
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
            preds = store.predictions(r["id"])
            arm.examples = arm.examples or preds
            for p in preds:
                for name, v in p["scores"].items():
                    if isinstance(v, int | float):  # tasks may keep a note, e.g. an SQL error
                        per[name][p["example_id"]].append(v)
                        arm.seed_scores.setdefault(name, {}).setdefault(r["seed"], {})[p["example_id"]] = v
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
    return sorted(arms, key=lambda a: (a.model, a.trained, a.label, a.n_train))


def cost_to_reach(arms: list[Arm], metric: str, fractions=(0.5, 0.75, 0.9, 1.0)) -> dict:
    """For score thresholds (fractions of the best mean), each method's cheapest arm that
    reaches it: {"thresholds": [...], "rows": [(curve name, [(arm, seconds) | None])]}."""
    top = max(a.ci[metric][0] for a in arms)
    thresholds = sorted({round(f * top, 3) for f in fractions})
    groups = defaultdict(list)
    for a in arms:
        groups[(a.model if a.show_model else "", a.label)].append(a)
    rows = []
    for (model, label), xs in sorted(groups.items()):
        cells = []
        for t in thresholds:
            ok = [a for a in xs if a.ci[metric][0] >= t - 1e-9]
            cells.append(min(ok, key=lambda a: (a.cost_s, a.n_train)) if ok else None)
        rows.append((f"{model} {label}".strip(), cells))
    return {"thresholds": thresholds, "rows": rows}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def bar_chart(arms: list[Arm], metric: str) -> bytes:
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(arms)), 3.5))
    means = [a.ci[metric][0] for a in arms]
    err = np.array([[a.ci[metric][0] - a.ci[metric][1], a.ci[metric][2] - a.ci[metric][0]]
                    for a in arms]).T
    ax.bar(range(len(arms)), means, yerr=err, capsize=4,
           color=["tab:orange" if a.trained else "tab:blue" for a in arms])
    ax.set_xticks(range(len(arms)), [a.name for a in arms], rotation=30, ha="right")
    ax.set_ylabel(f"{metric} (95% CI)")
    return _png(fig)


def learning_curve(arms: list[Arm], metric: str, margin: float = MARGIN) -> bytes:
    """Per method: mean over seeds, error bars = per-size bootstrap CI, shaded band = range
    of per-seed means, a star at the 'enough examples' size; prompting arms as lines."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for a in arms:
        if not (a.trained or a.sized):
            m, lo, hi = a.ci[metric]
            ax.axhline(m, ls="--", lw=1, label=a.name, color=ax._get_lines.get_next_color())
            ax.axhspan(lo, hi, alpha=0.08, color=ax.get_lines()[-1].get_color())
    tuned = curves(arms)
    for (model, label), xs in tuned.items():
        n = [a.n_train for a in xs]
        mean = [a.ci[metric][0] for a in xs]
        err = [[m - a.ci[metric][1] for m, a in zip(mean, xs, strict=True)],
               [a.ci[metric][2] - m for m, a in zip(mean, xs, strict=True)]]
        name = f"{model} {label}" if xs[0].show_model else label
        line = ax.errorbar(n, mean, yerr=err, marker="o", capsize=3, label=f"{name} (95% CI)")
        color = line[0].get_color()
        ax.fill_between(n, [min(a.seed_means[metric]) for a in xs],
                        [max(a.seed_means[metric]) for a in xs], alpha=0.2, color=color, lw=0)
        found = enough(xs, metric, margin)
        if found:
            ax.plot([found[0].n_train], [found[0].ci[metric][0]], marker="*", ms=14, color=color,
                    ls="none", label=f"enough: n={found[0].n_train}")
    if tuned:
        ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel(f"{metric} (band: range over seeds)")
    ax.legend(fontsize=7)
    return _png(fig)


def cost_quality(arms: list[Arm], metric: str) -> bytes:
    """Score (95% CI) against prompt tokens per example and against training time."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    costs = [("prompt_tokens_mean", "prompt tokens per test example"),
             ("train_seconds", "training / search time (s)")]
    colors = plt.cm.tab10.colors  # arms named in one legend: labels beside points overlap
    for ax, (key, xlabel) in zip(axes, costs, strict=True):
        for i, a in enumerate(arms):
            m, lo, hi = a.ci[metric]
            ax.errorbar([a.mean(key)], [m], yerr=[[m - lo], [hi - m]], fmt="s" if a.trained else "o",
                        capsize=4, color=colors[i % len(colors)], label=a.name)
        ax.set_xlabel(xlabel)
        ax.set_xscale("symlog", linthresh=10)
    axes[0].set_ylabel(f"{metric} (95% CI)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("cost vs quality (squares: changes weights; circles: prompting)", fontsize=9)
    return _png(fig)


def stage_rows(arms: list[Arm], metric: str) -> list[dict]:
    """Each staged arm's score after every stage, then the final method's."""
    rows = []
    for a in arms:
        stages = a.info.get("stages") or []
        for s in stages:
            m, lo, hi = s.get("metrics", {}).get(metric, (float("nan"),) * 3)
            rows.append({"arm": a.name, "stage": s["stage"], "n_train": s["n_train"],
                         "score": m, "lo": lo, "hi": hi, "seconds": s.get("train_seconds", 0.0)})
        if stages:
            m, lo, hi = a.ci[metric]
            own = a.info.get("train_seconds", 0.0) - sum(s.get("train_seconds", 0.0) for s in stages)
            rows.append({"arm": a.name, "stage": f"then {a.method}", "n_train": a.n_train,
                         "score": m, "lo": lo, "hi": hi, "seconds": own})
    return rows


def chosen_prompts(arms: list[Arm]) -> list[dict]:
    return [{"arm": a.name, **a.info["chosen_prompt"]} for a in arms if a.info.get("chosen_prompt")]


def build(store_path: str | Path, out_dir: str | Path, keys: set[str] | None = None,
          margin: float | None = None, target: float | None = None,
          prices: CostConfig | None = None) -> tuple[Path, Path]:
    """Write report.md and a self-contained report.html; returns their paths. `margin`
    (points), `target` (the forecast's goal) and `prices` default to those stored with
    the runs (report.margin, report.target, cost)."""
    store = Store(store_path, create=False)
    arms = load_arms(store, keys)
    if not arms:
        raise TunelabError(f"{store_path}: no finished runs to report")
    tasks = {a.runs[0]["task"] for a in arms}
    if len(tasks) > 1:
        raise TunelabError(f"{store_path}: runs of several tasks ({', '.join(sorted(tasks))}); "
                           "report one store per task")
    metric = primary_metric(arms)
    margin = stored_margin(arms) if margin is None else margin
    target = stored_target(arms) if target is None else target
    ahead = forecasts(arms, metric, target, margin)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {"bars": bar_chart(arms, metric), "curve": learning_curve(arms, metric, margin),
              "cost": cost_quality(arms, metric), "losses": loss_curves(arms),
              "forecast": forecast_plot(ahead, metric)}
    prices = stored_cost(arms) if prices is None else prices
    costs = cost_table(arms, metric, margin, prices)
    images["pareto"] = pareto_plot(costs, metric)
    best = max(arms, key=lambda a: a.ci[metric][0])
    scoring = arms[0].cell.get("scoring")
    classes = None
    if scoring and scoring["kind"] == "classification":
        classes = breakdown(best.examples, scoring["labels"])
        images["confusion"] = confusion_heatmap(classes, f"{best.name}: reference vs predicted label")
    images = {k: v for k, v in images.items() if v is not None}
    for name, data in images.items():
        (out / f"{name}.png").write_bytes(data)
    tuned = [a for a in arms if a.trained and a.runs[0].get("info")]
    ctx = {
        "task": arms[0].runs[0]["task"], "metric": metric, "metrics": shared_metrics(arms),
        "arms": arms, "margin": margin, "findings": recommend(arms, metric, margin),
        "reach": cost_to_reach(arms, metric), "costs": costs,
        "flips": report_flips(arms, metric), "forecasts": ahead,
        "best": best, "side": side_by_side(arms, metric), "scoring": scoring, "classes": classes,
        "failed": store.runs("failed"),
        "stages": stage_rows(arms, metric), "chosen": chosen_prompts(arms),
        "searches": search.rows(arms, metric, margin),
        "masked": _info(tuned[0].runs[0]).get("masked_example") if tuned else None,
        "prompt": _info(best.runs[0]).get("prompts", [""])[0],
        "images": {k: base64.b64encode(v).decode() for k, v in images.items()},
        "versions": json.loads(arms[0].runs[0]["versions"] or "{}"), "commit": arms[0].runs[0]["git_commit"],
        "shipped": _shipped(store, arms, metric),
        "distilled": distilled_rows(arms, metric, margin, prices),
    }
    return write_pages(out, "report", "report", ctx)


def _shipped(store: Store, arms: list[Arm], metric: str) -> list[dict]:
    """The "as shipped" rows: exports re-scored with `tunelab export --verify` (shipped.py)."""
    from tunelab.shipped import rows

    return rows(store, {r["id"]: a.name for a in arms for r in a.runs}, metric)


def write_pages(out: Path, name: str, template: str, ctx: dict) -> tuple[Path, Path]:
    """Render templates/<template>.md.j2 and .html.j2 into out/<name>.md and .html."""
    env = _env()
    md, html = out / f"{name}.md", out / f"{name}.html"
    md.write_text(env.get_template(f"{template}.md.j2").render(**ctx))
    html.write_text(env.get_template(f"{template}.html.j2").render(**ctx))
    return md, html


def _env() -> jinja2.Environment:
    # Templates are named *.html.j2: escape by that name (select_autoescape(["html"]) never
    # matched), so model output, inputs and errors reach the page as text, never as markup.
    return jinja2.Environment(loader=jinja2.PackageLoader("tunelab", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "html.j2"]))


def _info(run: dict) -> dict:
    return json.loads(run["info"]) if run.get("info") else {}


def stored_trained(cell: dict, method: str) -> bool:
    """Whether a run changed weights, as stored with it. Runs stored before `trained` was
    (key version 1) fall back to the method names that trained then, or any stages."""
    if "trained" in cell:
        return bool(cell["trained"])
    m = cell.get("method") or {"name": method}
    return m["name"] in V1_TRAINED or bool(m.get("stages"))


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


def stored_margin(arms: list[Arm]) -> float:
    """The equivalence margin (points) the runs were made with: the largest, if they differ."""
    cfgs = [json.loads(r["config"] or "{}") for a in arms for r in a.runs]
    return max((c.get("report", {}).get("margin", MARGIN) for c in cfgs), default=MARGIN)


def stored_target(arms: list[Arm]) -> float | None:
    """The forecast's goal the runs were made with (report.target), if any: the highest."""
    cfgs = [json.loads(r["config"] or "{}") for a in arms for r in a.runs]
    found = [c["report"]["target"] for c in cfgs if c.get("report", {}).get("target") is not None]
    return max(found) if found else None


def results_markdown(arms: list[Arm]) -> str:
    """The results table of report.md, for printing where there is no terminal to draw in."""
    return _env().get_template("results.md.j2").render(
        arms=arms, metric=primary_metric(arms), metrics=shared_metrics(arms))
