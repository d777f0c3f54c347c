"""What more training data buys: a fitted learning curve (curvefit.py), extrapolated to 2x
and 5x the largest size with a bootstrap interval, the examples to label to reach a goal,
and a check against the largest size actually measured, in plain sentences.

The curve is the mean primary score at each training-set size (over seeds and test
examples). Its estimates are the power law's (its ceiling, the size that reaches a goal);
where it fails to fit or the data reject it and not the log-linear trend, the trend's,
and the forecast says which. Each interval spans the forms the data do not reject
(curvefit.candidates), so it covers the choice between a curve that levels off and one
that keeps rising, not only the noise of test examples and seeds: with a handful of sizes
the data rarely tell them apart (on the ViGGO curve of 2026-12-02 the power law alone put
LoRA N=400 at 0.813 [0.759, 0.858] from N=25-200; measured 0.900). The holdout check
predicts the largest measured size from the smaller ones only and prints the error and
whether the measurement fell inside the stated interval.
"""

from __future__ import annotations

import math

import numpy as np

from tunelab.decide.curvefit import ALPHA, FORMS, N_BOOT, Form, candidates, spanned, with_ci
from tunelab.decide.verdict import best, curves

MIN_SIZES = 3
"""A curve needs 3 sizes to fit 3 parameters; the holdout check needs one more."""
MULTIPLES = (2, 5)
"""The forecast's sizes, as multiples of the largest measured one."""
REACH = 100
"""A count of examples to label beyond REACH x the largest measured size is said as "over"
that many: no curve fitted to the sizes measured speaks for it."""


def _forms(used: list[Form], found: dict[str, Form]) -> dict:
    return {name: {"params": f.point.params, "p_fit": f.p_fit, "used": f in used}
            for name, f in found.items()}


def project(sizes, per_size: list[np.ndarray], goal: float | None = None, margin: float = 2.0,
            shared_seeds: bool = True, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Fit all sizes and extrapolate: the score at each multiple of the largest size, the
    gain of the largest multiple ("flat": its upper 95% bound under `margin` points), the
    ceiling, and the examples to label to reach `goal`. Values are (estimate, lo, hi), the
    interval spanning the forms used; `forms` holds each form's own and its lack of fit."""
    sizes = np.asarray(sizes, dtype=float)
    used, found = candidates(sizes, per_size, shared_seeds, n_boot, seed)
    point, top = used[0].point, sizes[-1]
    far = MULTIPLES[-1] * top
    forms = _forms(used, found)

    def est(value, *path):  # the spanned estimate; each form's own goes to forms[form][path]
        v, each = spanned(used, value)
        for form, e in each.items():
            slot = forms[form]
            for key in path[:-1]:
                slot = slot.setdefault(key, {})
            slot[path[-1]] = e
        return v

    at = {int(k * top): est(lambda f, n=k * top: f(n), "at", int(k * top)) for k in MULTIPLES}
    gain = est(lambda f: f(far) - f(top), "gain")
    out = {"form": point.form, "params": point.params, "sizes": sizes.tolist(),
           "measured": [float(y.mean()) for y in per_size], "at": at, "gain": gain,
           "flat": gain[2] < margin / 100, "ceiling": None, "goal": goal, "more": None,
           "n_boot": n_boot, "failed": n_boot - len(used[0].reps), "forms": forms}
    if point.ceiling is not None:
        out["ceiling"] = with_ci(point.ceiling, [f.params[0] for f in used[0].reps])
    if goal is not None:
        out["reached"] = bool(point(top) >= goal)
        out["more"] = est(lambda f: f.reach(goal) - top, "more")
    grid = np.geomspace(sizes[0], far, 60)
    bands = [np.array([r(grid) for r in f.reps]) for f in used if f.reps]
    out["band"] = {"n": grid.tolist(), "fit": point(grid).tolist(),
                   "alt": used[1].point(grid).tolist() if len(used) > 1 else [],
                   "lo": np.min([np.quantile(b, 0.025, axis=0) for b in bands], axis=0).tolist()
                   if bands else [],
                   "hi": np.max([np.quantile(b, 0.975, axis=0) for b in bands], axis=0).tolist()
                   if bands else []}
    return out


def holdout(sizes, per_size: list[np.ndarray], shared_seeds: bool = True, n_boot: int = N_BOOT,
            seed: int = 0) -> dict | None:
    """The largest size predicted from the smaller ones only, against its measurement."""
    if len(sizes) < MIN_SIZES + 1:
        return None
    last = float(sizes[-1])
    used, found = candidates(sizes[:-1], per_size[:-1], shared_seeds, n_boot, seed)
    pred, each = spanned(used, lambda f: f(last))
    measured = float(per_size[-1].mean())
    forms = _forms(used, found)
    for form, v in each.items():
        forms[form]["predicted"] = v
    return {"n": int(last), "form": used[0].point.form, "predicted": pred, "forms": forms,
            "measured": measured, "error": measured - pred[0],
            "inside": bool(pred[1] <= measured <= pred[2])}


def matrices(curve, metric: str) -> tuple[list[np.ndarray], bool, int]:
    """Per size, (seeds, test examples) scores on the examples every seed of every size
    was scored on; whether every size ran the same seeds; how many seeds at most."""
    by_seed = [a.seed_scores[metric] for a in curve]
    ids = sorted(set.intersection(*(set(s) for seeds in by_seed for s in seeds.values())))
    per = [np.array([[seeds[sd][e] for e in ids] for sd in sorted(seeds)]) for seeds in by_seed]
    shared = len({tuple(sorted(seeds)) for seeds in by_seed}) == 1
    return per, shared, max(len(seeds) for seeds in by_seed)


def curve_forecast(curve, metric: str, goal: float | None = None, why_goal: str = "",
                   margin: float = 2.0, n_boot: int = N_BOOT) -> dict:
    """The forecast of one learning curve (arms of one method, smallest size first), with
    its sentences under "lines"; a curve that cannot be forecast gets one line saying why."""
    first = curve[0]
    name = f"{first.model} {first.label}" if first.show_model else first.label
    curve = [a for a in curve if a.n_train > 0]
    sizes = [a.n_train for a in curve]
    out = {"curve": name, "metric": metric, "sizes": sizes}
    if len(sizes) < MIN_SIZES:
        listed = f" ({', '.join(map(str, sizes))})" if sizes else ""
        return {**out, "lines": [f"No forecast for {name}: it ran at {len(sizes)} training-set "
                                 f"size{'s' if len(sizes) != 1 else ''}{listed}; fitting a learning "
                                 f"curve needs at least {MIN_SIZES}."]}
    if any(metric not in a.seed_scores for a in curve):
        return {**out, "lines": [f"No forecast for {name}: {metric} has no per-example score to "
                                 "resample (a corpus metric)."]}
    if not first.higher.get(metric, True):
        return {**out, "lines": [f"No forecast for {name}: {metric} is lower-is-better and the "
                                 "forecast assumes a score that rises with data."]}
    per, shared, seeds = matrices(curve, metric)
    if per[0].shape[1] == 0:
        return {**out, "lines": [f"No forecast for {name}: its sizes share no scored test example."]}
    out.update(project(sizes, per, goal, margin, shared, n_boot))
    out.update(curve=name, sizes=sizes, why_goal=why_goal, seeds=seeds, n_test=per[0].shape[1],
               holdout=holdout(sizes, per, shared, n_boot))
    out["lines"] = sentences(out, margin)
    return out


def _pt(x: float) -> str:
    return f"{100 * x:+.1f}"


def _ci(v: tuple[float, float, float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def _overlap(u: tuple[float, float, float], v: tuple[float, float, float]) -> bool:
    return u[1] <= v[2] and v[1] <= u[2]


def _count(x: float, top: float) -> str:
    """How many examples: two significant figures, 'never', or 'over' REACH x `top`."""
    if not math.isfinite(x):
        return "never"
    if x > REACH * top:
        return f"over {REACH * top:,.0f}"
    return f"{max(0.0, float(f'{x:.2g}')):,.0f}"


def _about(x: float, top: float) -> str:
    said = _count(x, top)
    return f"about {said}" if said[0].isdigit() else said


NAMES = {"power": "power law", "log": "log-linear"}


def _describe(form: str, params, metric: str) -> str:
    if form == "power":
        a, b, c = params
        return (f"an inverse power law ({metric} = a - b·n^-c; a={a:.3f}, b={b:.3g}, c={c:.2f}), "
                "which levels off,")
    p, q = params
    return f"a log-linear trend ({metric} = p + q·ln n; p={p:.3f}, q={q:.3f}), which does not"


def _used(forms: dict, used: bool = True) -> list[str]:
    """The forms fitted that the interval spans (or, `used=False`, leaves out), power law first."""
    return [k for k in FORMS if k in forms and forms[k]["used"] == used]


def _which(forms: dict) -> str:
    """Which forms the interval spans, and why a form is missing or the interval rough."""
    used, left = _used(forms), _used(forms, used=False)
    ps = " and ".join(f"{NAMES[k]} p={forms[k]['p_fit']:.2g}" for k in used)
    if "power" not in forms:
        return "the power law did not fit; the log-linear trend has no ceiling"
    if len(used) > 1 and all(forms[k]["p_fit"] < ALPHA for k in used):
        return (f"neither form fits the measured points (lack of fit {ps}): the curve bends in a way "
                "neither follows, so intervals spanning both are rough, not 95%")
    if left:
        return (f"the {NAMES[left[0]]} form is left out: the measured points reject it (lack of fit "
                f"p={forms[left[0]]['p_fit']:.2g})")
    return f"estimates are the {NAMES[used[0]]}'s, each interval spans both forms' 95% intervals"


def _goal(fc: dict, used: list[str], top: int) -> str:
    """How far the fit puts the goal score: reached, out of reach, or how many more examples."""
    goal, why, more, forms = fc["goal"], fc.get("why_goal") or "the target", fc["more"], fc["forms"]
    if fc["reached"]:
        return f"The fit is already at {goal:.3f} ({why}) at n={top:,}."
    if not math.isfinite(more[0]):
        return (f"{goal:.3f} ({why}) is not reachable by more data per this fit: "
                + (f"its ceiling is {fc['ceiling'][0]:.3f}" if fc["ceiling"]
                   else "the fitted curve does not rise")
                + (f"; the log-linear trend, which does not level off, puts it "
                   f"{_about(log[0], top)} more examples away (95% CI {_count(log[1], top)} to "
                   f"{_count(log[2], top)})." if (log := forms.get("log", {}).get("more"))
                   and used[0] == "power" and math.isfinite(log[0]) else "."))
    return (f"To reach {goal:.3f} ({why}): label {_about(more[0], top)} more examples "
            f"(95% CI {_count(more[1], top)} to {_count(more[2], top)}).")


def sentences(fc: dict, margin: float) -> list[str]:
    """The forecast in plain language; scores in the metric's units, gains in points."""
    name, metric, sizes, top = fc["curve"], fc["metric"], fc["sizes"], fc["sizes"][-1]
    seeds = f" and of its {fc['seeds']} seeds" if fc["seeds"] > 1 else ""
    forms = fc["forms"]
    used = _used(forms)
    lines = [f"{name}: fitted to {len(sizes)} sizes (n={', '.join(map(str, sizes))}) with "
             + " and ".join(_describe(k, forms[k]["params"], metric) for k in used)
             + f"; {_which(forms)}. Intervals from {fc['n_boot']} bootstrap resamples of the "
             f"{fc['n_test']} test examples (the same draw at every size){seeds}, refitted each time"
             + (f" ({fc['failed']} resamples did not fit and are left out)." if fc["failed"] else ".")
             + ("" if fc["seeds"] > 1 else " One seed: the intervals leave out how far another seed "
                "(another draw of shots or of training order) would move each point; more seeds "
                "would put that in.")]
    at = "; ".join(f"n={n:,} ({n // top}x the largest): {_ci(v)}" for n, v in fc["at"].items())
    ceiling = f"; the power law's ceiling {_ci(fc['ceiling'])}" if fc["ceiling"] else ""
    lines.append(f"Predicted {metric} at {at}{ceiling}.")
    far = max(fc["at"])
    if len(used) > 1:
        one, two = (forms[k]["at"][far] for k in used)
        lines.append(f"By form at n={far:,}: {NAMES[used[0]]} {_ci(one)}, {NAMES[used[1]]} "
                     f"{_ci(two)}" + ("; their intervals overlap." if _overlap(one, two) else
                                      "; they disagree beyond their own noise, and the sizes measured "
                                      "do not tell which holds: a larger measured size would."))
    g = fc["gain"]
    if fc["flat"]:
        lines.append(f"More data is not expected to help: {far // top}x the data adds {_pt(g[0])} "
                     f"points (95% CI {_pt(g[1])} to {_pt(g[2])}), under the {margin:g}-point margin.")
    else:
        lines.append(f"{far // top}x the data adds {_pt(g[0])} points (95% CI {_pt(g[1])} to "
                     f"{_pt(g[2])}).")
    if fc["goal"] is not None:
        lines.append(_goal(fc, used, top))
    h = fc["holdout"]
    if h is None:
        lines.append(f"No holdout check: predicting the largest size from the smaller ones needs "
                     f"at least {MIN_SIZES + 1} sizes ({MIN_SIZES} to fit, 1 to predict).")
    else:
        verdict = ("inside the stated interval" if h["inside"] else
                   "outside the stated interval: treat the intervals above as too narrow")
        both = _used(h["forms"])
        lines.append(f"Checked on what was measured: fitted to n={', '.join(map(str, sizes[:-1]))} "
                     f"only, it predicts {_ci(h['predicted'])} at n={h['n']:,} ("
                     + ", ".join(f"{NAMES[k]} {_ci(h['forms'][k]['predicted'])}" for k in both)
                     + ("" if (why := _which(h["forms"])).startswith("estimates") else f"; {why}")
                     + f"); measured {h['measured']:.3f}, error "
                     f"{_pt(h['error'])} points, {verdict}.")
    return lines


def forecasts(arms, metric: str, target: float | None = None, margin: float = 2.0,
              n_boot: int = N_BOOT) -> list[dict]:
    """A forecast per learning curve (verdict.curves: trained arms, sized prompting arms).
    The goal is `target` (report.target) or else the best arm's upper 95% bound."""
    if target is not None:
        goal, why = target, "report.target"
    else:
        top = best(arms, metric)
        goal, why = top.ci[metric][2], f"the upper 95% bound of the best arm, {top.name}"
    found = [curve_forecast(c, metric, goal, why, margin, n_boot) for c in curves(arms).values()]
    return found or [{"curve": None, "metric": metric, "lines": [
        "No forecast: no arm trains on examples or ran at several training-set sizes."]}]
