"""Probes of what fine-tuning can and cannot do: form versus facts.

`substitute` renames a character in a corpus and asks whether a fine-tuned model learned
the style, the new surface string, or the underlying fact; `facts` trains on invented
facts and scores near-wording, paraphrase and reversal questions, hallucination on
unanswerable ones and forgetting, against in-context and retrieval arms.

Each measured arm is stored like a run (kind "probe", task the probe's name, method
`probe:<name>`, one metrics row per figure with its CI, one prediction row per item) so
`tunelab ls/show` list it and the report is rebuilt from the store, never from memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tunelab.core.cache import digest
from tunelab.core.config import TrainConfig
from tunelab.core.store import Store

PROBES = {
    "substitute": "tunelab.probes.substitute",
    "facts": "tunelab.probes.facts",
}
"""Probe name -> module; each has run(settings) and its report section in probes.summary."""

FINE_TUNES = ("lora", "full")


@dataclass
class Result:
    """One measured arm of a probe."""

    arm: str
    metrics: dict[str, tuple[float, float, float]]
    higher: dict[str, bool]
    items: list[dict] = field(default_factory=list)
    """Per item: example_id, input, target, prediction, scores (numbers by name)."""
    info: dict = field(default_factory=dict)
    n_train: int = 0


def key(probe: str, arm: str, settings) -> str:
    """The arm's run id: a digest of the probe, the arm and every setting."""
    return digest([probe, arm, asdict(settings)])


def save(store: Store, probe: str, settings, res: Result) -> str:
    """Write one arm to the store in one transaction (replacing an earlier attempt)."""
    from tunelab.core.provenance import git_commit, versions
    from tunelab.run.compute_cell import peak_rss_mb

    k = key(probe, res.arm, settings)
    rows = [{"idx": i, "latency_s": None, "prompt_tokens": None, "gen_tokens": None, **r}
            for i, r in enumerate(res.items)]
    store.record("probe", k, {
        "task": probe, "method": f"probe:{probe}", "label": res.arm,
        "model": settings.model, "n_train": res.n_train, "train_size": res.n_train,
        "n_test": len(res.items), "seed": settings.seed,
        "config": {"probe": probe, "settings": asdict(settings)},
        "git_commit": git_commit(), "versions": versions(),
        "info": res.info, "train_seconds": res.info.get("train_seconds"),
        "trainable_params": res.info.get("trainable_params"), "peak_rss_mb": peak_rss_mb(),
    }, res.metrics, res.higher, rows)
    return k


def trainable(model, method: str, cfg: TrainConfig, seed: int):
    """A private trainable copy of `model`: LoRA adapters (peft) or every weight."""
    import torch
    from peft import get_peft_model  # here, not at the top: `tunelab report` imports this package

    from tunelab.methods.finetune import trainable_copy
    from tunelab.methods.lora import lora_config

    if method not in FINE_TUNES:
        raise ValueError(f"unknown fine-tune '{method}'")
    torch.manual_seed(seed)
    m = trainable_copy(model)
    if method == "full":
        for p in m.parameters():
            p.requires_grad_(True)
        return m
    return get_peft_model(m, lora_config(cfg))
