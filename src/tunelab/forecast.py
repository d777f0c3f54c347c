"""What more training data buys: a fitted learning curve, extrapolated, with a bootstrap
interval, and checked against the largest size actually measured.

The curve is the mean primary score at each training-set size (over seeds and test
examples), fitted with the usual saturating form of learning curves, an inverse power
law score = a - b * n^-c (scipy.optimize.curve_fit, bounded: a within [0, 1] for a 0-1
metric, c within [C_MIN, C_MAX]). Where that fit fails, a log-linear score = p + q ln n
is used instead (it has no ceiling), and the forecast says which form it used.

The interval is a bootstrap: each resample draws test examples (the same draw at every
size: paired over n) and, where there are several seeds, seeds (the same seed ids at every
size when every size ran the same seeds), then refits. It covers the noise of test
examples and seeds, not a wrong curve shape: that is what the holdout check tests, by
predicting the largest measured size from the smaller ones only and printing the error
and whether the measurement fell inside the stated interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from tunelab.verdict import best, curves

MIN_SIZES = 3
"""A curve needs 3 sizes to fit 3 parameters; the holdout check needs one more."""
C_MIN, C_MAX = 0.05, 2.0
"""Bounds of the power law's exponent: flatter than n^-0.05 is indistinguishable from a
log-linear trend over any range measured here; steeper than n^-2 is a step, not a curve."""
N_BOOT = 400
"""Bootstrap resamples (each one a curve fit)."""
MULTIPLES = (2, 5)
"""The forecast's sizes, as multiples of the largest measured one."""


@dataclass(frozen=True)
class Fit:
    form: str
    """"power" (a - b n^-c) or "log" (p + q ln n)."""
    params: tuple[float, ...]
    bounded: bool = True
    """A 0-1 metric: predictions are clipped to [0, 1]."""

    def __call__(self, n) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        if self.form == "power":
            a, b, c = self.params
            y = a - b * n ** -c
        else:
            p, q = self.params
            y = p + q * np.log(n)
        return np.clip(y, 0.0, 1.0) if self.bounded else y

    @property
    def ceiling(self) -> float | None:
        """The score more data approaches (power law rising to a), or None (log-linear)."""
        return self.params[0] if self.form == "power" and self.params[1] > 0 else None

    def reach(self, x: float) -> float:
        """Training-set size at which the fitted curve reaches x; inf where it never does."""
        if self.form == "power":
            a, b, c = self.params
            return (b / (a - x)) ** (1 / c) if b > 0 and a > x else math.inf
        p, q = self.params
        if q <= 0 or (self.bounded and x > 1):
            return math.inf
        return math.exp(min((x - p) / q, 700.0))  # beyond e^700 is "never" in any unit


def _power(n, a, b, c):
    return a - b * n ** -c


def _jacobian(n, a, b, c):
    t = n ** -c
    return np.stack([np.ones_like(n), -t, b * t * np.log(n)], axis=1)


def fit(n, y, bounded: bool = True, form: str | None = None, start: Fit | None = None) -> Fit:
    """The power law where it fits, else log-linear (or the given `form`); a resample's
    refit starts from the full fit (`start`), which converges in a few steps."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    if form in (None, "power"):
        params = _fit_power(n, y, bounded, start.params if start and start.form == "power" else None)
        if params is not None:
            return Fit("power", params, bounded)
        if form == "power":
            return Fit("power", (math.nan,) * 3, bounded)
    q, p = np.polyfit(np.log(n), y, 1)
    return Fit("log", (float(p), float(q)), bounded)


def _fit_power(n: np.ndarray, y: np.ndarray, bounded: bool,
               p0: tuple[float, ...] | None = None) -> tuple[float, ...] | None:
    lo, hi = ((0.0, -np.inf, C_MIN), (1.0, np.inf, C_MAX)) if bounded else \
        ((-np.inf, -np.inf, C_MIN), (np.inf, np.inf, C_MAX))
    if p0 is None:  # the exponent-0.5 curve through the first and last points
        c0 = 0.5
        span = n[0] ** -c0 - n[-1] ** -c0
        b0 = (y[-1] - y[0]) / span if span > 0 else 0.0
        p0 = (y[-1] + b0 * n[-1] ** -c0, b0, c0)
    # strictly inside the bounds, as least_squares requires
    p0 = tuple(float(np.clip(v, lo_ + 1e-6, hi_ - 1e-6)) for v, lo_, hi_ in zip(p0, lo, hi, strict=True))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # 3 points: no covariance
            params, _ = curve_fit(_power, n, y, p0=p0, jac=_jacobian, maxfev=2000, bounds=(lo, hi))
    except (RuntimeError, ValueError):
        return None
    return tuple(float(v) for v in params) if np.all(np.isfinite(params)) else None


def resampled_means(per_size: list[np.ndarray], n_boot: int = N_BOOT, seed: int = 0,
                    shared_seeds: bool = True) -> np.ndarray:
    """(n_boot, sizes) mean scores, each row one resample: test examples drawn once per
    row for every size (paired over n); seeds drawn once per row when every size ran the
    same seeds (`shared_seeds`, rows of each matrix in the same seed order), else per size.
    Each matrix is (seeds, test examples), the examples in the same order everywhere."""
    rng = np.random.default_rng(seed)
    n_ex = per_size[0].shape[1]
    out = np.empty((n_boot, len(per_size)))
    for r in range(n_boot):
        ex = rng.integers(0, n_ex, n_ex)
        s0 = rng.integers(0, per_size[0].shape[0], per_size[0].shape[0])
        for i, y in enumerate(per_size):
            s = s0 if shared_seeds else rng.integers(0, y.shape[0], y.shape[0])
            out[r, i] = y[np.ix_(s, ex)].mean()
    return out


def _interval(values, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval that keeps inf ("never") as a value rather than a NaN."""
    v = np.sort(np.asarray(values, dtype=float))
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    lo = v[int(math.floor(alpha / 2 * (v.size - 1)))]
    hi = v[int(math.ceil((1 - alpha / 2) * (v.size - 1)))]
    return float(lo), float(hi)


def _with_ci(point: float, reps) -> tuple[float, float, float]:
    return (float(point), *_interval(reps))


def fits(sizes, per_size: list[np.ndarray], shared_seeds: bool = True, n_boot: int = N_BOOT,
         seed: int = 0) -> tuple[Fit, list[Fit]]:
    """The fit to the mean score at each size, and the same form refitted to each resample
    (a resample the form does not fit is left out: project() counts them)."""
    bounded = bool(all(((y >= 0) & (y <= 1)).all() for y in per_size))
    point = fit(sizes, [y.mean() for y in per_size], bounded)
    reps = [fit(sizes, row, bounded, point.form, point)
            for row in resampled_means(per_size, n_boot, seed, shared_seeds)]
    return point, [f for f in reps if np.all(np.isfinite(f.params))]


def project(sizes, per_size: list[np.ndarray], goal: float | None = None, margin: float = 2.0,
            shared_seeds: bool = True, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Fit all sizes and extrapolate: the score at each multiple of the largest size, the
    gain of the largest multiple ("flat": its upper 95% bound under `margin` points), the
    ceiling, and the examples to label to reach `goal`. Values are (estimate, lo, hi)."""
    sizes = np.asarray(sizes, dtype=float)
    point, reps = fits(sizes, per_size, shared_seeds, n_boot, seed)
    top = sizes[-1]
    at = {int(k * top): _with_ci(point(k * top), [f(k * top) for f in reps]) for k in MULTIPLES}
    far = MULTIPLES[-1] * top
    gain = _with_ci(point(far) - point(top), [f(far) - f(top) for f in reps])
    out = {"form": point.form, "params": point.params, "sizes": sizes.tolist(),
           "measured": [float(y.mean()) for y in per_size], "at": at, "gain": gain,
           "flat": gain[2] < margin / 100, "ceiling": None, "goal": goal, "more": None,
           "n_boot": n_boot, "failed": n_boot - len(reps)}
    if point.ceiling is not None:
        out["ceiling"] = _with_ci(point.ceiling, [f.params[0] for f in reps])
    if goal is not None:
        out["reached"] = bool(point(top) >= goal)
        out["more"] = _with_ci(point.reach(goal) - top, [f.reach(goal) - top for f in reps])
    grid = np.geomspace(sizes[0], far, 60)
    band = np.array([f(grid) for f in reps])
    out["band"] = {"n": grid.tolist(), "fit": point(grid).tolist(),
                   "lo": np.quantile(band, 0.025, axis=0).tolist() if band.size else [],
                   "hi": np.quantile(band, 0.975, axis=0).tolist() if band.size else []}
    return out


def holdout(sizes, per_size: list[np.ndarray], shared_seeds: bool = True, n_boot: int = N_BOOT,
            seed: int = 0) -> dict | None:
    """The largest size predicted from the smaller ones only, against its measurement."""
    if len(sizes) < MIN_SIZES + 1:
        return None
    last = float(sizes[-1])
    point, reps = fits(np.asarray(sizes[:-1], dtype=float), per_size[:-1], shared_seeds, n_boot, seed)
    pred = _with_ci(point(last), [f(last) for f in reps])
    measured = float(per_size[-1].mean())
    return {"n": int(last), "form": point.form, "predicted": pred, "measured": measured,
            "error": measured - pred[0], "inside": bool(pred[1] <= measured <= pred[2])}


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


def _count(x: float) -> str:
    """About how many examples: two significant figures, or 'never'."""
    return "never" if not math.isfinite(x) else f"{max(0.0, float(f'{x:.2g}')):,.0f}"


def sentences(fc: dict, margin: float) -> list[str]:
    """The forecast in plain language; scores in the metric's units, gains in points."""
    name, metric, sizes, top = fc["curve"], fc["metric"], fc["sizes"], fc["sizes"][-1]
    seeds = f" and of its {fc['seeds']} seeds" if fc["seeds"] > 1 else ""
    if fc["form"] == "power":
        a, b, c = fc["params"]
        form = f"an inverse power law ({metric} = a - b·n^-c; a={a:.3f}, b={b:.3g}, c={c:.2f})"
    else:
        p, q = fc["params"]
        form = (f"a log-linear trend ({metric} = p + q·ln n; p={p:.3f}, q={q:.3f}; the power law "
                "did not fit), which has no ceiling")
    lines = [f"{name}: {form}, fitted to {len(sizes)} sizes (n={', '.join(map(str, sizes))}); "
             f"95% intervals from {fc['n_boot']} bootstrap resamples of the {fc['n_test']} test "
             f"examples (the same draw at every size){seeds}, refitted each time"
             + (f" ({fc['failed']} resamples did not fit and are left out)." if fc["failed"] else ".")]
    at = "; ".join(f"n={n:,} ({n // top}x the largest): {_ci(v)}" for n, v in fc["at"].items())
    ceiling = f"; ceiling {_ci(fc['ceiling'])}" if fc["ceiling"] else ""
    lines.append(f"Predicted {metric} at {at}{ceiling}.")
    g = fc["gain"]
    far = max(fc["at"])
    if fc["flat"]:
        lines.append(f"More data is not expected to help: {far // top}x the data adds {_pt(g[0])} "
                     f"points (95% CI {_pt(g[1])} to {_pt(g[2])}), under the {margin:g}-point margin.")
    else:
        lines.append(f"{far // top}x the data adds {_pt(g[0])} points (95% CI {_pt(g[1])} to "
                     f"{_pt(g[2])}).")
    if fc["goal"] is not None:
        goal, why, more = fc["goal"], fc.get("why_goal") or "the target", fc["more"]
        if fc["reached"]:
            lines.append(f"The fit is already at {goal:.3f} ({why}) at n={top:,}.")
        elif not math.isfinite(more[0]):
            lines.append(f"{goal:.3f} ({why}) is not reachable by more data per this fit: "
                         + (f"its ceiling is {fc['ceiling'][0]:.3f}." if fc["ceiling"]
                            else "the fitted curve does not rise."))
        else:
            lines.append(f"To reach {goal:.3f} ({why}): label about {_count(more[0])} more examples "
                         f"(95% CI {_count(more[1])} to {_count(more[2])}).")
    h = fc["holdout"]
    if h is None:
        lines.append(f"No holdout check: predicting the largest size from the smaller ones needs "
                     f"at least {MIN_SIZES + 1} sizes ({MIN_SIZES} to fit, 1 to predict).")
    else:
        verdict = ("inside the stated interval" if h["inside"] else
                   "outside the stated interval: treat the intervals above as too narrow")
        lines.append(f"Checked on what was measured: fitted to n={', '.join(map(str, sizes[:-1]))} "
                     f"only ({'power law' if h['form'] == 'power' else 'log-linear'}), it predicts "
                     f"{_ci(h['predicted'])} at n={h['n']:,}; measured {h['measured']:.3f}, error "
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
