"""Plots added to the report beside report/build.py's own: training-loss curves, the
confusion matrix and the learning-curve forecast. Each returns PNG bytes (or None when
there is nothing to draw)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from tunelab.decide.arms import run_info  # noqa: E402


def png(fig) -> bytes:
    """The figure as PNG bytes (closed after): every plot of the report and the probe
    report goes through here, so all are drawn at one resolution."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def loss_series(arms) -> list[tuple[str, list[dict]]]:
    """Per arm that trained, each seed's curves: the training loss per optimizer step, and
    the validation loss at the steps it was measured, with the best step (whose weights
    were kept; None where nothing was restored)."""
    out = []
    for a in arms:
        runs = []
        for r in a.runs:
            info = run_info(r)
            if info.losses:
                runs.append({"train": info.losses, "val_steps": info.val_steps or [],
                             "val": info.val_losses or [], "best": info.best_step})
        if runs:
            out.append((a.name, runs))
    return out


def loss_curves(arms) -> bytes | None:
    """Training loss per optimizer step of every arm that trained (each seed a line, one
    colour per arm), its validation loss (dashed, with the kept best step starred): a
    validation curve still falling at the end says the arm was undertrained."""
    drawn = loss_series(arms)
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, runs in drawn:
        color = ax._get_lines.get_next_color()
        for i, run in enumerate(runs):
            first = i == 0
            ax.plot(range(1, len(run["train"]) + 1), run["train"], color=color, lw=1.0,
                    alpha=0.55 if first else 0.3, label=f"{name} training" if first else None)
            if len(run["val"]) >= 2:
                ax.plot(run["val_steps"], run["val"], color=color, lw=1.6, ls="--", marker="o",
                        ms=4, alpha=1.0 if first else 0.6, label=f"{name} validation" if first else None)
            if run["best"] in run["val_steps"]:
                k = run["val_steps"].index(run["best"])
                ax.plot([run["best"]], [run["val"][k]], color=color, marker="*", ms=12, ls="",
                        label="best (kept)" if first and name == drawn[0][0] else None)
    ax.set_yscale("log")  # from ~3 at the start to ~0.05: the late gains are what matter
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per supervised token (log scale)")
    ax.legend(fontsize=7)
    return png(fig)


def confusion_heatmap(breakdown: dict, title: str) -> bytes:
    """Counts of (reference, predicted) labels, written in each cell."""
    labels, m = breakdown["labels"], np.array(breakdown["matrix"])
    size = max(4.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(m.shape[0]), labels[: m.shape[0]], fontsize=8)
    top = m.max() if m.size else 0
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title, fontsize=9)
    return png(fig)


def forecast_plot(forecasts: list[dict], metric: str) -> bytes | None:
    """Each forecast curve: measured points, the fit (and the second form where the band
    spans two) extended to 5x the largest size, its bootstrap band, and the goal (dotted)."""
    drawn = [f for f in forecasts if "band" in f]
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for f in drawn:
        color = ax._get_lines.get_next_color()
        band = f["band"]
        ax.plot(band["n"], band["fit"], color=color, lw=1.5,
                label=f"{f['curve']}: {'power law' if f['form'] == 'power' else 'log-linear'} fit")
        if band.get("alt"):  # the second form the band spans (forecast.candidates)
            ax.plot(band["n"], band["alt"], color=color, lw=1, ls="-.", label=f"{f['curve']}: log-linear fit")
        if band["lo"]:
            ax.fill_between(band["n"], band["lo"], band["hi"], color=color, alpha=0.15, lw=0)
        ax.plot(f["sizes"], f["measured"], "o", color=color, label=f"{f['curve']}: measured")
        if f.get("goal") is not None:
            ax.axhline(f["goal"], color=color, ls=":", lw=1, label=f"{f['curve']}: goal {f['goal']:.3f}")
    ax.axvline(max(max(f["sizes"]) for f in drawn), color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("training examples (right of the dashed line: forecast)")
    ax.set_ylabel(f"{metric} (band: 95% bootstrap, forms used)")
    ax.legend(fontsize=7)
    return png(fig)


AXES = {"usd": "$ per 1,000 requests", "s": "device seconds per 1,000 requests (no prices given)",
        "tokens": "prompt + generated tokens per 1,000 requests (no common price)"}


def pareto_plot(cost: dict, metric: str) -> bytes:
    """Quality (95% CI) against cost per 1,000 requests (cost.table's rows); the Pareto
    front (no arm both cheaper and better by mean) joined by a line."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    colors = plt.cm.tab10.colors  # arms named in one legend: labels beside points overlap
    for i, r in enumerate(cost["rows"]):
        m, lo, hi = r["ci"]
        ax.errorbar([r["x"]], [m], yerr=[[m - lo], [hi - m]], fmt="s" if r["trained"] else "o",
                    capsize=4, color=colors[i % len(colors)], mfc="none" if not r["front"] else None,
                    label=r["arm"] + (" (front)" if r["front"] else ""))
    front = sorted((r["x"], r["ci"][0]) for r in cost["rows"] if r["front"])
    # steps: between two front arms the best quality on offer is the cheaper one's
    ax.plot(*zip(*front, strict=True), color="grey", lw=1, ls=":", zorder=0, drawstyle="steps-post",
            label="Pareto front")
    ax.set_xscale("log" if all(r["x"] > 0 for r in cost["rows"]) else "linear")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(ticker.FormatStrFormatter("%g"))
    ax.set_xlabel(AXES[cost["unit"]])
    ax.set_ylabel(f"{metric} (95% CI)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.set_title("quality vs cost (squares: fine-tuned; filled: on the Pareto front)", fontsize=9)
    return png(fig)
