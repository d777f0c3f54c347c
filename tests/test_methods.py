"""Every alternative method end to end through the CLI on the tiny random model, plus
the properties the comparison relies on (no test-split peeking, index round trip, DPO
pairs only from wrong outputs, soft prompts in both training and generation)."""

from __future__ import annotations

import copy
import json
import sqlite3
from dataclasses import replace

import torch
from typer.testing import CliRunner

from tests.conftest import write_config
from tunelab.cli.main import app
from tunelab.core.config import TaskConfig, TrainConfig
from tunelab.data.readers import Example
from tunelab.eval.predictor import PredictorInfo

runner = CliRunner()

ALL = (
    "  - {name: dynamic_few_shot, k: 2, train_sizes: [8]}\n"
    "  - {name: rag, k: 2, train_sizes: [8], chunk_size: 120, chunk_overlap: 30}\n"
    "  - {name: prompt_search, k: 2, train_sizes: [8], budget: 3, dev_size: 4}\n"
    "  - {name: prompt_tuning, train_sizes: [8], virtual_tokens: 4, train: {lr: 0.03}}\n"
    "  - {name: dpo, train_sizes: [8], beta: 0.2}\n"
    "  - {name: lora, label: staged, train_sizes: [8], stages: [{kind: sft, data: STAGE, n: 6}]}\n"
    "  - {name: dpo, label: sft+dpo, train_sizes: [8], stages: [{kind: sft}]}\n"
    "  - {name: rag, label: rag+ft, k: 2, train_sizes: [8], stages: [{kind: sft}]}\n"
)


def _corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "games.md").write_text("Portal 2 is a puzzle game released in 2011 by Valve. " * 5)
    (d / "more.txt").write_text("Halo is a shooter for Xbox with multiplayer. " * 5)
    return d


def test_every_method_runs_through_the_cli(tmp_path, tiny_model_dir, viggo_dir):
    stage = tmp_path / "stage.jsonl"
    stage.write_text("".join(json.dumps({"instruction": f"Say {w}.", "output": w}) + "\n"
                             for w in ["yes", "no", "maybe", "game", "play", "fun", "good", "bad"]))
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store,
                       ALL.replace("STAGE", str(stage)))
    text = cfg.read_text().replace("n_test: 6}", f"n_test: 6, corpus: '{_corpus(tmp_path)}'}}")
    cfg.write_text(text)
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code == 0, r.output
    con = sqlite3.connect(store)
    rows = con.execute("SELECT label, status, info, train_seconds, prompt_tokens_mean "
                       "FROM runs").fetchall()
    assert len(rows) == 8 and all(s == "done" for _, s, *_ in rows), rows
    info = {label: json.loads(i) for label, _, i, *_ in rows}
    for label, stored in info.items():  # every stored key is a typed field and reads back unchanged
        named_at_run_time = {k for k in stored if k.startswith("recall_at_")}
        assert PredictorInfo.from_json(stored).to_json() == {k: v for k, v in stored.items()
                                                             if k not in named_at_run_time}, label
    assert info["dpo"]["pairs"] > 0 and info["dpo"]["beta"] == 0.2
    assert info["prompt_search"]["chosen_prompt"]["instruction"]
    assert len(info["prompt_search"]["search"]) == 3
    assert info["prompt_tuning"]["trainable_params"] == 4 * 64
    assert [s["stage"] for s in info["staged"]["stages"]] == [f"sft on {stage}"]
    assert "slot_f1" in info["sft+dpo"]["stages"][0]["metrics"]
    assert info["sft+dpo"]["stages"][0]["lr"] == 0.001  # the config-wide lr, not DPO's own
    assert info["rag+ft"]["stages"] and info["rag"]["passages"] >= 2
    assert all(len(v) == 2 for v in info["dynamic_few_shot"]["shots"].values())
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "cost vs quality" in md and "## Stages" in md and "prompt search" in md
    assert (tmp_path / "runs" / "report" / "cost.png").stat().st_size > 1000


def test_prompt_search_never_reads_the_test_split(tmp_path, tiny_model_dir, viggo_dir, monkeypatch):
    from tunelab import methods
    from tunelab.tasks.viggo import Viggo

    seen, searching = [], []
    original = methods.METHODS["prompt_search"]  # a MethodSpec: spy on its build

    def spy_build(ctx):
        searching.append(True)
        try:
            return original.build(ctx)
        finally:
            searching.pop()

    def spy_user(self, ex):
        if searching:
            seen.append(ex.id)
        return ex.input

    monkeypatch.setitem(methods.METHODS, "prompt_search", replace(original, build=spy_build))
    monkeypatch.setattr(Viggo, "user_message", spy_user)
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "r" / "s.db",
                       "  - {name: prompt_search, k: 2, train_sizes: [8], budget: 4, dev_size: 5}\n")
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code == 0, r.output
    assert any(i.startswith("validation.csv:") for i in seen)
    assert not [i for i in seen if i.startswith("test.csv:")]


def test_faiss_index_round_trips_from_disk(tmp_path):
    from tunelab.backends.retrieve import Index, passage_index, read_corpus

    passages = read_corpus(_corpus(tmp_path), size=80, overlap=20)
    assert {p.source for p in passages} == {"games.md", "more.txt"}
    built = passage_index(passages, tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx")
    queries = ["Which puzzle game did Valve make?", "Xbox shooter with multiplayer"]
    assert loaded.ids == built.ids and loaded.texts == built.texts
    assert loaded.search(queries, 3) == built.search(queries, 3)
    assert loaded.ids[loaded.search(queries, 1)[1][0]].startswith("more.txt")
    again = passage_index(passages, tmp_path / "idx")  # reloaded, not rebuilt
    assert again.faiss.ntotal == len(passages)


def test_dpo_pairs_only_from_wrong_outputs():
    from tunelab.methods.dpo import pairs
    from tunelab.tasks.viggo import Viggo

    task = Viggo(TaskConfig())
    exs = [Example("s1", "inform(name[A], rating[good])", "1"),
           Example("s2", "inform(name[B])", "2"),
           Example("s3", "request(name[C])", "3")]
    outputs = ["inform(rating[good], name[A])",  # right (slot order does not matter)
               "inform(name[Z])",                 # wrong
               ""]                                # empty: wrong too
    got = pairs(task, "sys", exs, outputs)
    assert [p["chosen"][0]["content"] for p in got] == ["inform(name[B])", "request(name[C])"]
    assert [p["rejected"][0]["content"] for p in got] == ["inform(name[Z])", ""]
    assert got[0]["prompt"][-1] == {"role": "user", "content": "s2"}


def test_prompt_tuning_trains_and_changes_generation(tiny):
    from peft import PromptTuningConfig, get_peft_model

    from tunelab.backends.generate import generate
    from tunelab.backends.prompt import messages, render
    from tunelab.methods.prompt_tuning import SoftPrompted, init_from_text
    from tunelab.train.loop import encode, train_loop

    model, tok = tiny
    base = copy.deepcopy(model)
    for p in base.parameters():
        p.requires_grad_(False)
    peft_model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    init_from_text(peft_model, tok, "Convert the sentence.")
    soft = SoftPrompted(peft_model)
    pairs = [(f"Game {i} is fun.", f"inform(name[Game {i}])") for i in range(8)]
    data = [encode(tok, messages("C.", q), a, 256, f"e{i}") for i, (q, a) in enumerate(pairs)]
    prompts = [render(tok, messages("C.", q)) for q, _ in pairs[:4]]
    ids0 = tok(prompts[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = soft(input_ids=ids0).logits[:, -1]
        plain = model(input_ids=ids0).logits[:, -1]
    assert not torch.allclose(before, plain, atol=1e-4)  # the virtual tokens are seen
    stats = train_loop(soft, tok, data, TrainConfig(batch_size=8, min_steps=20, lr=0.05), seed=0)
    assert stats.trainable_params == 4 * 64
    # 256 numbers in front of a frozen random model: the drop is small but real
    assert stats.losses[-1] < stats.losses[0] - 0.05
    assert all(torch.equal(a, b) for a, b in zip(base.parameters(), model.parameters(), strict=True))
    with torch.no_grad():
        assert not torch.allclose(soft(input_ids=ids0).logits[:, -1], before, atol=1e-3)
    after = [g.text for g in generate(soft, tok, prompts, 8)]
    # batched, prefix-cached generation equals one-at-a-time generation without reuse
    single = [generate(soft, tok, [p], 8, reuse_prefix=False)[0].text for p in prompts]
    assert after == single
    # and equals greedy decoding of the full sequence with the virtual tokens prepended
    ids = tok(prompts[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for _ in range(8):
            nxt = soft(input_ids=ids).logits[:, -1].argmax(-1)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    n = len(tok(prompts[0], add_special_tokens=False)["input_ids"])
    assert tok.decode(ids[0, n:]).startswith(after[0])


def test_rag_stores_recall_at_k_for_gold_passages(tmp_path, tiny_model_dir):
    rows = [{"prompt": f"Tell me about {g}.", "completion": g, "gold_passages": [src]}
            for g, src in [("Portal", "games.md"), ("Halo", "more.txt")] * 6]
    rows += [{"prompt": f"Q{i}?", "completion": "A", "gold_passages": ["games.md#0"]} for i in range(4)]
    train = tmp_path / "qa.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # two answerable test questions and two whose gold passage is in no file: recall < 1
    tests = rows[:2] + [{**rows[0], "gold_passages": ["nowhere.md"]},
                        {**rows[12], "gold_passages": ["nowhere.md#0"]}]
    test = tmp_path / "qa_test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in tests))
    cfg = tmp_path / "rag.yaml"
    cfg.write_text(
        f"task: {{name: jsonl, train: '{train}', test: '{test}', n_test: 4, "
        f"corpus: '{_corpus(tmp_path)}'}}\nmodel: {{name: '{tiny_model_dir}'}}\n"
        f"eval: {{max_new_tokens: 4, bootstrap: 50}}\nallow_leakage: true\n"
        f"store: '{tmp_path / 's.db'}'\nout_dir: '{tmp_path}'\n"
        "methods: [{name: rag, k: 1, chunk_size: 100, chunk_overlap: 20}]\n")
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code == 0, r.output
    info = json.loads(sqlite3.connect(tmp_path / "s.db").execute("SELECT info FROM runs").fetchone()[0])
    assert info["recall_examples"] == 4 and len(info["retrieved"]) == 4
    assert all(len(ids) == 1 for ids in info["retrieved"].values())
    gold = {f"qa_test.jsonl:{n}": r["gold_passages"] for n, r in enumerate(tests, start=1)}
    hits = {ex: ids[0] in gold[ex] or ids[0].split("#")[0] in gold[ex]
            for ex, ids in info["retrieved"].items()}
    assert not hits["qa_test.jsonl:3"] and not hits["qa_test.jsonl:4"]
    assert info["recall_at_1"] == sum(hits.values()) / 4 > 0, (hits, info)
    assert len(list((tmp_path / "cells").glob("*/index/index.faiss"))) == 1


def test_bad_stage_kind_is_one_line(tmp_path, tiny_model_dir, viggo_dir):
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, tmp_path / "s.db",
                       "  - {name: lora, train_sizes: [8], stages: [{kind: rlhf}]}\n")
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code != 0
    assert "Unknown stage 'rlhf'. Available: sft, dpo" in r.output


def test_few_shot_draw_chooses_which_shots_and_a_search_can_choose_it(tiny, viggo_dir):
    from tunelab.core.config import MethodConfig, RunConfig, from_dict
    from tunelab.methods import get_method, method_train
    from tunelab.methods.base import Context
    from tunelab.methods.search_run import default_setting
    from tunelab.tasks import get_task

    task = get_task(TaskConfig(name="viggo", data_dir=str(viggo_dir), n_test=6))
    splits = task.load()
    model, tok = tiny

    def shots(entry: dict, seed: int = 0) -> tuple[list[str], dict]:
        m = from_dict(MethodConfig, {"name": "few_shot", "k": 3, **entry}, "m")
        ctx = Context(model, tok, task, splits.train[:12], m, method_train(RunConfig(methods=[m]), m),
                      seed, None, validation=splits.validation)
        info = get_method("few_shot")(ctx).info
        return info.shots, info.settings_search or {}

    default, _ = shots({})
    assert shots({"draw": 0})[0] == default  # the default draw is the cell's seed
    assert shots({"draw": 1})[0] != default
    assert shots({"draw": 1}, seed=5)[0] == shots({"draw": 1})[0]  # a set draw holds across seeds
    assert shots({}, seed=1)[0] == shots({"draw": 1})[0]
    # searched: the default (the cell's seed) is resolved, and the chosen draw's shots are the arm's
    picked, s = shots({"search": {"draw": [0, 1, 2]}}, seed=2)
    assert s["default"] == {"draw": 2} and s["space"] == {"draw": [0, 1, 2]}
    assert picked == shots({"draw": s["chosen"]["draw"]})[0]
    m = from_dict(MethodConfig, {"name": "few_shot", "search": {"draw": [0]}}, "m")
    ctx = Context(None, None, None, [], m, method_train(RunConfig(methods=[m]), m), 4, None)
    assert default_setting(ctx, m.search) == {"draw": 4}


def test_dpo_keeps_stdout_for_the_json(tmp_path, tiny_model_dir, viggo_dir):
    """TRL's trainer, with its tqdm bar off, printed a dict per logged step on stdout,
    ahead of `tunelab run --json`'s document: stdout must parse as JSON alone."""
    store = tmp_path / "runs" / "t.db"
    cfg = write_config(tmp_path / "c.yaml", tiny_model_dir, viggo_dir, store,
                       "  - {name: dpo, train_sizes: [8], beta: 0.2}\n")
    r = runner.invoke(app, ["run", str(cfg), "--json", "--fail-fast"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [a["method"] for a in data["arms"]] == ["dpo"]
