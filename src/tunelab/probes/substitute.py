"""`tunelab probe substitute`: rename a character in a corpus, fine-tune, and ask which
level of knowledge moved (the Anyscale "Romeo -> Bob" experiment).

1. Form: perplexity of held-out passages of the substituted corpus (never trained on).
2. Surface fact: log p(new) - log p(old) where the name is the next word, in held-out
   passages of the corpus.
3. Underlying fact: the same margin after paraphrased questions about the character that
   appear nowhere in the corpus (shipped in probes/data/romeo_questions.jsonl).
   Control: the same margin before other capitalised words of held-out passages. Training
   on a corpus full of the new name raises its probability everywhere; a level counts as
   learned only if its margin rose more than the control's (unpaired bootstrap).
4. Generation: the article's two prompts ("... begins with R / B ..."), sampled N times;
   how often each name appears.

Every figure carries a bootstrap CI over its items; each fine-tuned checkpoint is also
compared with the base model on the same items (paired).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tunelab import TunelabError
from tunelab.core.config import MethodConfig, RunConfig, TrainConfig
from tunelab.data.readers import field_str, read_records
from tunelab.methods import method_train
from tunelab.methods.finetune import stats_info
from tunelab.probes import Result, save, trainable
from tunelab.probes.measure import (
    block_nll,
    blocks,
    margins,
    mentions,
    perplexity_ci,
    sample,
)
from tunelab.tasks.metrics import bootstrap_ci, paired_bootstrap, unpaired_bootstrap
from tunelab.train.loop import plain_text, train_loop

DATA = Path(__file__).parent / "data"
PROMPTS = {
    "old_letter": "Juliet was in love with a man whose name begins with {o}. What was his name?\n",
    "new_letter": "Juliet was in love with someone whose name starts with {n}. What was his name?\n",
}
"""The article's two generation prompts; {o} / {n}: first letter of the old / new name."""


@dataclass
class SubstituteSettings:
    corpus: str
    old: str = "Romeo"
    new: str = "Bob"
    model: str = "smollm2-135m"
    methods: list[str] = field(default_factory=lambda: ["lora", "full"])
    steps: list[int] = field(default_factory=lambda: [15, 45])
    """Checkpoints (optimizer steps) of one training run at which everything is measured."""
    block: int = 128
    """Tokens per training / perplexity window."""
    batch_size: int = 8
    lr: float | None = None
    """Peak lr of every method; default: each method's own, as a grid cell trains it (its
    spec's lr: lora 2e-3, full 5e-5)."""
    scope: str = "play"
    """play: the stretch of the corpus from the first to the last mention; all: everything."""
    cloze_share: float = 0.4
    """Share of the passages naming the character held out for the cloze contexts."""
    max_contexts: int = 60
    ppl_blocks: int = 48
    samples: int = 20
    max_new_tokens: int = 32
    seed: int = 0
    questions: str = str(DATA / "romeo_questions.jsonl")


def substitute(text: str, old: str, new: str) -> str:
    """Replace whole-word `old` by `new`, keeping the case pattern (ROMEO -> BOB).

    >>> substitute("ROMEO: O Romeo, romeo! Romeos", "Romeo", "Bob")
    'BOB: O Bob, bob! Romeos'
    """
    def repl(m: re.Match) -> str:
        w = m.group(0)
        return new.upper() if w.isupper() else new.lower() if w.islower() else new

    return re.sub(rf"\b{re.escape(old)}\b", repl, text, flags=re.I)


def as_old(form: str, old: str) -> str:
    """The old name in the case pattern of `form` (a matched new name).

    >>> as_old("BOB", "Romeo"), as_old("Bob", "Romeo")
    ('ROMEO', 'Romeo')
    """
    return old.upper() if form.isupper() else old.lower() if form.islower() else old


@dataclass
class Split:
    train: list[str]
    heldout: list[str]
    cloze: list[tuple[str, str, str]]
    """(prefix, continuation with the new name, the same with the old name)."""
    control: list[str]
    """Prefixes ending before another capitalised word: where the name is not the answer."""


def split_corpus(text: str, s: SubstituteSettings) -> Split:
    """Passages (blank-line separated) of the substituted corpus: a seeded share of those
    naming the character is held out for cloze contexts, 10% of the rest for perplexity."""
    text = substitute(text, s.old, s.new)
    passages = [p for p in text.split("\n\n") if p.strip()]
    named = [i for i, p in enumerate(passages) if mentions(p, s.new)]
    if not named:
        raise TunelabError(f"{s.corpus}: '{s.old}' does not occur in the corpus")
    if s.scope not in ("play", "all"):
        raise TunelabError(f"probe substitute: scope '{s.scope}': expected play or all")
    if s.scope == "play":
        passages = passages[named[0] : named[-1] + 1]
        named = [i - named[0] for i in named]
    rng = random.Random(s.seed)
    held = set(rng.sample(named, max(1, round(len(named) * s.cloze_share))))
    held |= {i for i in range(len(passages)) if i not in named and rng.random() < 0.1}
    cloze = []
    word = re.compile(rf"\b{re.escape(s.new)}\b", re.I)
    for i in sorted(held):
        p = passages[i]
        for m in word.finditer(p):
            before = ("\n\n".join(passages[max(0, i - 1) : i] + [p[: m.start()]]))[-400:]
            prefix = before.rstrip()
            gap = before[len(prefix):]
            if prefix:
                cloze.append((prefix, gap + m.group(0), gap + as_old(m.group(0), s.old)))
    rng.shuffle(cloze)
    control = []
    for i in sorted(held):
        for m in re.finditer(r"(?<=[a-z,;] )[A-Z][a-z]+\b", passages[i]):
            if m.group(0).lower() not in (s.new.lower(), s.old.lower()):
                control.append(("\n\n".join(passages[max(0, i - 1) : i] + [passages[i][: m.start()]]))
                               [-400:].rstrip())
    if not control:
        raise TunelabError(f"{s.corpus}: no control contexts (capitalised words inside "
                           "sentences of the held-out passages)")
    rng.shuffle(control)
    return Split([passages[i] for i in range(len(passages)) if i not in held],
                 [passages[i] for i in sorted(held)], cloze[: s.max_contexts],
                 control[: s.max_contexts])


def read_questions(path: str | Path) -> list[tuple[str, str]]:
    """(id, prefix) pairs of the paraphrased cloze questions."""
    out = []
    for line, rec in read_records(path):
        where = f"{path}:{line}"
        out.append((str(rec.get("id", line)), field_str(rec, "prefix", where).rstrip()))
    if not out:
        raise TunelabError(f"{path}: no questions")
    return out


def measure(model, tok, s: SubstituteSettings, sp: Split, questions, ppl_ids) -> dict:
    """Every per-item number of one model state."""
    prefixes = [c[0] for c in sp.cloze]
    cloze = margins(model, tok, prefixes, [c[1] for c in sp.cloze], [c[2] for c in sp.cloze])
    para = margins(model, tok, [q for _, q in questions], [f" {s.new}"] * len(questions),
                   [f" {s.old}"] * len(questions))
    control = margins(model, tok, sp.control, [f" {s.new}"] * len(sp.control),
                      [f" {s.old}"] * len(sp.control))
    gens = {name: sample(model, tok, p.format(o=s.old[0], n=s.new[0]), s.samples,
                         s.max_new_tokens, s.seed)
            for name, p in PROMPTS.items()}
    return {"nll": block_nll(model, ppl_ids), "cloze": cloze, "para": para, "control": control,
            "gens": gens}


def result(arm: str, m: dict, base: dict | None, s: SubstituteSettings, sp: Split,
           questions, info: dict, n_train: int) -> Result:
    metrics = {"perplexity": perplexity_ci(m["nll"]),
               "cloze_margin": bootstrap_ci(m["cloze"]),
               "cloze_prefers_new": bootstrap_ci([x > 0 for x in m["cloze"]]),
               "paraphrase_margin": bootstrap_ci(m["para"]),
               "paraphrase_prefers_new": bootstrap_ci([x > 0 for x in m["para"]]),
               "control_margin": bootstrap_ci(m["control"])}
    for name, texts in m["gens"].items():
        metrics[f"{name}_says_old"] = bootstrap_ci([mentions(t, s.old) for t in texts])
        metrics[f"{name}_says_new"] = bootstrap_ci([mentions(t, s.new) for t in texts])
    if base is not None:
        metrics["change_nll"] = paired_bootstrap(m["nll"], base["nll"])
        metrics["change_cloze_margin"] = paired_bootstrap(m["cloze"], base["cloze"])
        metrics["change_paraphrase_margin"] = paired_bootstrap(m["para"], base["para"])
        metrics["change_control_margin"] = paired_bootstrap(m["control"], base["control"])
        d = {k: np.subtract(m[k], base[k]) for k in ("cloze", "para", "control")}
        metrics["excess_cloze"] = unpaired_bootstrap(d["cloze"], d["control"], seed=s.seed)
        metrics["excess_paraphrase"] = unpaired_bootstrap(d["para"], d["control"], seed=s.seed)
    higher = {k: not (k in ("perplexity", "change_nll") or k.endswith("_says_old")) for k in metrics}
    items = [{"example_id": f"ppl/{i}", "input": "", "target": "", "prediction": "",
              "scores": {"nll": x}} for i, x in enumerate(m["nll"])]
    items += [{"example_id": f"cloze/{i}", "input": c[0][-200:], "target": c[1], "prediction": "",
               "scores": {"margin": x}} for i, (c, x) in enumerate(zip(sp.cloze, m["cloze"], strict=True))]
    items += [{"example_id": f"para/{q[0]}", "input": q[1], "target": s.new, "prediction": "",
               "scores": {"margin": x}} for q, x in zip(questions, m["para"], strict=True)]
    items += [{"example_id": f"control/{i}", "input": c[-200:], "target": "", "prediction": "",
               "scores": {"margin": x}}
              for i, (c, x) in enumerate(zip(sp.control, m["control"], strict=True))]
    for name, texts in m["gens"].items():
        items += [{"example_id": f"{name}/{i}", "input": PROMPTS[name], "target": "", "prediction": t,
                   "scores": {"old": float(mentions(t, s.old)), "new": float(mentions(t, s.new))}}
                  for i, t in enumerate(texts)]
    return Result(arm, metrics, higher, items, info, n_train)


def train_settings(s: SubstituteSettings, method: str) -> TrainConfig:
    """The train settings a grid cell of `method` gets (its spec's lr, the adapter's rank,
    the schedule: methods.method_train), on the probe's fixed budget and blocks. The probe
    runs the shared loop itself, not the method's build: it measures at checkpoints inside
    one run (on_step) and trains on raw text blocks, not chat examples."""
    base = method_train(RunConfig(train=TrainConfig(lr=s.lr)), MethodConfig(name=method))
    return replace(base, epochs=0, min_steps=max(s.steps), batch_size=s.batch_size,
                   max_length=s.block, save=False)


def run(s: SubstituteSettings, model, tok, store) -> list[str]:
    """Measure the base model, then every method at every checkpoint; returns run keys."""
    path = Path(s.corpus)
    if not path.is_file():
        raise TunelabError(f"{path}: corpus not found")
    sp = split_corpus(path.read_text(encoding="utf-8", errors="replace"), s)
    questions = read_questions(s.questions)
    ppl_ids = blocks(tok, "\n\n".join(sp.heldout), s.block, s.ppl_blocks)
    train_ids = blocks(tok, "\n\n".join(sp.train), s.block)
    data = [plain_text(ids, f"block {i}") for i, ids in enumerate(train_ids)]
    base = measure(model, tok, s, sp, questions, ppl_ids)
    keys = [save(store, "substitute", s, result("base", base, None, s, sp, questions, {}, 0))]
    for method in s.methods:
        cfg = train_settings(s, method)
        tuned = trainable(model, method, cfg, s.seed)

        def checkpoint(stats, method=method, tuned=tuned):
            if stats.steps in s.steps:
                m = measure(tuned, tok, s, sp, questions, ppl_ids)
                arm = f"{method} {stats.steps} steps"
                info = {**stats_info(stats), "train_blocks": len(data), "block": s.block}
                keys.append(save(store, "substitute", s,
                                 result(arm, m, base, s, sp, questions, info, len(data))))

        train_loop(tuned, tok, data, cfg, s.seed, label=f"{method} on substituted corpus",
                   on_step=checkpoint)
        del tuned
    return keys
