"""Learning-curve forms fitted to mean scores over training-set sizes, with bootstrap
resamples and a lack-of-fit test, for the forecast (forecast.py).

Two forms: the usual saturating form of learning curves, an inverse power law
score = a - b * n^-c (scipy.optimize.curve_fit, bounded: a within [0, 1] for a 0-1 metric,
c within [C_MIN, C_MAX]), and a log-linear trend score = p + q ln n, which does not level
off. Each resample draws test examples (the same draw at every size: paired over n) and,
where there are several seeds, seeds (the same seed ids at every size when every size ran
the same seeds), then refits. A form the measured means reject (lack of fit: chi-square of
the residuals under the resampled means' covariance, p < ALPHA) is left out, unless a form
cannot be tested (no degree of freedom left); where they reject every form, all are used
and the forecast says its interval is rough.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import chi2

from tunelab.tasks.metrics import unit_scores

C_MIN, C_MAX = 0.05, 2.0
"""Bounds of the power law's exponent: flatter than n^-0.05 is indistinguishable from a
log-linear trend over any range measured here; steeper than n^-2 is a step, not a curve."""
N_BOOT = 400
"""Bootstrap resamples (each one a curve fit per form)."""
FORMS = ("power", "log")
"""The curve forms fitted, the first the one whose estimates are given where the data do
not reject it."""
ALPHA = 0.01
"""A form whose lack-of-fit p-value is under ALPHA is left out of the interval (unless the
data reject every form, or another form has no degree of freedom left to be tested)."""


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


def with_ci(point: float, reps) -> tuple[float, float, float]:
    return (float(point), *_interval(reps))


@dataclass(frozen=True)
class Form:
    """One curve form fitted to the mean scores and to each resample."""
    point: Fit
    reps: list[Fit]
    p_fit: float
    """Lack-of-fit p-value: the residuals' chi-square (under the resampled means' covariance)
    on sizes - parameters degrees of freedom; NaN where no degree of freedom is left."""


def lack_of_fit(f: Fit, sizes: np.ndarray, y: np.ndarray, cov: np.ndarray) -> float:
    """P-value of the residuals if the form were right: r' cov^-1 r, chi-square on
    sizes - parameters degrees of freedom (approximate: the fit is unweighted)."""
    dof = len(sizes) - len(f.params)
    if dof <= 0:
        return math.nan
    r = f(sizes) - y
    return float(chi2.sf(float(r @ np.linalg.pinv(cov) @ r), dof))


def candidates(sizes, per_size: list[np.ndarray], shared_seeds: bool = True, n_boot: int = N_BOOT,
               seed: int = 0) -> tuple[list[Form], dict[str, Form]]:
    """Each form that fits the mean scores, refitted to every resample (the same draws; a
    resample the form does not fit is left out: project() counts them), with its lack of
    fit. The forms used are those the data do not reject (p >= ALPHA), or all of them where
    the data reject every one or a form cannot be tested: (used, power law first; all by
    name)."""
    sizes = np.asarray(sizes, dtype=float)
    bounded = unit_scores(*per_size)
    y = np.array([m.mean() for m in per_size])
    rows = resampled_means(per_size, n_boot, seed, shared_seeds)
    cov = np.cov(rows.T)
    found = {}
    for form in FORMS:
        point = fit(sizes, y, bounded, form)
        if not np.all(np.isfinite(point.params)):
            continue  # the power law did not converge; the log-linear trend always fits
        reps = [fit(sizes, row, bounded, form, point) for row in rows]
        found[form] = Form(point, [f for f in reps if np.all(np.isfinite(f.params))],
                           lack_of_fit(point, sizes, y, cov))
    # A form with no degree of freedom left (the power law on 3 sizes) cannot be rejected;
    # that is no evidence against one that can, so then no form is left out.
    testable = all(not math.isnan(f.p_fit) for f in found.values())
    used = [f for f in found.values() if not (testable and f.p_fit < ALPHA)]
    return used or list(found.values()), found


def spanned(forms: list[Form], value) -> tuple[tuple[float, float, float], dict]:
    """`value(fit)` over the forms used: (the first form's estimate, the lowest of their 95%
    lower bounds, the highest upper bound), and each form's own (estimate, lo, hi)."""
    each = {f.point.form: with_ci(value(f.point), [value(r) for r in f.reps]) for f in forms}
    ends = [v for v in each.values() if not math.isnan(v[1])]
    first = each[forms[0].point.form]
    if not ends:
        return first, each
    return (first[0], min(v[1] for v in ends), max(v[2] for v in ends)), each
