"""How often the forecast's holdout interval holds the measured score, on synthetic learning
curves of known shape: the power law's interval alone (an earlier rule) against the
interval spanning the forms the data do not reject (curvefit.candidates, the rule now).

Each replicate draws 0/1 scores for `--examples` test examples at N = 25..400, the same
examples at every size (a latent difficulty per example, correlation `--rho` between
sizes, so the means are paired as on a real test slice), fits N = 25..200 and predicts
N = 400. Coverage is the share of replicates whose interval holds the measured mean at
N = 400 (what the report's holdout check compares), and the true p(400).

Run from the repository root with the venv activated:
    python bench/forecast_coverage.py --reps 40 --boot 200   # writes results/bench_forecast_coverage.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import emit
from scipy.stats import norm

from tunelab.decide.curvefit import candidates, spanned

SIZES = [25, 50, 100, 200, 400]
SHAPES = {
    "power law 0.8 - 2 n^-0.5": lambda n: 0.8 - 2.0 * n ** -0.5,
    "log-linear 0.1 + 0.1 ln n": lambda n: min(0.1 + 0.1 * np.log(n), 0.99),
    "flat then steep (ViGGO LoRA-like)": lambda n: 0.3 + 0.63 / (1 + (110 / n) ** 3),
    "early saturation 0.7 (1 - e^-n/60)": lambda n: 0.7 * (1 - np.exp(-n / 60)),
}
"""Curve shapes: the two forms fitted, and two neither of them is."""


def draw(p_of_n, examples: int, rho: float, rng) -> list[np.ndarray]:
    """Per size a (1, examples) 0/1 matrix with marginal p(n), correlated across sizes."""
    z = rng.standard_normal(examples)
    out = []
    for n in SIZES:
        e = rng.standard_normal(examples)
        latent = np.sqrt(rho) * z + np.sqrt(1 - rho) * e
        out.append((latent < norm.ppf(p_of_n(n))).astype(float)[None, :])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--examples", type=int, default=50)
    ap.add_argument("--rho", type=float, default=0.5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    rows = []
    for name, p in SHAPES.items():
        hits = {"power law alone": [0, 0, []], "forms used": [0, 0, []]}
        for _ in range(args.reps):
            per = draw(p, args.examples, args.rho, rng)
            used, found = candidates(SIZES[:-1], per[:-1], n_boot=args.boot)
            measured, truth = float(per[-1].mean()), p(SIZES[-1])
            rules = {"forms used": spanned(used, lambda f: f(SIZES[-1]))[0]}
            if "power" in found:
                rules["power law alone"] = spanned([found["power"]], lambda f: f(SIZES[-1]))[0]
            for rule, (_, lo, hi) in rules.items():
                h = hits[rule]
                h[0] += lo <= measured <= hi
                h[1] += lo <= truth <= hi
                h[2].append(hi - lo)
        for rule, (meas, true, width) in hits.items():
            print(f"{name} | {rule}: holds measured {meas}/{args.reps}, holds p(400) {true}/"
                  f"{args.reps}, mean width {np.mean(width):.3f}", flush=True)
            rows.append({"shape": name, "rule": rule, "reps": args.reps, "holds_measured": meas,
                         "holds_true_p400": true, "mean_width": float(np.mean(width))})
    emit({"seconds": time.perf_counter() - start}, rows)


if __name__ == "__main__":
    main()
