"""Report: table with CIs, plots, example predictions, and a recommendation from numbers.

The arms (runs grouped, seeds averaged per example) come from arms.py, the findings
from verdict.py.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tunelab import TunelabError  # noqa: E402
from tunelab.core.config import CostConfig  # noqa: E402
from tunelab.core.store import Store  # noqa: E402
from tunelab.decide.arms import (  # noqa: E402
    Arm,
    load_arms,
    primary_metric,
    run_info,
    shared_metrics,
    stored_margin,
    stored_target,
)
from tunelab.decide.cost import stored_cost  # noqa: E402
from tunelab.decide.cost import table as cost_table  # noqa: E402
from tunelab.decide.decisive import deciding  # noqa: E402
from tunelab.decide.flips import report_flips  # noqa: E402
from tunelab.decide.forecast import forecasts  # noqa: E402
from tunelab.decide.verdict import MARGIN, curves, enough, recommend  # noqa: E402
from tunelab.report import judge_section, search_section, track_record  # noqa: E402
from tunelab.report.confusion import breakdown  # noqa: E402
from tunelab.report.distill_section import rows as distilled_rows  # noqa: E402
from tunelab.report.plots import confusion_heatmap, forecast_plot, loss_curves, pareto_plot, png  # noqa: E402
from tunelab.report.side_by_side import side_by_side  # noqa: E402


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


def bar_chart(arms: list[Arm], metric: str) -> bytes:
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(arms)), 3.5))
    means = [a.ci[metric][0] for a in arms]
    err = np.array([[a.ci[metric][0] - a.ci[metric][1], a.ci[metric][2] - a.ci[metric][0]]
                    for a in arms]).T
    ax.bar(range(len(arms)), means, yerr=err, capsize=4,
           color=["tab:orange" if a.trained else "tab:blue" for a in arms])
    ax.set_xticks(range(len(arms)), [a.name for a in arms], rotation=30, ha="right")
    ax.set_ylabel(f"{metric} (95% CI)")
    return png(fig)


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
    return png(fig)


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
    return png(fig)


def stage_rows(arms: list[Arm], metric: str) -> list[dict]:
    """Each staged arm's score after every stage, then the final method's."""
    rows = []
    for a in arms:
        stages = a.info.stages or []
        for s in stages:
            m, lo, hi = s.get("metrics", {}).get(metric, (float("nan"),) * 3)
            rows.append({"arm": a.name, "stage": s["stage"], "n_train": s["n_train"],
                         "score": m, "lo": lo, "hi": hi, "seconds": s.get("train_seconds", 0.0)})
        if stages:
            m, lo, hi = a.ci[metric]
            own = (a.info.train_seconds or 0.0) - sum(s.get("train_seconds", 0.0) for s in stages)
            rows.append({"arm": a.name, "stage": f"then {a.method}", "n_train": a.n_train,
                         "score": m, "lo": lo, "hi": hi, "seconds": own})
    return rows


def chosen_prompts(arms: list[Arm]) -> list[dict]:
    return [{"arm": a.name, **a.info.chosen_prompt} for a in arms if a.info.chosen_prompt]


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
    primary = primary_metric(arms)
    metric = deciding(arms, primary)[0] or primary  # the verdict's metric: one that moves
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
        "arms": arms, "margin": margin, "findings": recommend(arms, primary, margin),
        "reach": cost_to_reach(arms, metric), "costs": costs,
        "flips": report_flips(arms, metric), "forecasts": ahead,
        "best": best, "side": side_by_side(arms, metric), "scoring": scoring, "classes": classes,
        "failed": store.runs("failed"), "scored": scored_lines(arms),
        "stages": stage_rows(arms, metric), "chosen": chosen_prompts(arms),
        "searches": search_section.rows(arms, metric, margin),
        "masked": run_info(tuned[0].runs[0]).masked_example if tuned else None,
        "prompt": (run_info(best.runs[0]).prompts or [""])[0],
        "images": {k: base64.b64encode(v).decode() for k, v in images.items()},
        "versions": json.loads(arms[0].runs[0]["versions"] or "{}"), "commit": arms[0].runs[0]["git_commit"],
        "shipped": _shipped(store, arms, metric),
        "distilled": distilled_rows(arms, metric, margin, prices),
        "track_record": track_record.quote(arms)["sentence"],
        "judge": judge_section.section(arms, metric),
    }
    return write_pages(out, "report", "report", ctx)


def _shipped(store: Store, arms: list[Arm], metric: str) -> list[dict]:
    """The "as shipped" rows: exports re-scored with `tunelab export --verify` (report/shipped_section.py)."""
    from tunelab.report.shipped_section import rows

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
    return jinja2.Environment(loader=jinja2.PackageLoader("tunelab.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "html.j2"]))


def scored_lines(arms: list[Arm]) -> list[str]:
    """Per arm, how many test examples it was scored on and why scoring stopped (sequential
    evaluation); nothing where every arm was scored on a fixed slice or in one look."""
    if not any(a.looks > 1 for a in arms):
        return []
    return [f"{a.name}: scored on {a.n_scored} of {a.runs[0]['n_test']} test examples; "
            f"{a.stopped or 'a fixed slice'}." for a in arms]


def results_markdown(arms: list[Arm]) -> str:
    """The results table of report.md, for printing where there is no terminal to draw in."""
    return _env().get_template("results.md.j2").render(
        arms=arms, metric=primary_metric(arms), metrics=shared_metrics(arms))
