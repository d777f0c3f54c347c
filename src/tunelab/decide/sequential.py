"""When sequential evaluation may stop: the comparisons the recommendation needs, decided.

After each round (looks.py) the arms scored so far are compared the way the verdict
will compare them (verdict.py): the best fine-tuned arm against the best prompting arm,
in the simultaneous family of every fine-tuned x prompting pair; without both kinds of
arm, the two best arms in the family of every pair. Scoring stops when that comparison
is decided (better, worse or equivalent) with intervals adjusted for the planned looks,
or when the slice is used up. The executor sits below this layer, so the command that
runs a grid hands it `rule`. The same functions replay a finished store (bench/
sequential.py) and simulate the procedure (`simulate`), so what is measured is what runs.
Pure: numpy only, no torch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from tunelab.decide.decisive import deciding
from tunelab.decide.verdict import MARGIN, Comparison, best, headline_comparison, in_family
from tunelab.run.rounds import planned_looks, round_ends


@dataclass
class Interim:
    """An arm as far as it has been scored (verdict.Arm's fields the comparisons read)."""

    model: str
    label: str
    method: str
    n_train: int
    trained: bool
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """metric -> example id -> score averaged over seeds."""
    looks: int = 1
    sized: bool = False
    convergence: str | None = None
    collapsed: str | None = None

    @property
    def name(self) -> str:
        return f"{self.label} n={self.n_train}" if self.trained else self.label

    @property
    def curve(self) -> tuple[str, str]:
        return self.model, self.label

    @property
    def ci(self) -> dict[str, tuple[float, float, float]]:
        """Means only (best() picks by the mean): no bootstrap per round."""
        return {m: (float(np.mean(list(v.values()))),) * 3 for m, v in self.scores.items() if v}


def interim_arms(cells: list[dict], looks: int) -> list[Interim]:
    """Cells grouped into arms, seeds averaged per example. A cell is a dict with model,
    label, method, n_train, trained and rows (each {"example_id", "scores"}); numeric
    scores only (a task may keep a note beside them)."""
    per: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    first: dict = {}
    for c in cells:
        k = (c["model"], c["label"], c["n_train"])
        first.setdefault(k, c)
        for r in c["rows"]:
            for name, v in r["scores"].items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    per[k][name][r["example_id"]].append(float(v))
    arms = []
    for k, c in first.items():
        scores = {m: {e: float(np.mean(v)) for e, v in d.items()} for m, d in per[k].items()}
        arms.append(Interim(c["model"], c["label"], c["method"], c["n_train"], c["trained"],
                            scores, looks))
    return arms


def needed(arms: list[Interim], metric: str, margin: float = MARGIN) -> Comparison | None:
    """The comparison the recommendation turns on, or None where there is none to make
    (one arm; a metric with no per-example scores, e.g. macro-F1: then nothing stops
    early). The metric is the verdict's (decisive.deciding: the first that moves)."""
    if len(arms) < 2 or not all(a.scores.get(metric) for a in arms):
        return None
    metric, _ = deciding(arms, metric)
    if metric is None:
        return None
    tuned = [a for a in arms if a.trained]
    prompted = [a for a in arms if not a.trained]
    if tuned and prompted:
        return headline_comparison(tuned, prompted, metric, margin)
    top = best(arms, metric)
    rest = [a for a in arms if a is not top]
    runner = best(rest, metric)
    pairs = [(top, runner)] + [(x, y) for i, x in enumerate(arms) for y in arms[i + 1:]
                               if {id(x), id(y)} != {id(top), id(runner)}]
    return in_family(pairs, metric, margin)


def settled(arms: list[Interim], metric: str, margin: float = MARGIN) -> Comparison | None:
    """The needed comparison if it is decided (better, worse or equivalent), else None."""
    c = needed(arms, metric, margin)
    return c if c is not None and c.kind != "undecided" else None


def stop_note(c: Comparison | None, n: int) -> str:
    """Why scoring stopped, in the words the report prints."""
    if c is None:
        return "test slice used up"
    return f"the headline was decided after {n} examples ({c.a} vs {c.b}: {c.kind})"


def rule(cells: list[dict], looks: int, metric: str, margin: float) -> str | None:
    """The stopping rule the executor is handed (run/sequential.Settle): why scoring may
    stop now (stop_note), or None to go on. `cells` as interim_arms reads them."""
    arms = interim_arms(cells, looks)
    c = settled(arms, metric, margin)
    if c is None:
        return None
    return stop_note(c, min(len(v) for a in arms for v in a.scores.values()))


# --- simulation: the procedure on synthetic arms of known true difference -----------------

SCORES = ("binary", "continuous")


def draw(kind: str, n: int, mean_a: float, mean_b: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Per-example scores of two arms on one slice: 0/1 (Bernoulli) or continuous in [0, 1]
    (Beta with concentration 4), with the given true means."""
    if kind == "binary":
        return (rng.random(n) < mean_a).astype(float), (rng.random(n) < mean_b).astype(float)
    return rng.beta(4 * mean_a, 4 * (1 - mean_a), n), rng.beta(4 * mean_b, 4 * (1 - mean_b), n)


def verdict_on(a: np.ndarray, b: np.ndarray, margin: float, round_size: int | None,
               adjust: bool = True) -> tuple[str, int]:
    """(kind, examples used) of the headline for one simulated slice: a fine-tuned arm
    scoring `a` against a prompting arm scoring `b`. round_size None: the fixed slice
    (one look); else sequential, its looks adjusted unless `adjust` is False."""
    n = len(a)
    ends = [n] if round_size is None else round_ends(n, round_size)
    looks = planned_looks(n, round_size) if round_size and adjust else 1
    ids = [str(i) for i in range(n)]
    c = None
    for end in ends:
        ft = Interim("m", "ft", "lora", 1, True, {"s": dict(zip(ids[:end], a[:end], strict=True))}, looks)
        pr = Interim("m", "prompt", "few_shot", 0, False, {"s": dict(zip(ids[:end], b[:end], strict=True))},
                     looks)
        c = headline_comparison([ft], [pr], "s", margin)
        if c.kind != "undecided":
            return c.kind, end
    return c.kind, n


def wrong(kind: str, true_d: float, margin: float) -> bool:
    """Whether a verdict contradicts the truth: a winner where the true difference is zero
    or the other way, or equivalence where the true difference reaches the margin.

    >>> wrong("better", 0.0, 2), wrong("equivalent", 0.01, 2), wrong("equivalent", 0.02, 2)
    (True, False, True)
    """
    return ((kind == "better" and true_d <= 0) or (kind == "worse" and true_d >= 0)
            or (kind == "equivalent" and abs(true_d) >= margin / 100 - 1e-12))


def simulate(kind: str, true_d: float, n: int, round_size: int | None, draws: int,
             margin: float = MARGIN, adjust: bool = True, base: float = 0.5, seed: int = 0) -> dict:
    """The procedure on `draws` synthetic slices of n examples whose arms differ by true_d
    (a score, e.g. 0.02 = 2 points): share of wrong verdicts, of each verdict, and the
    mean examples scored."""
    rng = np.random.default_rng(seed)
    kinds, used = [], []
    for _ in range(draws):
        a, b = draw(kind, n, base + true_d / 2, base - true_d / 2, rng)
        k, m = verdict_on(a, b, margin, round_size, adjust)
        kinds.append(k)
        used.append(m)
    share = {v: kinds.count(v) / draws for v in ("better", "worse", "equivalent", "undecided")}
    return {"wrong": sum(wrong(k, true_d, margin) for k in kinds) / draws, **share,
            "examples_mean": float(np.mean(used))}
