"""Export a trained cell: its adapter as a PEFT folder (the default), the merged model as
safetensors with tokenizer and chat template, or one GGUF file (ship/gguf.py).

The exported chat template is the one evaluation rendered through, with the system
prompt the model was trained and scored with as its default: a server that sends only
the user's turn renders the prompt that was measured, not the base model's default
system prompt. Template lint (eval/template_lint.py) checks that before anything is written.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

from tunelab import TunelabError
from tunelab.backends.local_model import PACKAGED, find_gguf, load_model
from tunelab.backends.prompt import PLAIN_ROLES, messages
from tunelab.core.config import MethodConfig, ModelConfig, RunConfig, from_dict
from tunelab.core.store import Store
from tunelab.data.readers import Example
from tunelab.decide.arms import run_info
from tunelab.eval.template_lint import check_export
from tunelab.methods import get_spec
from tunelab.methods.base import instruction
from tunelab.methods.stored import from_stored
from tunelab.tasks import get_task
from tunelab.tasks.base import Task

FORMATS = ("adapter", "merged", "gguf")


@dataclass
class Source:
    """A finished trained cell of a store, with what it takes to rebuild and re-score it."""

    store: Store
    run: dict
    cfg: RunConfig
    method: MethodConfig
    model_cfg: ModelConfig
    task: Task
    artifact: Path

    @property
    def system(self) -> str:
        """The system prompt the cell was trained and evaluated with (fine_tune's)."""
        return instruction(SimpleNamespace(method=self.method, task=self.task, settings=None), "short")

    @functools.cached_property
    def test(self) -> list[Example]:
        """The task's test split, as the cell was scored on it."""
        return self.task.load().test

    def messages(self, ex: Example) -> list[dict]:
        return messages(self.system, self.task.turns(ex))


def load_source(store_path: str | Path, run_id: str) -> Source:
    store = Store(store_path, create=False)
    run = store.run(run_id)
    if run["status"] != "done":
        raise TunelabError(f"run {run['id']}: status {run['status']}; only finished runs export")
    stored = json.loads(run["config"] or "{}")
    cell = stored.pop("cell", {})
    method = from_stored(cell.get("method") or {"name": run["method"]})
    saved = get_spec(method.name).saved  # MethodSpec.saved: what its cell saved, if anything
    if saved is None:
        raise TunelabError(f"run {run['id']}: method {method.name} trains no weights; nothing to export")
    if method.stages:
        raise TunelabError(f"run {run['id']}: a staged cell's adapter sits on a stage-trained base "
                           "that is not saved; it cannot be exported")
    cfg = from_dict(RunConfig, stored, "stored config")
    model_cfg = from_dict(ModelConfig, cell["model"], "stored model") if "model" in cell else cfg.model
    # the device is where this machine runs it, not part of what was trained: the export
    # and its re-scoring run on this machine's own (auto), whatever the training one had
    model_cfg = replace(model_cfg, device="auto")
    artifact = find_artifact(Path(store_path), run, cfg, saved)
    return Source(store, run, cfg, method, model_cfg, get_task(cfg.task), artifact)


def find_artifact(store_path: Path, run: dict, cfg: RunConfig, kind: str) -> Path:
    """The cell's saved weights. The stored path is relative to where the grid ran, so it is
    also tried relative to the folder the store's own stored path implies (a store and its
    runs folder copied elsewhere together still export)."""
    artifact = run_info(run).artifact
    default = Path(cfg.out_dir) / "cells" / run["id"] / kind
    stored = Path(artifact) if artifact else default
    tries = [stored]
    if not stored.is_absolute():
        depth = len(Path(cfg.store).parts)
        root = store_path.resolve().parents[depth - 1] if depth <= len(store_path.resolve().parts) else None
        if root is not None:
            tries.append(root / stored)
    for p in tries:
        if p.exists():
            return p
    raise TunelabError(f"run {run['id']}: its saved {kind} is not at {' or '.join(map(str, tries))} "
                       "(was it trained with train.save: true?)")


def trained_model(src: Source):
    """(model, tokenizer) with the cell's training applied, merged, in eval mode."""
    name, spec = src.method.name, get_spec(src.method.name)
    if not spec.mergeable:
        raise TunelabError(f"run {src.run['id']}: {name} cannot be merged into the weights "
                           "(a soft prompt is not a weight change); export --format adapter")
    if spec.saved == "model":  # whole weights (full), not an adapter
        return load_model(ModelConfig(name=str(src.artifact), dtype=src.model_cfg.dtype,
                                      device=src.model_cfg.device))
    from peft import PeftModel

    base, tok = load_model(src.model_cfg)
    model = PeftModel.from_pretrained(base, src.artifact).merge_and_unload()
    model.eval()
    return model, tok


def plain_template(tok) -> str:
    """prompt.py's plain format (models without a chat template) as a Jinja chat template.
    Literal text sits in {{ }}: chat templates render with trim_blocks, which would eat a
    newline written after a tag."""
    roles, reply = json.dumps(PLAIN_ROLES), json.dumps(PLAIN_ROLES["assistant"] + ":\n")
    return ("{{ bos_token }}{% for m in messages %}{{ " + roles + ".get(m['role'], m['role']) + "
            "':\\n' + m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
            "{{ '\\n\\n' }}{% endfor %}{% if add_generation_prompt %}{{ " + reply + " }}{% endif %}")


def shipped_template(tok, system: str) -> str:
    """The evaluation's chat template, defaulting the system prompt to the trained one."""
    base = getattr(tok, "chat_template", None) or plain_template(tok)
    if not system:
        return base
    # json.dumps with ASCII escapes is a valid Jinja string literal
    default = ("{%- if not messages or messages[0]['role'] != 'system' %}{%- set messages = "
               "[{'role': 'system', 'content': " + json.dumps(system) + "}] + messages %}{%- endif %}")
    return default + base


def lint(src: Source, tok, exported) -> None:
    """Template lint of the exported tokenizer against training and the stored evaluation."""
    test = src.test
    evaluated = run_info(src.run).prompts or []
    for i, ex in enumerate(test[:max(2, len(evaluated))]):
        check_export(tok, exported, src.messages(ex), evaluated[i] if i < len(evaluated) else None,
                     ex.target, f"run {src.run['id'][:12]}, test example {ex.id}")


def _export_tokenizer(tok, src: Source, dest: Path):
    """Save a copy of the tokenizer with the shipped template into dest, lint it against
    the tokenizer training used, and return the copy as a reader of dest loads it."""
    from transformers import AutoTokenizer

    shipped = copy.deepcopy(tok)
    shipped.chat_template = shipped_template(tok, src.system)
    shipped.save_pretrained(dest)
    exported = AutoTokenizer.from_pretrained(dest)
    lint(src, tok, exported)
    return exported


def export(src: Source, fmt: str, out: Path, gguf_type: str = "f16") -> Path:
    """Write the cell in `fmt` under `out`; returns the artifact's path (folder or .gguf)."""
    if fmt not in FORMATS:
        raise TunelabError(f"Unknown --format '{fmt}'. Available: {', '.join(FORMATS)}")
    if fmt == "gguf":
        from tunelab.ship.gguf import TYPES

        if gguf_type not in TYPES:
            raise TunelabError(f"Unknown --gguf-type '{gguf_type}'. Available: {', '.join(TYPES)}")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "adapter":
        if src.method.name == "full":
            raise TunelabError(f"run {src.run['id']}: full fine-tuning has no adapter; "
                               "export --format merged")
        dest = out / "adapter"
        shutil.copytree(src.artifact, dest, dirs_exist_ok=True)
        return dest
    model, tok = trained_model(src)
    if fmt == "merged":
        dest = out / "merged"
        _export_tokenizer(tok, src, dest)
        model.save_pretrained(dest, safe_serialization=True)
        return dest
    from tunelab.ship import gguf as ggufout

    with tempfile.TemporaryDirectory() as tmp:
        exported = _export_tokenizer(tok, src, Path(tmp))
        name = src.model_cfg.name
        pre = ggufout.source_pre(find_gguf(name)) if name in PACKAGED else "default"
        dest = out / f"{src.run['id'][:16]}-{gguf_type}.gguf"
        return ggufout.write(model, exported, Path(tmp), dest, gguf_type, exported.chat_template,
                             name=f"tunelab {src.run['label']} n={src.run['n_train']}", pre=pre)
