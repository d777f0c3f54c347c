"""Write a merged Llama-architecture model (SmolLM2 and kin) as one GGUF file with the
`gguf` package: the weights under llama.cpp's tensor names, and the tokenizer (GPT-2
byte-level BPE tokens, merges, token types, special ids, chat template) as metadata.

It follows llama.cpp's convert_hf_to_gguf.py for the llama architecture: q_proj and
k_proj rows are permuted into GGML's rotary layout (transformers' GGUF loader undoes
that when it reads the file back), 1-D tensors (norms) stay F32, and a tied output
head is left out (its absence is how readers know it is tied). Other architectures get
one clear error rather than a file that loads but computes something else.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np

from tunelab import TunelabError

TYPES = {"f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
         "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
         "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}
"""--gguf-type -> (tensor type of 2-D weights, file type recorded in the header)."""

ARCHS = {"llama": gguf.MODEL_ARCH.LLAMA}
"""transformers model_type -> GGUF architecture this writer maps."""

CONTROL, NORMAL = int(gguf.TokenType.CONTROL), int(gguf.TokenType.NORMAL)


def permute(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF's rotary half-split rows -> GGML's interleaved pairs.

    >>> permute(np.arange(4.0).reshape(4, 1), 1)[:, 0].tolist()
    [0.0, 2.0, 1.0, 3.0]
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _check(config) -> str:
    kind = config.model_type
    if kind not in ARCHS:
        raise TunelabError(f"gguf export: architecture '{kind}' is not mapped (only: "
                           f"{', '.join(ARCHS)}); export --format merged and convert it with "
                           "llama.cpp's convert_hf_to_gguf.py")
    rope = getattr(config, "rope_scaling", None) or {}
    scaled = rope.get("rope_type", rope.get("type", "default")) not in ("default", None)
    if scaled or getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise TunelabError(f"gguf export: this {kind} model uses rope scaling or biases, which "
                           "this writer does not map; export --format merged instead")
    return kind


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _hparams(w: gguf.GGUFWriter, config, name: str, ftype) -> None:
    heads = config.num_attention_heads
    w.add_name(name)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_rope_dimension_count(getattr(config, "head_dim", None) or config.hidden_size // heads)
    w.add_rope_freq_base(_rope_theta(config))
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_vocab_size(config.vocab_size)
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _tokenizer(w: gguf.GGUFWriter, tok, tok_dir: Path, chat_template: str | None, pre: str) -> None:
    """Byte-level BPE as llama.cpp's "gpt2" model. Added special tokens are CONTROL, so a
    reader keeps `<|im_end|>` whole instead of spelling it out byte by byte."""
    spec = json.loads((tok_dir / "tokenizer.json").read_text())
    model = spec["model"]
    if model.get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise TunelabError("gguf export: only byte-level BPE tokenizers are mapped (GPT-2 style, "
                           "as SmolLM2's); export --format merged instead")
    special = {a["id"] for a in spec.get("added_tokens", []) if a.get("special")}
    tokens = tok.convert_ids_to_tokens(list(range(len(tok))))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([CONTROL if i in special else NORMAL for i in range(len(tokens))])
    merges = gguf.SpecialVocab(tok_dir, load_merges=True).merges
    if not merges:
        raise TunelabError(f"gguf export: no BPE merges in {tok_dir / 'tokenizer.json'}")
    w.add_token_merges(merges)
    for kind in ("bos", "eos", "unk", "pad"):
        tid = getattr(tok, f"{kind}_token_id")
        if tid is not None:
            getattr(w, f"add_{kind}_token_id")(tid)
    w.add_add_bos_token(bool(getattr(tok, "add_bos_token", False)))
    w.add_add_eos_token(bool(getattr(tok, "add_eos_token", False)))
    if chat_template:
        w.add_chat_template(chat_template)


def _tensors(w: gguf.GGUFWriter, model, qtype) -> None:
    config = model.config
    names = gguf.get_tensor_name_map(ARCHS[config.model_type], config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, t in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        base, _, suffix = hf_name.rpartition(".")
        name = names.get_name(base)
        if name is None:
            raise TunelabError(f"gguf export: no GGUF name for tensor '{hf_name}'")
        data = t.detach().float().cpu().numpy()
        if base.endswith("q_proj"):
            data = permute(data, config.num_attention_heads)
        elif base.endswith("k_proj"):
            data = permute(data, config.num_attention_heads, config.num_key_value_heads)
        kind = qtype if data.ndim > 1 else gguf.GGMLQuantizationType.F32
        try:
            packed = gguf.quants.quantize(data, kind)
        except (ValueError, gguf.quants.QuantError) as e:
            raise TunelabError(f"gguf export: cannot store '{hf_name}' {tuple(data.shape)} "
                               f"as {kind.name}: {e}") from None
        w.add_tensor(f"{name}.{suffix}", packed, raw_dtype=kind)


def write(model, tok, tok_dir: Path, dest: Path, gguf_type: str, chat_template: str | None,
          name: str = "tunelab export", pre: str = "default") -> Path:
    """Write `model` (merged, in memory) and its tokenizer (saved in `tok_dir`) to `dest`.
    `pre` is llama.cpp's pre-tokenizer name (copied from a packaged GGUF where there is one)."""
    if gguf_type not in TYPES:
        raise TunelabError(f"Unknown --gguf-type '{gguf_type}'. Available: {', '.join(TYPES)}")
    kind = _check(model.config)
    qtype, ftype = TYPES[gguf_type]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[ARCHS[kind]])
    _hparams(w, model.config, name, ftype)
    _tokenizer(w, tok, tok_dir, chat_template, pre)
    _tensors(w, model, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(dest)  # a crash never leaves a half-written file under the real name
    return dest


def source_pre(gguf_path: Path) -> str:
    """The pre-tokenizer name a packaged GGUF declares (e.g. "smollm"), else "default"."""
    field = gguf.GGUFReader(gguf_path).fields.get("tokenizer.ggml.pre")
    return field.contents() if field is not None else "default"
