"""Fixtures: a tiny random Llama + BPE tokenizer built in seconds, and small data files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "src" / "tunelab" / "data" / "datasets"
"""The data shipped in the repository (the tests never read a mirror or the network)."""

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def viggo_rows(split: str, n: int) -> list[dict]:
    with open(DATA / "viggo" / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))[:n]


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["mr", "ref"])
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama with a BPE tokenizer trained on ViGGO text and a ChatML template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-model")
    texts = [r["ref"] for r in viggo_rows("train", 400)] + [r["mr"] for r in viggo_rows("train", 400)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>",
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def woken_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with large random weights: unlike tiny_model_dir (which writes one token
    forever, so every arm scores 0), its outputs and training losses depend on the training
    data, seed and init, so a test comparing them can tell two trainings apart."""
    import shutil

    import torch
    from transformers import LlamaForCausalLM

    out = tmp_path_factory.mktemp("woken-model")
    for f in tiny_model_dir.iterdir():  # tokenizer and chat template; weights written below
        shutil.copy(f, out / f.name)
    model = LlamaForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from tunelab.backends.local_model import load_model
    from tunelab.core.config import ModelConfig

    return load_model(ModelConfig(name=str(tiny_model_dir)))


@pytest.fixture
def viggo_dir(tmp_path) -> Path:
    """A small ViGGO folder: 24 train, 6 validation, 6 test rows of the real data."""
    d = tmp_path / "viggo"
    d.mkdir()
    write_csv(d / "train.csv", viggo_rows("train", 24))
    write_csv(d / "validation.csv", viggo_rows("validation", 6))
    write_csv(d / "test.csv", viggo_rows("test", 6))
    return d


def write_config(path: Path, model: Path, data: Path, store: Path, methods: str,
                 extra: str = "") -> Path:
    # min_budget 0: these tiny-model grids test storage, resume and reports, and the
    # 256-step floor made them 4x slower (test_stopping and test_keys test the floor)
    path.write_text(
        f"task: {{name: viggo, data_dir: '{data}', n_test: 6}}\n"
        f"model: {{name: '{model}'}}\n"
        f"train: {{batch_size: 4, min_steps: 2, min_budget: 0, lr: 0.001, save: true}}\n"
        f"eval: {{batch_size: 4, max_new_tokens: 12, bootstrap: 200}}\n"
        f"store: '{store}'\nout_dir: '{store.parent}'\n"
        f"methods:\n{methods}{extra}"
    )
    return path
