"""How often the interval tunelab reports for a difference of two arms holds the true one,
at the test-slice sizes users run, side by side with the alternatives.

A population of per-example paired differences (arm a minus arm b) comes from a store (two
arms' seed-averaged scores on the examples both were scored on: a reference run of the
whole test split) or from a synthetic generator (0/1 scores of two arms on examples of
varying difficulty, true difference `--delta`). Each replicate draws a test slice of n
examples from that population with replacement and computes four 95% intervals of the
mean difference; coverage is the share of replicates whose interval holds the
population's mean difference (the difference a run on every example would measure).

- percentile: the paired percentile bootstrap (metrics.paired_bootstrap), what the report prints;
- bca: bias-corrected and accelerated bootstrap (scipy.stats.bootstrap, method="BCa");
- studentized: bootstrap-t, each resample's mean difference over its own standard error;
- t: the paired t-interval, mean +- t(n-1) * sd / sqrt(n).

    python bench/coverage.py --synthetic --delta 0.05 --reps 400
    python bench/coverage.py --store runs/ref.db --a "lora n=100" --b few_shot --name viggo

Writes results/bench_coverage_<name>.json (the command, code version, machine in words, every
row) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from tunelab.tasks.metrics import paired_bootstrap

SIZES = (40, 100, 200)
METHODS = ("percentile", "bca", "studentized", "t")


def synthetic(n: int, delta: float, rng) -> np.ndarray:
    """n per-example differences of two 0/1-scored arms: each example has a difficulty
    (success probability ~ Beta(2, 2)); arm a succeeds with it plus `delta`, arm b with it,
    so their mistakes are correlated as on a shared test slice."""
    p = rng.beta(2, 2, size=n)
    a = rng.random(n) < np.clip(p + delta, 0, 1)
    b = rng.random(n) < p
    return a.astype(float) - b.astype(float)


def from_store(path: str, a: str, b: str, metric: str | None) -> tuple[np.ndarray, str]:
    """Per-example differences a - b of two arms of a store, and the metric's name."""
    from tunelab.core.store import Store
    from tunelab.decide.arms import load_arms, primary_metric

    arms = {x.name: x for x in load_arms(Store(path, create=False))}
    missing = [n for n in (a, b) if n not in arms]
    if missing:
        sys.exit(f"{path}: no arm named {missing[0]!r}; arms: {', '.join(sorted(arms))}")
    metric = metric or primary_metric(list(arms.values()))
    sa, sb = arms[a].scores[metric], arms[b].scores[metric]
    common = sorted(set(sa) & set(sb))
    return np.array([sa[e] - sb[e] for e in common]), metric


def intervals(d: np.ndarray, boot: int, seed: int) -> dict[str, tuple[float, float]]:
    """The four 95% intervals of mean(d)."""
    n, m = d.size, float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:  # every example the same difference: no sampling error any method can see
        return {k: (m, m) for k in METHODS}
    out = {"percentile": paired_bootstrap(d, np.zeros(n), boot, seed)[1:]}
    with warnings.catch_warnings():  # BCa warns on degenerate resamples; its interval still stands
        warnings.simplefilter("ignore")
        ci = stats.bootstrap((d,), np.mean, n_resamples=boot, method="BCa",
                             random_state=np.random.default_rng(seed)).confidence_interval
    out["bca"] = (float(ci.low), float(ci.high))
    idx = np.random.default_rng(seed).integers(0, n, size=(boot, n))
    x = d[idx]
    se_star = x.std(axis=1, ddof=1) / np.sqrt(n)
    ok = se_star > 0
    t_star = (x.mean(axis=1)[ok] - m) / se_star[ok]
    se = sd / np.sqrt(n)
    q_lo, q_hi = np.quantile(t_star, [0.025, 0.975])
    out["studentized"] = (m - q_hi * se, m - q_lo * se)
    half = stats.t.ppf(0.975, n - 1) * se
    out["t"] = (m - half, m + half)
    return out


def coverage(pop: np.ndarray, sizes, reps: int, boot: int, seed: int) -> list[dict]:
    """One row per (slice size, method): coverage and mean width over `reps` slices."""
    truth = float(pop.mean())
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        hits = {k: 0 for k in METHODS}
        width = {k: 0.0 for k in METHODS}
        for r in range(reps):
            d = pop[rng.integers(0, pop.size, size=n)]
            for k, (lo, hi) in intervals(d, boot, seed + r).items():
                hits[k] += lo <= truth <= hi
                width[k] += hi - lo
        rows += [{"n": n, "method": k, "coverage": hits[k] / reps, "mean_width": width[k] / reps,
                  "reps": reps} for k in METHODS]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| slice | " + " | ".join(METHODS) + " |", "|---:|" + "---:|" * len(METHODS)]
    for n in sorted({r["n"] for r in rows}):
        cells = {r["method"]: r for r in rows if r["n"] == n}
        lines.append(f"| {n} | " + " | ".join(
            f"{100 * cells[k]['coverage']:.1f}% (w {cells[k]['mean_width']:.3f})" for k in METHODS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", help="results store holding a reference run")
    src.add_argument("--synthetic", action="store_true", help="0/1 scores from a generator")
    ap.add_argument("--a", help="store: arm a (its name in the report)")
    ap.add_argument("--b", help="store: arm b")
    ap.add_argument("--metric", help="store: metric (default: the primary)")
    ap.add_argument("--delta", type=float, default=0.0, help="synthetic: true difference a - b")
    ap.add_argument("--population", type=int, default=20000, help="synthetic: examples drawn once")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None, help="results/bench_coverage_<name>.json")
    args = ap.parse_args(argv)
    if args.store:
        if not (args.a and args.b):
            ap.error("--store needs --a and --b")
        pop, metric = from_store(args.store, args.a, args.b, args.metric)
        source = f"store {Path(args.store).name}: {args.a} - {args.b} on {metric}, {pop.size} examples"
    else:
        pop = synthetic(args.population, args.delta, np.random.default_rng(args.seed))
        source = f"synthetic 0/1 scores, Beta(2, 2) difficulty, delta {args.delta}, {pop.size} examples"
    rows = coverage(pop, args.sizes, args.reps, args.boot, args.seed)
    name = args.name or ("synthetic" if args.synthetic else Path(args.store).stem)
    from tunelab.report.json_results import provenance

    out = {"provenance": provenance(argv if argv is not None else sys.argv[1:], "python bench/coverage.py"),
           "source": source, "truth": float(pop.mean()), "nominal": 0.95,
           "sampling": "slices drawn with replacement from the population", "rows": rows}
    path = Path("results") / f"bench_coverage_{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{source}; true difference {out['truth']:+.4f}; nominal 95%; {args.reps} slices per size")
    print(table(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
