"""Re-score an exported artifact through the same evaluation, on the same test slice, and
store it beside the cell it came from: the report's "as shipped" rows.

The exported model is loaded the way a user would load it (merged: from_pretrained of the
folder; GGUF: tunelab's own GGUF path in backends/local_model.py; no network) and prompted through the
exported tokenizer's chat template. Its run is stored as kind "export" (method
"export:<format>"), so it never counts as an arm of its own; its predictions pair with the source cell's, test
example by test example.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from tunelab import TunelabError
from tunelab.backends.local_model import load_model
from tunelab.core.config import ModelConfig
from tunelab.core.store import Store
from tunelab.eval.evaluate import evaluate
from tunelab.eval.predictor import prompt_text
from tunelab.methods.base import chat_predictor
from tunelab.report.shipped_section import NEAR_TIE, PREFIX, key
from tunelab.ship.export import Source, export, load_source


def fmt_label(fmt: str, gguf_type: str) -> str:
    """merged, adapter, gguf-f16, gguf-q8_0 ..."""
    return f"gguf-{gguf_type}" if fmt == "gguf" else fmt


def load_artifact(src: Source, path: Path):
    """The exported artifact, loaded back as its user would."""
    if path.suffix == ".gguf":
        return load_model(ModelConfig(name=str(path), device=src.model_cfg.device))
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        base, tok = load_model(src.model_cfg)
        tuned = PeftModel.from_pretrained(base, path)
        if src.method.name == "prompt_tuning":  # virtual tokens go first, as in training
            from tunelab.methods.prompt_tuning import SoftPrompted

            model = SoftPrompted(tuned)
        else:
            model = tuned.merge_and_unload()
        model.eval()
        return model, tok
    return load_model(ModelConfig(name=str(path), dtype=src.model_cfg.dtype, device=src.model_cfg.device))


def divergence(model, tok, prompt: str, stored: str, max_new: int = 256, top_k: int = 20) -> dict:
    """Where the artifact leaves the stored answer. It follows its own greedy path while the
    decoded text stays a prefix of the stored answer (so a different split into tokens is not
    a difference); at the first token that would leave it, `token` is its index and `gap` is
    the artifact's logit of its choice minus that of the best of its top_k tokens that would
    have kept to the stored text (None when none would: not a near-tie). Past the stored
    answer's end, keeping to it means stopping (EOS or a newline). {} if it never leaves."""
    import torch

    from tunelab.backends.device import tensors

    make = tensors(model)  # on the device of the artifact's weights
    ids = make.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    gen: list[int] = []
    eos = tok.eos_token_id

    def keeps(t: int, done: str) -> bool:  # done: the text generated so far
        if len(done) >= len(stored):
            return t == eos or "\n" in tok.decode([t])
        text = tok.decode(gen + [t])
        return t != eos and len(text) > len(done) and stored.startswith(text)

    for i in range(max_new):
        with torch.no_grad():
            logits = model(ids).logits[0, -1].float()
        top, done = int(logits.argmax()), tok.decode(gen)
        if keeps(top, done):
            if top == eos or len(done) >= len(stored):
                return {}
            gen.append(top)
            ids = torch.cat([ids, make.tensor([[top]])], dim=1)
            continue
        ok = [int(t) for t in logits.topk(top_k).indices if keeps(int(t), done)]
        best = max(ok, key=lambda t: float(logits[t])) if ok else None
        gap = float(logits[top] - logits[best]) if best is not None else None
        return {"token": i, "gap": gap, "near_tie": gap is not None and gap < NEAR_TIE,
                "chose": tok.decode([top]), "stored": tok.decode([best]) if best is not None else None}
    return {}


@dataclass
class Verified:
    key: str
    label: str
    same: int
    """Predictions identical to the stored ones."""
    n: int
    metrics: dict[str, tuple[float, float, float]]
    stored: dict[str, float]
    """The source cell's stored metric means."""
    near_ties: int = 0
    """Changed predictions that parted from the stored answer at a near-tie (NEAR_TIE)."""


def verify(src: Source, path: Path, label: str, export_s: float = 0.0) -> Verified:
    """Score the artifact at `path` on the cell's test slice and store it (one transaction)."""
    stored = src.store.predictions(src.run["id"])
    test = src.test
    if [p["example_id"] for p in stored] != [e.id for e in test[:len(stored)]] or len(stored) != len(test):
        raise TunelabError(f"run {src.run['id']}: its stored test slice is not the task's test split "
                           "now (data changed?); cannot re-score the export on the same examples")
    t0 = time.perf_counter()
    model, tok = load_artifact(src, path)
    load_s = time.perf_counter() - t0
    pred = chat_predictor(SimpleNamespace(tok=tok, task=src.task), model, src.system)
    res = evaluate(pred, src.task, test, src.cfg.eval, label=f"eval as shipped ({label})")
    changed = [(r, p) for r, p in zip(res.rows, stored, strict=True) if r["prediction"] != p["prediction"]]
    by_id = {e.id: e for e in test}
    differences = [{"example": r["example_id"], **divergence(
        model, tok, prompt_text(pred, by_id[r["example_id"]]), p["prediction"])} for r, p in changed]
    same = len(res.rows) - len(changed)
    k = key(src.run["id"], label)
    info = {"export_of": src.run["id"], "format": label, "path": str(path), "prompts": res.prompts,
            "same_predictions": same, "differences": differences,
            "near_ties": sum(bool(d.get("near_tie")) for d in differences),
            "export_seconds": export_s, "load_seconds": load_s, "bytes": _size(path)}
    n = len(res.rows)
    fields = {"info": info, "eval_seconds": res.seconds, "train_seconds": 0.0,
              "prompt_tokens_mean": sum(r["prompt_tokens"] for r in res.rows) / n,
              "gen_tokens_mean": sum(r["gen_tokens"] for r in res.rows) / n}
    run = src.run
    config = {**json.loads(run["config"] or "{}"), "export": {"of": run["id"], "format": label,
                                                               "path": str(path)}}
    higher = {name: m.higher_is_better for name, m in src.task.all_metrics.items()}
    src.store.record("export", k, {
        "task": run["task"], "model": run["model"], "method": PREFIX + label,
        "label": f"{run['label']} as shipped ({label})", "train_size": run["train_size"],
        "n_train": run["n_train"], "n_test": n, "seed": run["seed"], "config": config,
        "git_commit": run["git_commit"], "versions": run["versions"], **fields,
    }, res.metrics, higher, res.rows)
    old = {name: m["value"] for name, m in src.store.metrics(run["id"]).items()}
    return Verified(k, label, same, n, res.metrics, old, info["near_ties"])


def _size(path: Path) -> int:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files)


def export_and_verify(store: str | Path, run_id: str, fmt: str, out: Path,
                      gguf_type: str = "f16", check: bool = True) -> tuple[Path, Verified | None]:
    src = load_source(store, run_id)
    t0 = time.perf_counter()
    path = export(src, fmt, out, gguf_type)
    export_s = time.perf_counter() - t0
    if not check:
        return path, None
    return path, verify(src, path, fmt_label(fmt, gguf_type), export_s)


def ship_best(cfg, keys: list[str]) -> list[Verified]:
    """The config's `export: {verify: [...]}`: export the best fine-tuned arm (primary
    metric mean; its first seed) in each format and re-score it. An export already stored
    for that cell is kept (like finished cells, it is not redone)."""
    from tunelab.decide.arms import load_arms, primary_metric
    from tunelab.methods import METHODS

    store = Store(cfg.store)
    arms = load_arms(store, set(keys))
    tuned = [a for a in arms if a.trained and not a.cell.get("method", {}).get("stages")]
    if not cfg.export.verify or not tuned:
        return []
    metric = primary_metric(arms)
    better = max if arms[0].higher.get(metric, True) else min
    best = better(tuned, key=lambda a: a.ci[metric][0])
    run_id = best.runs[0]["id"]
    done = []
    for label in cfg.export.verify:
        fmt, _, gguf_type = label.partition("-")
        if fmt != "adapter" and not (best.method in METHODS and METHODS[best.method].mergeable):
            continue  # a soft prompt only ships as its adapter
        if store.status(key(run_id, label)) == "done":
            continue
        out = Path(cfg.out_dir) / "export" / run_id[:16]
        done.append(export_and_verify(cfg.store, run_id, fmt, out, gguf_type or "f16")[1])
    return done
