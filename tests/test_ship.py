"""tunelab export: merged and GGUF round trips on the tiny model, the "as shipped" rows,
template lint, and the config switch."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import viggo_rows, write_config, write_csv
from tunelab.backends.local_model import load_model
from tunelab.cli.main import app
from tunelab.core.config import ModelConfig

runner = CliRunner()
METHODS = "  - {name: lora, train_sizes: [8]}\n  - {name: prompt_tuning, train_sizes: [8]}\n"


@pytest.fixture(scope="module")
def cells(woken_model_dir, tmp_path_factory):
    """A store with a finished LoRA and prompt-tuning cell of the woken tiny model."""
    d = tmp_path_factory.mktemp("ship")
    data = d / "viggo"
    data.mkdir()
    for split, n in (("train", 24), ("validation", 6), ("test", 6)):
        write_csv(data / f"{split}.csv", viggo_rows(split, n))
    store = d / "s.db"
    cfg = write_config(d / "c.yaml", woken_model_dir, data, store, METHODS)
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    ids = dict(sqlite3.connect(store).execute("SELECT method, id FROM runs").fetchall())
    return store, ids, cfg


def _export(store, run_id, out, *args):
    return runner.invoke(app, ["export", run_id, "--store", str(store), "-o", str(out), *args])


def _preds(store, run_id) -> list[str]:
    con = sqlite3.connect(store)
    return [p for (p,) in con.execute("SELECT prediction FROM predictions WHERE run_id=? ORDER BY idx",
                                      (run_id,))]


def _shipped(store, run_id, label) -> dict:
    con = sqlite3.connect(store)
    (info,) = con.execute("SELECT info FROM runs WHERE id=?", (f"export:{label}:{run_id}",)).fetchone()
    return json.loads(info)


def test_merged_export_reproduces_the_stored_predictions(cells, tmp_path):
    store, ids, _ = cells
    r = _export(store, ids["lora"], tmp_path, "--format", "merged", "--verify")
    assert r.exit_code == 0, r.output
    assert "predictions identical to the stored ones: 6/6" in r.output
    lora = _preds(store, ids["lora"])
    assert _preds(store, f"export:merged:{ids['lora']}") == lora and len(set(lora)) > 1
    assert _shipped(store, ids["lora"], "merged")["same_predictions"] == 6
    merged = tmp_path / "merged"
    assert (merged / "model.safetensors").exists()
    # the template defaults to the trained system prompt: a server sending only the user
    # turn renders the prompt that was measured
    tok = load_model(ModelConfig(name=str(merged)))[1]
    user = [{"role": "user", "content": "hi"}]
    assert tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True).startswith(
        "<|im_start|>system\nConvert the sentence into a ViGGO meaning representation.")


def test_gguf_round_trip_reads_back_the_merged_weights(cells, tmp_path):
    """f32 holds the merged weights exactly, f16 holds them rounded to f16: tensor names,
    q/k permutation and tied head all undone by tunelab's GGUF loading path."""
    from tunelab.ship.export import load_source, trained_model

    store, ids, _ = cells
    model = trained_model(load_source(store, ids["lora"]))[0]
    want = model.state_dict()
    for kind, cast in (("f32", torch.float32), ("f16", torch.float16)):
        r = _export(store, ids["lora"], tmp_path, "--format", "gguf", "--gguf-type", kind)
        assert r.exit_code == 0, r.output
        got = load_model(ModelConfig(name=str(next(tmp_path.glob(f"*-{kind}.gguf")))))[0].state_dict()
        assert set(got) == set(want)
        for name, t in want.items():
            stored = t.to(cast).float() if t.dim() > 1 else t  # norms stay F32, as in llama.cpp
            assert torch.equal(got[name], stored), (kind, name)


def test_gguf_f16_gives_the_merged_models_predictions(cells, tmp_path):
    store, ids, _ = cells
    r = _export(store, ids["lora"], tmp_path, "--format", "gguf", "--gguf-type", "f16", "--verify")
    assert r.exit_code == 0, r.output
    assert _preds(store, f"export:gguf-f16:{ids['lora']}") == _preds(store, ids["lora"])
    info = _shipped(store, ids["lora"], "gguf-f16")
    assert info["same_predictions"] == 6 and info["path"].endswith("-f16.gguf")
    assert info["differences"] == [] and info["near_ties"] == 0
    # the GGUF carries the tokenizer and the shipped chat template
    tok = load_model(ModelConfig(name=info["path"]))[1]
    assert tok.eos_token == "<|im_end|>" and "ViGGO meaning representation" in tok.chat_template


def test_q8_0_runs_and_the_report_shows_its_paired_difference(cells, tmp_path):
    store, ids, _ = cells
    r = _export(store, ids["lora"], tmp_path, "--format", "gguf", "--gguf-type", "q8_0", "--verify")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(store), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    row = next(line for line in md.splitlines() if "| gguf-q8_0 |" in line)
    info = _shipped(store, ids["lora"], "gguf-q8_0")
    same = info["same_predictions"]
    # every changed prediction says where it left the stored answer, and by how much
    assert len(info["differences"]) == 6 - same and all(d["gap"] >= 0 for d in info["differences"])
    assert f"| {same}/6 |" in row, row
    assert "## As shipped" in md
    # exports are not arms of their own: the results table does not list them
    table = md.split("## Results")[1].split("\n## ")[0]
    assert "as shipped" not in table and table.count("| lora") == 1, table


def test_prompt_tuning_cannot_merge_one_line_error_its_adapter_ships(cells, tmp_path):
    store, ids, _ = cells
    r = _export(store, ids["prompt_tuning"], tmp_path, "--format", "gguf")
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "cannot be merged" in r.output, r.output
    # its adapter (the soft prompt) ships, and re-scores as trained
    r = _export(store, ids["prompt_tuning"], tmp_path, "--format", "adapter", "--verify")
    assert r.exit_code == 0 and (tmp_path / "adapter" / "adapter_config.json").exists(), r.output
    assert _preds(store, f"export:adapter:{ids['prompt_tuning']}") == _preds(store, ids["prompt_tuning"])


def test_template_lint_names_the_first_difference(cells, tmp_path, monkeypatch):
    """An exported template with another system prompt is refused before anything ships."""
    import tunelab.ship.export as ship

    real = ship.shipped_template
    monkeypatch.setattr(ship, "shipped_template",
                        lambda tok, system: real(tok, "You are a helpful assistant."))
    store, ids, _ = cells
    r = _export(store, ids["lora"], tmp_path, "--format", "merged")
    assert r.exit_code != 0
    lines = [x for x in r.output.splitlines() if "template lint" in x]  # stderr also holds progress bars
    assert len(lines) == 1 and r.output.strip().endswith(lines[0]), r.output
    line = lines[0]
    assert "template lint" in line and "training and exported (no system turn) prompts differ" in line
    assert "'Convert the sentence" in line and "'You are a helpful assistant" in line, line
    assert not (tmp_path / "merged" / "model.safetensors").exists()


def test_template_lint_before_evaluating_a_trained_cell(cells, woken_model_dir, tmp_path, monkeypatch):
    """Evaluation rendering another prompt than training fails the cell with the lint line."""
    import tunelab.methods.lora as lora

    real = lora.chat_predictor
    monkeypatch.setattr(lora, "chat_predictor",
                        lambda ctx, model, system, **kw: real(ctx, model, system + " Be brief.", **kw))
    _, _, cfg = cells
    one = write_config(tmp_path / "c.yaml", woken_model_dir, cfg.parent / "viggo", tmp_path / "s.db",
                       "  - {name: lora, train_sizes: [8]}\n")
    r = runner.invoke(app, ["run", str(one)])
    assert r.exit_code != 0
    assert "template lint: example" in r.output and "training and evaluation prompts differ" in r.output


def test_config_switch_verifies_the_best_tuned_arm(cells):
    store, ids, cfg = cells
    con = sqlite3.connect(store)
    with con:
        con.execute("DELETE FROM runs WHERE method LIKE 'export:%'")  # earlier tests' exports
    cfg.write_text(cfg.read_text() + "export: {verify: [adapter, gguf-q8_0]}\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    best = max(("lora", "prompt_tuning"), key=lambda m: con.execute(
        "SELECT value FROM metrics WHERE run_id=? AND name='slot_f1'", (ids[m],)).fetchone()[0])
    exports = sorted(m for (m, i) in con.execute("SELECT method, id FROM runs WHERE method LIKE 'export:%'")
                     if i.endswith(ids[best]))
    # a soft prompt ships only as its adapter
    assert exports == (["export:adapter", "export:gguf-q8_0"] if best == "lora" else ["export:adapter"])
    assert "## As shipped" in (cfg.parent / "report" / "report.md").read_text()


def test_plain_format_ships_as_a_chat_template_rendering_the_same_text(tiny_model_dir):
    """A model without a chat template is prompted in prompt.py's plain format; its export
    carries that format as a Jinja template (with the trained system prompt as default)."""
    from transformers import AutoTokenizer

    from tunelab.backends.prompt import messages, render
    from tunelab.ship.export import shipped_template

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = None
    msgs = messages("Answer briefly.", "name[Portal]", [("q1", "a1")])
    shipped = shipped_template(tok, "Answer briefly.")
    answered = [*msgs, {"role": "assistant", "content": "x"}]
    # (sent, what the evaluation rendered, generation prompt): a server that sends no system
    # turn gets the trained system prompt by default
    for m, full, gen in ((msgs, msgs, True), (msgs[1:], msgs, True), (answered, answered, False)):
        want = render(tok, full, gen)
        got = tok.apply_chat_template(m, chat_template=shipped, tokenize=False, add_generation_prompt=gen)
        assert got == want, (got, want)


def test_divergence_finds_where_an_answer_leaves_the_models_greedy_path(woken_model_dir):
    """verify.divergence: none along the model's own greedy answer; an answer whose third token
    is the model's second choice parts there, by the model's top-1 minus top-2 logit gap."""
    from tunelab.ship.verify import NEAR_TIE, divergence

    model, tok = load_model(ModelConfig(name=str(woken_model_dir)))
    prompt = "Describe the game Portal 2."
    p = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(p, max_new_tokens=6, do_sample=False, pad_token_id=0)[0, p.shape[1]:]
        logits = model(torch.cat([p[0], out[:2]]).unsqueeze(0)).logits[0, -1]
    greedy = tok.decode(out)
    d = divergence(model, tok, prompt, greedy)
    assert d == {} or (d["token"] == len(out) and d["stored"] is None)  # this model never stops
    top2 = logits.topk(2).indices.tolist()
    assert top2[0] == int(out[2])
    swapped = tok.decode(out.tolist()[:2] + [top2[1]]) + "zzz"
    d = divergence(model, tok, prompt, swapped)
    gap = float(logits[top2[0]] - logits[top2[1]])
    assert d["token"] == 2 and d["gap"] == pytest.approx(gap, abs=1e-4) and gap > 0, d
    assert d["near_tie"] == (gap < NEAR_TIE) and d["chose"] == tok.decode([top2[0]])
    # an answer the model would not produce in its top tokens is no near-tie
    d = divergence(model, tok, prompt, "\x07\x07")
    assert d["token"] == 0 and d["gap"] is None and not d["near_tie"]
