"""Cost: what each arm costs once (training, search) and per 1,000 requests; the request
volume at which a fine-tuned arm becomes cheaper than the prompting arm it matches; the
Pareto front of quality against cost.

Every figure comes from what the runs measured (training seconds, prompt and generated
tokens, device seconds per request) times the prices of the config's `cost` block. An arm
whose price is not given has no dollar figure: the table then shows tokens and seconds, and
a break-even volume is given in device seconds only where both arms ran on the same kind
of hardware (the price per second cancels out). No price is ever made up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tunelab.core.config import CostConfig, from_dict
from tunelab.decide.arms import run_info
from tunelab.decide.verdict import best, compare

RATES = {"cpu": "cpu_usd_per_hour", "cuda": "gpu_usd_per_hour"}
"""Device type recorded with a run -> the cost key that prices an hour of it."""


@dataclass
class Usage:
    """What one arm measured (means over seeds)."""

    name: str
    device: str
    """cpu, cuda, api (a remote endpoint) or unknown (not recorded)."""
    oneoff_s: float
    """Training or prompt-search seconds, spent once."""
    latency_s: float
    """Device seconds per request (a batch's wall time over its size)."""
    prompt_tokens: float
    gen_tokens: float
    api_prices: tuple[float | None, float | None] = (None, None)
    """The model's own $/M prompt and generated tokens (openai backend), if set."""
    teacher_tokens: tuple[float, float] | None = None
    """distill with an API teacher: the prompt and generated tokens its labelling took, paid
    once (its seconds are in oneoff_s already)."""
    teacher_prices: tuple[float | None, float | None] = (None, None)
    """That teacher model's own $/M prompt and generated tokens, if set."""


def device(run: dict) -> str:
    """Where a stored run ran. Runs stored before the device was recorded: the openai
    backend is "api"; a CPU-only torch build ("+cpu") cannot have used a GPU; else unknown."""
    ran = run_info(run).device
    if ran:
        return ran
    cell = json.loads(run.get("config") or "{}").get("cell", {})
    if (cell.get("model") or {}).get("backend") == "openai":
        return "api"
    torch = json.loads(run.get("versions") or "{}").get("torch", "")
    return "cpu" if torch.endswith("+cpu") else "unknown"


def usage(arm) -> Usage:
    """An arm of the report (report.Arm) as the numbers the cost table needs."""
    kinds = {device(r) for r in arm.runs}
    latency = arm.info_mean("latency_s_mean") or (
        sum(e["latency_s"] or 0 for e in arm.examples) / len(arm.examples) if arm.examples else 0.0)
    model = arm.cell.get("model") or {}
    teacher, info = None, arm.info
    if info.teacher_device == "api":
        teacher = (arm.info_mean("teacher_prompt_tokens"), arm.info_mean("teacher_gen_tokens"))
    return Usage(arm.name, kinds.pop() if len(kinds) == 1 else "unknown", arm.mean("train_seconds"),
                 latency, arm.mean("prompt_tokens_mean"), arm.mean("gen_tokens_mean"),
                 (model.get("price_prompt") or None, model.get("price_completion") or None),
                 teacher, tuple(info.teacher_prices or (None, None)))


def hourly(dev: str, cost: CostConfig) -> float | None:
    """$ per hour of this device, if priced."""
    return getattr(cost, RATES[dev]) if dev in RATES else None


def oneoff_usd(u: Usage, cost: CostConfig) -> float | None:
    """Training / search time x the price of the hardware it ran on, plus an API teacher's
    tokens at the API prices (distill). Nothing spent costs nothing, priced or not."""
    rate = hourly(u.device, cost)
    local = 0.0 if u.oneoff_s == 0 else None if rate is None else u.oneoff_s * rate / 3600
    if u.teacher_tokens is None or local is None:
        return local
    api = tokens_usd(*u.teacher_tokens, u.teacher_prices, cost)
    return None if api is None else local + api


def tokens_usd(prompt: float, gen: float, prices: tuple, cost: CostConfig) -> float | None:
    """Dollars for these API tokens: the model's own prices, else the cost block's."""
    pin = prices[0] or cost.api_input_usd_per_mtok
    pout = prices[1] or cost.api_output_usd_per_mtok
    if pin is None or pout is None:
        return None
    return (prompt * pin + gen * pout) / 1e6


def per_1k_usd(u: Usage, cost: CostConfig) -> float | None:
    """$ per 1,000 requests: API arms by their measured tokens x the token prices (the
    model's own, else the cost block's); local arms by device seconds x the hourly price."""
    if u.device == "api":
        usd = tokens_usd(u.prompt_tokens, u.gen_tokens, u.api_prices, cost)
        return None if usd is None else 1000 * usd
    rate = hourly(u.device, cost)
    return None if rate is None else 1000 * u.latency_s * rate / 3600


def break_even(oneoff_t: float, per_1k_t: float, oneoff_p: float, per_1k_p: float) -> float | None:
    """Requests after which arm t (one-off cost, cost per 1,000 requests) costs less in total
    than arm p: 0 if from the first request, None if never.

    >>> break_even(10.0, 1.0, 0.0, 3.0)   # 10 saved back at 2 per 1,000 requests
    5000.0
    >>> break_even(10.0, 3.0, 0.0, 3.0) is None
    True
    """
    if (oneoff_t, per_1k_t) != (oneoff_p, per_1k_p) and oneoff_t <= oneoff_p and per_1k_t <= per_1k_p:
        return 0.0
    if per_1k_t >= per_1k_p:
        return None
    return 1000 * (oneoff_t - oneoff_p) / (per_1k_p - per_1k_t)


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, quality; higher is better) points: True where no other point is at least
    as cheap and at least as good, and strictly one of them.

    >>> pareto([(1, 0.5), (2, 0.9), (3, 0.8), (1, 0.4)])
    [True, True, False, False]
    """
    return [not any(c2 <= c and q2 >= q and (c2, q2) != (c, q) for c2, q2 in points)
            for c, q in points]


def unit(us: list[Usage], cost: CostConfig) -> str:
    """The one unit every arm's cost per 1,000 requests can be put in: dollars if every arm
    is priced, else device seconds if all ran on one kind of hardware, else tokens."""
    if all(per_1k_usd(u, cost) is not None for u in us):
        return "usd"
    kinds = {u.device for u in us}
    return "s" if len(kinds) == 1 and kinds <= set(RATES) else "tokens"


def figures(u: Usage, cost: CostConfig, unit: str) -> tuple[float | None, float | None]:
    """(one-off, per 1,000 requests) of an arm in `unit` (usd or s); None where not known."""
    if unit == "usd":
        return oneoff_usd(u, cost), per_1k_usd(u, cost)
    return (u.oneoff_s, 1000 * u.latency_s) if u.device in RATES else (None, None)


def _even_unit(t: Usage, p: Usage, cost: CostConfig) -> str | None:
    """Dollars where both arms are priced; device seconds where both ran on one kind of
    local hardware (the price cancels out); else nothing to compare them in."""
    if None not in (*figures(t, cost, "usd"), *figures(p, cost, "usd")):
        return "usd"
    if t.teacher_tokens or p.teacher_tokens:  # API tokens spent once are not device seconds
        return None
    return "s" if t.device == p.device and t.device in RATES else None


def matched(tuned, prompted: list, metric: str, margin: float):
    """The best prompting arm that the fine-tuned arm beats or is within the margin of
    (the report's paired comparison), with that comparison; (None, None) if none."""
    ok = {id(p): c for p in prompted
          if (c := compare(tuned, p, metric, margin)).kind in ("better", "equivalent")}
    if not ok:
        return None, None
    p = best([p for p in prompted if id(p) in ok], metric)
    return p, ok[id(p)]


def evens(arms: list, metric: str, margin: float, cost: CostConfig) -> list[dict]:
    """Per fine-tuned arm: the prompting arm it is set against and the volume (requests,
    and days at cost.requests_per_day) from which it is the cheaper of the two."""
    prompted = [a for a in arms if not a.trained]
    rows = []
    for t in (a for a in arms if a.trained):
        p, c = matched(t, prompted, metric, margin) if prompted else (None, None)
        ut = usage(t)
        row = {"arm": t.name, "against": p.name if p else None, "kind": c.kind if c else None,
               "unit": None, "requests": None, "days": None}
        if p is not None:
            up = usage(p)
            row["unit"] = _even_unit(ut, up, cost)
            if row["unit"]:
                row["requests"] = break_even(*figures(ut, cost, row["unit"]),
                                             *figures(up, cost, row["unit"]))
                if row["requests"] is not None and cost.requests_per_day:
                    row["days"] = row["requests"] / cost.requests_per_day
                    row["per_day"] = cost.requests_per_day
        row["line"] = even_line(row, ut.device, metric, margin)
        rows.append(row)
    return rows


def even_line(row: dict, dev: str, metric: str, margin: float) -> str:
    """One plain sentence for a break-even row of evens()."""
    t, p = row["arm"], row["against"]
    if p is None:
        return (f"{t}: no prompting arm is shown equal (within {margin:g} points) or lower on "
                f"{metric} by the paired comparison, so no break-even volume is given.")
    rel = "beats" if row["kind"] == "better" else f"is within {margin:g} points of"
    why = f"{t} {rel} {p}"
    if row["unit"] is None:
        return (f"{why}; whether it is cheaper needs prices for both (cost block: the hourly price "
                "of each one's hardware, or API token prices).")
    how = "in dollars" if row["unit"] == "usd" else f"in {dev} seconds (no prices; same hardware)"
    if row["requests"] is None:
        return f"{why}, but is never cheaper {how}: it costs no less per request."
    if row["requests"] == 0:
        return f"{why} and is cheaper {how} from the first request."
    days = ""
    if row["days"] is not None:
        d = f"{row['days']:,.1f}" if row["days"] >= 10 else f"{row['days']:.2g}"
        days = f" ({d} days at {row['per_day']:,.0f} requests per day)"
    return f"{why} and becomes cheaper {how} after {row['requests']:,.0f} requests{days}."


def table(arms: list, metric: str, margin: float, cost: CostConfig) -> dict:
    """Everything the report's cost section shows: per-arm rows, break-even rows, the unit
    of the Pareto plot's cost axis."""
    us = [usage(a) for a in arms]
    u = unit(us, cost)
    sign = 1 if arms[0].higher.get(metric, True) else -1
    xs = [figures(x, cost, u)[1] if u != "tokens" else 1000 * (x.prompt_tokens + x.gen_tokens)
          for x in us]
    front = pareto([(x, sign * a.ci[metric][0]) for x, a in zip(xs, arms, strict=True)])
    rows = []
    for a, x, cx, on in zip(arms, us, xs, front, strict=True):
        per_1k = per_1k_usd(x, cost)
        rows.append({"arm": a.name, "trained": a.trained, "device": x.device, "oneoff_s": x.oneoff_s,
                     "oneoff_usd": oneoff_usd(x, cost), "prompt_tok_1k": 1000 * x.prompt_tokens,
                     "gen_tok_1k": 1000 * x.gen_tokens, "s_1k": 1000 * x.latency_s,
                     "usd_1k": per_1k, "x": cx, "front": on, "ci": a.ci[metric],
                     "usd_day": per_1k * cost.requests_per_day / 1000
                     if per_1k is not None and cost.requests_per_day else None})
    priced = any(v is not None for k, v in vars(cost).items() if k != "requests_per_day")
    return {"rows": rows, "evens": evens(arms, metric, margin, cost), "unit": u, "priced": priced,
            "prices": {k: v for k, v in vars(cost).items() if v is not None}}


def stored_cost(arms: list) -> CostConfig:
    """The cost block of the most recently finished run that has one (prices given on the
    command line or by `tunelab run` take precedence, as report.margin's do)."""
    runs = sorted((r for a in arms for r in a.runs), key=lambda r: r.get("finished") or 0)
    for r in reversed(runs):
        block = json.loads(r.get("config") or "{}").get("cost") or {}
        if any(v is not None for v in block.values()):
            return from_dict(CostConfig, block, "cost")
    return CostConfig()
