"""The "Facts vs form" report: tables, plots and verdict lines computed from the stored
probe runs (never from memory), so `tunelab probe report` rebuilds it at any time.

A verdict says a level "moved" only when the paired 95% interval of its change against
the base model excludes zero; if fine-tuning does teach the facts, the lines say so.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tunelab import TunelabError  # noqa: E402
from tunelab.core.store import Store  # noqa: E402
from tunelab.probes.confidence import paired_change  # noqa: E402
from tunelab.probes.measure import moved  # noqa: E402
from tunelab.report.build import write_pages  # noqa: E402
from tunelab.report.plots import png  # noqa: E402
from tunelab.tasks.metrics import paired_bootstrap  # noqa: E402


def load(store: Store, probe: str) -> dict[str, dict]:
    """arm label -> {run, metrics, items}, latest run of each label, in run order."""
    out = {}
    for r in store.runs("done", kind="probe"):
        if r["task"] == probe:
            out[r["label"]] = {"run": r, "metrics": store.metrics(r["id"]),
                               "items": store.predictions(r["id"]), "info": json.loads(r["info"] or "{}")}
    return out


def _ci(m: dict, name: str, fmt: str = "{:.2f}", scale: float = 1.0) -> str:
    if name not in m:
        return "n/a"
    v, lo, hi = (m[name][k] * scale for k in ("value", "lo", "hi"))
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _tuple(m: dict) -> tuple[float, float, float]:
    return m["value"], m["lo"], m["hi"]


def _pct(m: dict, name: str) -> str:
    return _ci(m, name, "{:.0f}%", 100.0)


def _tuned(arms: dict) -> list[str]:
    return [a for a in arms if a != "base" and a != "closed-book" and re.search(r"\d+ (steps|ep)$", a)]


def substitute_lines(arms: dict) -> list[str]:
    if "base" not in arms:
        return []
    settings = json.loads(arms["base"]["run"]["config"])["settings"]
    old, new = settings["old"], settings["new"]
    b = arms["base"]["metrics"]
    lines = []
    for arm in _tuned(arms):
        m = arms[arm]["metrics"]
        c = _tuple(m["change_nll"])
        levels = [f"form {'moved' if moved(c) else 'did not move'} (held-out perplexity "
                  f"{b['perplexity']['value']:.1f} -> {m['perplexity']['value']:.1f}; NLL change "
                  f"{c[0]:+.2f}, 95% CI {c[1]:+.2f} to {c[2]:+.2f})"]
        ctrl = m["change_control_margin"]["value"]
        for what, level, key in (("surface fact", "cloze", "excess_cloze"),
                                 ("underlying fact", "paraphrase", "excess_paraphrase")):
            e = _tuple(m[key])
            verb = "moved" if e[1] > 0 else "did not move beyond the name's general rise"
            levels.append(
                f"{what} {verb} ({level} margin log p({new}) - log p({old}) "
                f"{b[level + '_margin']['value']:+.2f} -> {m[level + '_margin']['value']:+.2f}, "
                f"change {m['change_' + level + '_margin']['value']:+.2f} against {ctrl:+.2f} in "
                f"control contexts: excess {e[0]:+.2f}, 95% CI {e[1]:+.2f} to {e[2]:+.2f}; "
                f"{new} preferred in {_pct(m, level + '_prefers_new')} of items, base "
                f"{_pct(b, level + '_prefers_new')})")
        lines.append(f"{arm}: " + "; ".join(levels) + ".")
        gens = [f"'{n}' prompt names {new} in {_pct(m, n + '_says_new')} of samples "
                f"(base {_pct(b, n + '_says_new')}) and {old} in {_pct(m, n + '_says_old')} "
                f"(base {_pct(b, n + '_says_old')})" for n in ("old_letter", "new_letter")]
        lines.append(f"{arm} generations: " + "; ".join(gens) + ".")
    return lines


def _paired(arms: dict, a: str, b: str, kinds: tuple[str, ...]) -> tuple[float, float, float] | None:
    """Paired difference a - b in answer accuracy over the questions of `kinds` both asked."""
    def scores(arm):
        return {i["example_id"]: i["scores"]["correct"] for i in arms[arm]["items"]
                if i["scores"].get("kind") in kinds}
    x, y = scores(a), scores(b)
    common = sorted(set(x) & set(y))
    return paired_bootstrap([x[k] for k in common], [y[k] for k in common]) if common else None


def facts_lines(arms: dict) -> list[str]:
    if "closed-book" not in arms:
        return []
    base = arms["closed-book"]["metrics"]
    tuned = [a for a in _tuned(arms) if "facts" not in a and "acc_near" in arms[a]["metrics"]]
    lines = []
    if tuned:
        best = max(tuned, key=lambda a: arms[a]["metrics"]["acc_near"]["value"])
        m = arms[best]["metrics"]
        far = _paired(arms, best, "closed-book", ("paraphrase", "reversal"))
        near = _paired(arms, best, "closed-book", ("near",))
        lines.append(
            f"Fine-tuning ({best}, the best fine-tuned arm on near-wording questions) took near-wording "
            f"accuracy from {_pct(base, 'acc_near')} closed-book to {_pct(m, 'acc_near')} "
            f"(paired change {near[0] * 100:+.0f} points, CI {near[1] * 100:+.0f} to {near[2] * 100:+.0f}); "
            f"paraphrase accuracy to {_pct(m, 'acc_paraphrase')} and reversal to {_pct(m, 'acc_reversal')} "
            f"(paraphrase+reversal paired change {far[0] * 100:+.0f} points, CI {far[1] * 100:+.0f} to "
            f"{far[2] * 100:+.0f}: "
            + ("fine-tuning did teach facts that transfer to new wordings" if far[1] > 0 else
               "no measurable transfer to new wordings") + ").")
        lines.append(f"Hallucination on unanswerable questions: {_pct(base, 'hallucination')} closed-book, "
                     f"{_pct(m, 'hallucination')} after {best}.")
        if "change_general_nll" in m:
            c = m["change_general_nll"]
            lines.append(
                f"Forgetting after {best}: {_pct(m, 'acc_general')} of the general questions the base "
                f"model answered right are still right; general-text perplexity "
                f"{base['general_perplexity']['value']:.1f} -> {m['general_perplexity']['value']:.1f} "
                f"(NLL change {c['value']:+.3f}, CI {c['lo']:+.3f} to {c['hi']:+.3f}).")
    lines += confidence_lines(arms) + replay_lines(arms)
    for arm in ("in-context", "rag", "rag + lora"):
        if arm in arms:
            m = arms[arm]["metrics"]
            lines.append(f"{arm}: near {_pct(m, 'acc_near')}, paraphrase {_pct(m, 'acc_paraphrase')}, "
                         f"reversal {_pct(m, 'acc_reversal')}, hallucination {_pct(m, 'hallucination')}.")
    return lines


def _last_epoch(arms: dict, prefix: str) -> str | None:
    """The arm `<prefix> N ep` with the largest N, if any."""
    pts = [(int(m.group(1)), a) for a in arms if (m := re.fullmatch(rf"{re.escape(prefix)} (\d+) ep", a))]
    return max(pts)[1] if pts else None


def _change(c: dict | tuple | None, fmt: str = "{:+.2f}", scale: float = 1.0) -> str:
    if c is None:
        return "n/a"
    v, lo, hi = (x * scale for x in (_tuple(c) if isinstance(c, dict) else c))
    return f"{fmt.format(v)}, CI {fmt.format(lo)} to {fmt.format(hi)}"


def confidence_lines(arms: dict) -> list[str]:
    """Hallucination as confidence (probes.confidence), after each fine-tune's last epoch."""
    base = arms["closed-book"]["metrics"]
    if "confidence_unanswerable" not in base:
        return []
    lines = []
    for method in ("lora", "full"):
        arm = _last_epoch(arms, method)
        m = arms[arm]["metrics"] if arm else {}
        if "change_confidence_unanswerable" not in m:
            continue
        c = _tuple(m["change_confidence_unanswerable"])
        verdict = ("more confident in its invented answers" if c[1] > 0 else
                   "less confident in its invented answers" if c[2] < 0 else "no measurable change")
        gaps = "; ".join(
            f"{name} minus unanswerable {_ci(base, f'confidence_gap_{name}', '{:+.2f}')} -> "
            f"{_ci(m, f'confidence_gap_{name}', '{:+.2f}')} "
            f"(change {_change(m.get(f'change_confidence_gap_{name}'))})"
            for name in ("known", "taught"))
        lines.append(
            f"Confidence on unanswerable questions (mean log-prob per token of the model's own answer) "
            f"after {arm}: {_ci(base, 'confidence_unanswerable', '{:.2f}')} closed-book -> "
            f"{_ci(m, 'confidence_unanswerable', '{:.2f}')} (paired change {_change(c)}: {verdict}). "
            f"Gap in confidence, {gaps}.")
    return lines


def replay_lines(arms: dict) -> list[str]:
    """What replay did: each `<method> + replay N ep` arm against `<method> N ep`, paired."""
    lines = []
    for arm in arms:
        if not (hit := re.fullmatch(r"(\w+) \+ replay (\d+) ep", arm)):
            continue
        plain = f"{hit.group(1)} {hit.group(2)} ep"
        if plain not in arms:
            continue
        a, b, info = arms[arm], arms[plain], arms[arm]["info"]
        ma, mb = a["metrics"], b["metrics"]
        gen = paired_change(a["items"], b["items"], ("general",), "correct")
        nll = paired_change(a["items"], b["items"], ("text",), "nll")
        near = paired_change(a["items"], b["items"], ("near",), "correct")
        lines.append(
            f"Replay ({info.get('replay', 0):.0%} of the mix, {info.get('replay_examples', 0)} general "
            f"instruction examples) in {plain}: general questions still right {_pct(ma, 'acc_general')} "
            f"against {_pct(mb, 'acc_general')} without (paired change {_change(gen, '{:+.0f}', 100)} "
            f"points); general-text NLL against without: {_change(nll, '{:+.3f}')}; near-wording accuracy "
            f"{_pct(ma, 'acc_near')} against {_pct(mb, 'acc_near')} (paired change "
            f"{_change(near, '{:+.0f}', 100)} points).")
    return lines


def _bars(arms: dict, names: list[str], labels: list[str], ylabel: str, scale: float = 1.0) -> bytes:
    fig, ax = plt.subplots(figsize=(max(6, len(arms) * 0.9), 3.6))
    width = 0.8 / len(names)
    for j, (n, lab) in enumerate(zip(names, labels, strict=True)):
        x = np.arange(len(arms)) + j * width
        ms = [arms[a]["metrics"].get(n) for a in arms]
        v = [m["value"] * scale if m else np.nan for m in ms]
        err = [[(m["value"] - m["lo"]) * scale if m else 0 for m in ms],
               [(m["hi"] - m["value"]) * scale if m else 0 for m in ms]]
        ax.bar(x, v, width, yerr=err, capsize=2, label=lab)
    ax.set_xticks(np.arange(len(arms)) + width * (len(names) - 1) / 2, list(arms), rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=8)
    return png(fig)


def _learnability(arms: dict) -> bytes:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for method in ("lora", "full"):
        pts = sorted((int(m.group(1)), arm) for arm in arms
                     if (m := re.fullmatch(rf"{method} (\d+) ep", arm)))
        for kind in ("near", "paraphrase"):
            ys = [arms[a]["metrics"].get(f"acc_{kind}", {}).get("value", np.nan) * 100 for _, a in pts]
            if pts:
                a1.plot([e for e, _ in pts], ys, marker="o", label=f"{method} {kind}")
    a1.set_xlabel("epochs over the fact sentences")
    a1.set_ylabel("accuracy %")
    a1.legend(fontsize=8)
    subsets = [a for a in arms if re.fullmatch(r"lora \d+ facts \d+ ep", a)]
    last = {arms[a]["info"].get("epochs") for a in subsets}
    pts = sorted((arms[a]["info"].get("train_texts", 0), a) for a in arms
                 if re.fullmatch(r"lora (\d+ facts )?\d+ ep", a) and arms[a]["info"].get("epochs") in last)
    for kind in ("near", "paraphrase"):
        a2.plot([n for n, _ in pts], [arms[a]["metrics"].get(f"acc_{kind}", {}).get("value", np.nan) * 100
                                      for _, a in pts], marker="o", label=kind)
    a2.set_xlabel("facts trained (LoRA, last epoch count)")
    a2.legend(fontsize=8)
    return png(fig)


def build(store_path: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write facts_vs_form.md and .html from every probe run in the store."""
    store = Store(store_path, create=False)
    sub, facts = load(store, "substitute"), load(store, "facts")
    if not sub and not facts:
        raise TunelabError(f"{store_path}: no finished probe runs")
    images = {}
    if sub:
        images["substitute"] = _bars(sub, ["cloze_margin", "paraphrase_margin"],
                                     ["surface: cloze margin", "underlying: paraphrase margin"],
                                     "log p(new) - log p(old)")
    if facts:
        images["facts"] = _bars(facts, ["acc_near", "acc_paraphrase", "acc_reversal", "hallucination"],
                                ["near", "paraphrase", "reversal", "hallucination (unanswerable)"], "%", 100)
        images["learnability"] = _learnability(facts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (out / f"probe_{name}.png").write_bytes(data)
    ctx = {"sub": sub, "facts": facts, "sub_lines": substitute_lines(sub), "facts_lines": facts_lines(facts),
           "ci": _ci, "pct": _pct, "images": {k: base64.b64encode(v).decode() for k, v in images.items()}}
    return write_pages(out, "facts_vs_form", "probes", ctx)
