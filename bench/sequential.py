"""Sequential evaluation, measured: how often it gives a wrong verdict, and what it saves.

Two modes, both running the library's own procedure (decide/sequential.py):

- simulate: synthetic slices of two arms (a fine-tuned and a prompting one) whose true
  difference is known, scored 0/1 or continuously in [0, 1]. For each true difference
  (zero, half the margin, the margin, a large one) the headline verdict of three
  procedures: the fixed slice (one look), sequential with look-adjusted intervals (what
  tunelab runs), and sequential without the adjustment (what peeking does). A verdict is
  wrong where it contradicts the truth (decide/sequential.wrong): a winner at difference
  zero or the wrong way round, equivalence at or beyond the margin.
- replay: the rounds replayed on the per-example scores and latencies of a finished store
  scored on the whole slice (a fixed-slice run of a config): where sequential evaluation
  would have stopped, and the test examples and evaluation seconds it would have saved.

    python bench/sequential.py --simulate --draws 1000
    python bench/sequential.py --store runs/demo.db --config configs/demo.yaml --name demo

Writes results/bench_sequential.json (simulate) or results/bench_sequential_<name>.json
(replay), with the command, code version and machine, and prints the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit  # noqa: E402

from tunelab.decide.sequential import SCORES, rule, simulate  # noqa: E402

PROCEDURES = {"fixed slice": (False, True), "sequential": (True, True),
              "sequential, unadjusted": (True, False)}
"""name -> (in rounds, looks adjusted)."""


def simulated(n: int, round_size: int, draws: int, margin: float, large: float) -> list[dict]:
    """One row per score kind x true difference x procedure."""
    rows = []
    for kind in SCORES:
        for case, d in (("zero", 0.0), ("inside margin", margin / 200), ("at margin", margin / 100),
                        ("large", large)):
            for name, (rounds, adjust) in PROCEDURES.items():
                got = simulate(kind, d, n, round_size if rounds else None, draws, margin, adjust)
                rows.append({"scores": kind, "true difference": case, "points": 100 * d,
                             "procedure": name, **got, "draws": draws})
    return rows


def summary(rows: list[dict]) -> dict:
    """The figures the docs quote: worst wrong-verdict rate of sequential evaluation where
    the truth is zero or inside the margin, and its power and examples where it is large."""
    seq = [r for r in rows if r["procedure"] == "sequential"]
    null = [r["wrong"] for r in seq if r["true difference"] in ("zero", "inside margin", "at margin")]
    large = [r for r in seq if r["true difference"] == "large"]
    return {"sequential_wrong_max": max(null),
            "unadjusted_wrong_max": max(r["wrong"] for r in rows
                                        if r["procedure"] == "sequential, unadjusted"
                                        and r["true difference"] == "zero"),
            "large_power_min": min(r["better"] for r in large),
            "large_examples_mean": max(r["examples_mean"] for r in large)}


def cells_of(store_path: str, config: str) -> tuple[list[tuple[dict, list[dict], dict]], object]:
    """The config's finished cells in the store: (as_scored cell, rows in slice order, run)."""
    from tunelab.methods import load_config
    from tunelab.run.grid import prepare
    from tunelab.run.sequential import as_scored

    cfg = load_config(config)
    cfg.store = store_path
    grid = prepare(cfg)
    out = []
    for c in grid.cells:
        if grid.store.status(c.key) == "done":
            rows = grid.store.predictions(c.key)
            out.append((as_scored(c, rows), rows, grid.store.run(c.key)))
    if not out:
        sys.exit(f"{store_path}: no finished cell of {config}")
    return out, grid


def replay(store_path: str, config: str) -> tuple[dict, list[dict]]:
    """Where sequential evaluation would have stopped on this store, and what it saves."""
    from tunelab.run.rounds import planned_looks, round_ends

    cells, grid = cells_of(store_path, config)
    n = min(len(rows) for _, rows, _ in cells)
    size, margin, metric = grid.cfg.eval.round_size, grid.cfg.report.margin, grid.task.primary
    looks, why, end = planned_looks(n, size), None, n
    for end in round_ends(n, size):
        if looks == 1:
            break
        now = [{**c, "rows": rows[:end]} for c, rows, _ in cells]
        why = rule(now, looks, metric, margin)
        if why is not None:
            break
    per = [{"arm": f"{c['label']} n={c['n_train']} seed={run['seed']}", "examples": len(rows),
            "scored": end, "eval_s": run["eval_seconds"] or 0.0,
            "saved_s": sum(r["latency_s"] or 0.0 for r in rows[end:])} for c, rows, run in cells]
    total_s = sum(p["eval_s"] for p in per)
    figures = {"cells": len(cells), "test_examples": n, "round_size": size, "looks_planned": looks,
               "stopped_after": end, "why": why or "test slice used up",
               "examples_saved": sum(p["examples"] - end for p in per),
               "examples_total": sum(p["examples"] for p in per),
               "eval_seconds_saved": sum(p["saved_s"] for p in per), "eval_seconds_total": total_s}
    figures["eval_share_saved"] = figures["eval_seconds_saved"] / total_s if total_s else 0.0
    return figures, per


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--simulate", action="store_true", help="synthetic arms of known difference")
    mode.add_argument("--store", help="replay on a finished fixed-slice store (with --config)")
    ap.add_argument("--config", help="replay: the config the store was run with")
    ap.add_argument("--name", help="replay: results/bench_sequential_<name>.json")
    ap.add_argument("--n", type=int, default=100, help="simulate: test examples per slice")
    ap.add_argument("--round-size", type=int, default=20)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--margin", type=float, default=2.0, help="points")
    ap.add_argument("--large", type=float, default=0.3, help="simulate: the large true difference")
    args = ap.parse_args(argv)
    if args.simulate:
        rows = simulated(args.n, args.round_size, args.draws, args.margin, args.large)
        emit(summary(rows), rows)
        return
    if not args.config:
        ap.error("--store needs --config")
    figures, per = replay(args.store, args.config)
    emit(figures, per, name=f"sequential_{args.name or Path(args.store).stem}")


if __name__ == "__main__":
    main()
