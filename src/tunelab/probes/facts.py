"""`tunelab probe facts`: can fine-tuning teach a model facts it cannot already know?

Arms, all asked the same questions with the same abstain-allowing instruction and scored
by the same normalized answer match: closed-book; fine-tuned on the fact sentences (LoRA
and full, measured at several epoch counts of one run); fine-tuned on the sentences plus
the model's own paraphrases of them; all facts in context; RAG over the fact sentences;
RAG on the LoRA-tuned model. Per arm: accuracy on near-wording, paraphrase and reversal
questions, the near-minus-far gap per fact, hallucination on unanswerable questions (the
abstain rate, and the model's confidence in its own answers: probes.confidence), and, for
fine-tuned arms, forgetting (general questions the base model got right, and perplexity of
held-out general text, paired against the base model). With `replay` > 0, each fine-tune
is also trained with general instruction examples mixed in (probes.replay), to measure
what replay does to forgetting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tunelab import TunelabError
from tunelab.backends.generate import generate
from tunelab.backends.local_model import cache_root
from tunelab.backends.prompt import messages, render
from tunelab.core.cache import cached_json, digest
from tunelab.core.config import MethodConfig, RunConfig, TrainConfig
from tunelab.data.readers import read_records
from tunelab.methods import method_train
from tunelab.methods.finetune import stats_info
from tunelab.probes import Result, save, trainable
from tunelab.probes import replay as replay_data
from tunelab.probes.confidence import by_set, confidence_metrics
from tunelab.probes.kb import Fact, Question, read_kb, read_questions
from tunelab.probes.measure import answer_logprob, block_nll, perplexity_ci, sample
from tunelab.tasks.metrics import bootstrap_ci, paired_bootstrap
from tunelab.tasks.metrics_text import abstained, answer_match
from tunelab.train.loop import plain_text, train_loop

DATA = Path(__file__).parent / "data"
SYSTEM = ("Answer the question in a few words. If you do not know the answer, "
          "reply exactly: I don't know.")
REWRITE = "Rewrite the sentence in different words. Keep every name and number exactly as written."


@dataclass
class FactsSettings:
    kb: str = str(DATA / "facts_kb.jsonl")
    unanswerable: str = str(DATA / "unanswerable.jsonl")
    general: str = str(DATA / "general_qa.jsonl")
    general_text: str = ""
    """Held-out general text for perplexity (JSON/JSONL with `output` or `text`); default:
    $TUNELAB_DATA_DIR/alpaca/alpaca_5000.json (else the public Alpaca set)."""
    model: str = "smollm2-135m"
    methods: list[str] = field(default_factory=lambda: ["lora", "full"])
    epochs: list[int] = field(default_factory=lambda: [2, 5, 10])
    """Checkpoints (passes over the fact sentences) of one training run."""
    lr: float | None = None
    """Peak lr of every method; default: each method's own, as a grid cell trains it (its
    spec's lr: lora 2e-3, full 5e-5)."""
    batch_size: int = 8
    augment: int = 2
    """Model-written paraphrases per fact for the augmented arm (0: no such arm)."""
    fact_counts: list[int] = field(default_factory=lambda: [10, 20])
    """Learnability vs number of facts: LoRA on the first N facts (at the last epoch count)."""
    rag_k: int = 3
    baselines: bool = True
    """The in-context, RAG and RAG + LoRA arms (False: closed-book and fine-tuned arms only,
    a cheaper run when only fine-tuning's gains and costs are wanted)."""
    general_n: int = 60
    text_n: int = 40
    max_new_tokens: int = 24
    replay: float = 0.0
    """Share of general instruction examples in the training mix of an extra arm per
    fine-tune, "<method> + replay", at the last epoch count (0: no such arm)."""
    replay_data: str = ""
    """Where they are drawn from; default $TUNELAB_DATA_DIR/alpaca/alpaca_5000.json (else the
    public Alpaca set)."""
    seed: int = 0


def general_texts(s: FactsSettings) -> list[str]:
    path = Path(s.general_text or replay_data.default_path())
    if not path.is_file():
        raise TunelabError(f"{path}: general text for the forgetting check not found "
                           "(give --general-text: JSON/JSONL records with `output` or `text`)")
    texts = [str(r.get("output") or r.get("text") or "") for _, r in read_records(path)]
    texts = [t for t in texts if len(t) > 300]
    random.Random(s.seed).shuffle(texts)
    return texts[: s.text_n]


class Asker:
    """Asks questions of a model with a per-question system prompt and scores answers."""

    def __init__(self, tok, s: FactsSettings):
        self.tok, self.s = tok, s

    def ask(self, model, questions: list[Question], system, label: str,
            confidence: bool = True) -> list[dict]:
        """Generate, score, and (with `confidence`) add each answer's mean token log-prob."""
        prompts = [render(self.tok, messages(system(q), q.q)) for q in questions]
        gens = generate(model, self.tok, prompts, self.s.max_new_tokens, batch_size=32, label=label)
        logp = (answer_logprob(model, self.tok, prompts, [g.text for g in gens], label=f"{label} confidence")
                if confidence else [None] * len(gens))
        out = []
        for q, g, lp in zip(questions, gens, logp, strict=True):
            scores = {"abstain": abstained(g.text)}
            if lp is not None:
                scores["logprob"] = lp
            if q.answers:
                scores["correct"] = answer_match(g.text, q.ref)
            out.append({"example_id": q.id, "input": q.q, "target": q.ref, "prediction": g.text,
                        "scores": scores, "kind": q.kind, "fact": q.fact})
        return out


def metrics_of(items: list[dict], base: dict | None) -> tuple[dict, dict]:
    """Figures of one arm from its scored items (and the base model's, for forgetting)."""
    m = {}
    for kind in ("near", "paraphrase", "reversal", "general"):
        vals = [i["scores"]["correct"] for i in items if i["kind"] == kind]
        if vals:
            m[f"acc_{kind}"] = bootstrap_ci(vals)
    per_fact: dict[str, dict[str, list[float]]] = {}
    for i in items:
        if i["kind"] in ("near", "paraphrase", "reversal"):
            side = "near" if i["kind"] == "near" else "far"
            per_fact.setdefault(i["fact"], {"near": [], "far": []})[side].append(i["scores"]["correct"])
    gaps = [np.mean(v["near"]) - np.mean(v["far"]) for v in per_fact.values() if v["near"] and v["far"]]
    if gaps:
        m["near_minus_far"] = bootstrap_ci(gaps)
    unans = [i["scores"]["abstain"] for i in items if i["kind"] == "unanswerable"]
    if unans:
        m["hallucination"] = bootstrap_ci([a == 0 for a in unans])
    kb = [i["scores"]["abstain"] for i in items if i["kind"] in ("near", "paraphrase", "reversal")]
    if kb:
        m["abstain_on_kb"] = bootstrap_ci(kb)
    nll = [i["scores"]["nll"] for i in items if i["kind"] == "text"]
    if nll:
        m["general_perplexity"] = perplexity_ci(nll)
        if base is not None:
            m["change_general_nll"] = paired_bootstrap(nll, base["nll"])
    higher = {k: k.startswith("acc_") or k == "near_minus_far" for k in m}
    conf, conf_higher = confidence_metrics(items, base and base.get("confidence"))
    return {**m, **conf}, {**higher, **conf_higher}


class FactsProbe:
    def __init__(self, s: FactsSettings, model, tok, store):
        self.s, self.model, self.tok, self.store = s, model, tok, store
        self.facts = read_kb(s.kb)
        self.kb_qs = [q for f in self.facts for q in f.questions]
        self.unans = read_questions(s.unanswerable, answerable=False)
        self.general = read_questions(s.general, answerable=True)
        self.texts = general_texts(s)
        self.text_ids = [tok(t, add_special_tokens=False)["input_ids"][:128] for t in self.texts]
        self.asker = Asker(tok, s)
        self.keys: list[str] = []
        self.base: dict | None = None
        self.replay_ids: list[str] = []

    def text_items(self, model) -> list[dict]:
        nll = block_nll(model, self.text_ids, label="general text")
        return [{"example_id": f"text/{i}", "input": t[:200], "target": "", "prediction": "",
                 "scores": {"nll": x}, "kind": "text", "fact": ""}
                for i, (t, x) in enumerate(zip(self.texts, nll, strict=True))]

    def record(self, arm: str, items: list[dict], info: dict, n_train: int = 0) -> None:
        m, higher = metrics_of(items, self.base)
        rows = [{k: v for k, v in i.items() if k not in ("kind", "fact")} for i in items]
        for r, i in zip(rows, items, strict=True):
            r["scores"] = {**r["scores"], "kind": i["kind"]}
        self.keys.append(save(self.store, "facts", self.s, Result(arm, m, higher, rows, info, n_train)))

    def evaluate(self, arm: str, model, system, info: dict, weights_changed: bool,
                 questions: list[Question] | None = None, n_train: int = 0,
                 confidence: bool = True) -> list[dict]:
        qs = (questions or self.kb_qs) + self.unans
        if weights_changed:
            qs = qs + self.general_subset
        items = self.asker.ask(model, qs, system, arm, confidence)
        if weights_changed:
            items += self.text_items(model)
        self.record(arm, items, info, n_train)
        return items

    def run(self) -> list[str]:
        s = self.s
        # Drawn first, so a problem with the replay data fails before an hour of other arms.
        extra = self.replay_examples(len(self.facts)) if s.replay else []
        base_items = self.asker.ask(self.model, self.kb_qs + self.unans + self.general,
                                    lambda q: SYSTEM, "closed-book")
        right = {i["example_id"] for i in base_items if i["kind"] == "general" and i["scores"]["correct"]}
        self.general_subset = [q for q in self.general if q.id in right][: s.general_n]
        keep = {q.id for q in self.general_subset} | {q.id for q in self.kb_qs + self.unans}
        text = self.text_items(self.model)
        kept = [i for i in base_items if i["example_id"] in keep]
        self.base = {"nll": [i["scores"]["nll"] for i in text], "confidence": by_set(kept)}
        self.record("closed-book", kept + text,
                    {"general_asked": len(self.general), "general_base_right": len(right)})
        rag = self.rag_system() if s.baselines else None
        all_facts = "\n".join(f"- {f.text}" for f in self.facts)
        # No confidence here: scoring answers after all facts costs a full forward over the
        # long prompt per question (generation shares its KV cache), for an arm whose
        # weights do not change.
        if rag is not None:
            self.evaluate("in-context", self.model, lambda q: f"{SYSTEM}\n\nFacts:\n{all_facts}",
                          {"prompt_facts": len(self.facts)}, False, confidence=False)
            self.evaluate("rag", self.model, rag, {"k": s.rag_k}, False)
        sentences = [f.text for f in self.facts]
        for method in s.methods:
            last = self.fine_tune(method, sentences, method, s.epochs)
            if method == "lora" and rag is not None:
                self.evaluate("rag + lora", last, rag, {"k": s.rag_k}, False)
            del last
        if s.augment:
            aug = sentences + [p for f in self.facts for p in self.paraphrases(f)]
            self.fine_tune("lora", aug, "lora + paraphrases", [max(s.epochs)])
        for n in s.fact_counts:
            if n < len(self.facts):
                subset = self.facts[:n]
                qs = [q for f in subset for q in f.questions]
                self.fine_tune("lora", [f.text for f in subset], f"lora {n} facts", [max(s.epochs)], qs)
        if extra:
            for method in s.methods:
                self.fine_tune(method, sentences, f"{method} + replay", [max(s.epochs)], extra=extra)
        return self.keys

    def replay_examples(self, n_train: int) -> list:
        """General instruction examples for the replay arms, disjoint from the held-out
        texts and the general questions that measure forgetting."""
        s = self.s
        n = replay_data.replay_count(n_train, s.replay)
        recs = replay_data.draw(s.replay_data or replay_data.default_path(), n, s.seed,
                                set(self.texts), self.general)
        self.replay_ids = [r["id"] for r in recs]
        return replay_data.encoded(self.tok, recs)

    def rag_system(self):
        from tunelab.backends.retrieve import Index

        index = Index([f.id for f in self.facts], [f.text for f in self.facts])
        rows = dict(zip([q.id for q in self.kb_qs + self.unans],
                        index.search([q.q for q in self.kb_qs + self.unans], self.s.rag_k), strict=True))

        def system(q: Question) -> str:
            facts = "\n".join(f"- {index.texts[r]}" for r in rows[q.id])
            return f"{SYSTEM}\n\nFacts:\n{facts}"

        return system

    def fine_tune(self, method: str, texts: list[str], name: str, epochs: list[int],
                  questions: list[Question] | None = None, extra: list | None = None):
        """Train on `texts` as plain documents (plus `extra` encoded examples: replay);
        evaluate at each epoch count in `epochs` (passes over the whole mix)."""
        s, eos = self.s, self.tok.eos_token or ""
        data = [plain_text(self.tok(t + eos, add_special_tokens=False)["input_ids"], f"fact {i}")
                for i, t in enumerate(texts)] + list(extra or [])
        per_epoch = -(-len(data) // s.batch_size)
        # a grid cell's train settings for `method` (methods.method_train: its spec's lr), on
        # the probe's exact step count: it measures at checkpoints inside one run
        grid = method_train(RunConfig(train=TrainConfig(lr=s.lr)), MethodConfig(name=method))
        cfg = replace(grid, epochs=0, min_steps=per_epoch * max(epochs), batch_size=s.batch_size,
                      save=False)
        tuned = trainable(self.model, method, cfg, s.seed)

        def checkpoint(stats):
            if stats.steps % per_epoch == 0 and stats.steps // per_epoch in epochs:
                e = stats.steps // per_epoch
                info = {**stats_info(stats), "epochs": e, "train_texts": len(texts)}
                if extra:
                    info.update(replay=s.replay, replay_examples=len(extra), replay_ids=self.replay_ids)
                self.evaluate(f"{name} {e} ep", tuned, lambda q: SYSTEM, info,
                              questions is None, questions, len(texts))

        train_loop(tuned, self.tok, data, cfg, s.seed, label=name, on_step=checkpoint)
        return tuned

    def paraphrases(self, fact: Fact) -> list[str]:
        """The base model's own rewrites of a fact sentence that keep every answer, cached."""
        key = digest([self.s.model, fact.text, self.s.augment, self.s.seed])
        path = cache_root() / "paraphrases" / f"{key}.json"
        return cached_json(path, lambda: self._paraphrase(fact))

    def _paraphrase(self, fact: Fact) -> list[str]:
        prompt = render(self.tok, messages(REWRITE, fact.text))
        answers = {a.lower() for q in fact.questions for a in q.answers[:1]}
        kept = []
        for t in sample(self.model, self.tok, prompt, 3 * self.s.augment, 64, self.s.seed, 0.9):
            t = t.strip().split("\n")[0]
            if t and t != fact.text and all(a in t.lower() for a in answers) and t not in kept:
                kept.append(t)
        return kept[: self.s.augment]


def run(s: FactsSettings, model, tok, store) -> list[str]:
    return FactsProbe(s, model, tok, store).run()
