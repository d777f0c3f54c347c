"""The pairwise judge: both orders asked, a position-biased judge finds no preference, a
fair one finds the better arm, replies are cached, and the report carries the paragraph."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tunelab.backends.generation import Generation
from tunelab.core.store import Store
from tunelab.decide.arms import load_arms
from tunelab.eval.judge import Item, judge
from tunelab.report import judge_section
from tunelab.report.build import build

N = 40
ANSWERS = re.compile(r"Reference answer:\n(.*?)\n\nAnswer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\nReply", re.S)


def fair_reply(prompt: str) -> str:
    """A judge that prefers the answer equal to the reference (a tie when neither is)."""
    ref, a, b = ANSWERS.search(prompt).groups()
    return "A" if a == ref else "B" if b == ref else "tie"


class FakeJudge:
    """Stands where the API backend would: chat() answers each prompt; counts the asks."""

    def __init__(self, reply):
        self.reply, self.asked = reply, 0

    def chat(self, conversations, max_new, label=""):
        self.asked += len(conversations)
        return [Generation(self.reply(c[-1]["content"]), 10, 1, 0.0) for c in conversations]


def _add(store, method, right, judge_cfg):
    key = f"{method}-0"
    cfg = {"task": {"name": "jsonl"}, "cell": {"method": {"name": method}, "primary": "rougeL"},
           "report": {"margin": 2.0, "judge": judge_cfg}}
    store.begin(key, {"task": "alpaca", "model": "m", "method": method, "label": method,
                      "train_size": 100, "n_train": 100 if method == "lora" else 0, "seed": 0,
                      "config": cfg, "versions": {}, "git_commit": "x"})
    rows = [{"idx": i, "example_id": f"e{i}", "input": f"question {i}", "target": f"answer {i}",
             "prediction": f"answer {i}" if ok else "something else",
             "scores": {"rougeL": 1.0 if ok else 0.3}, "prompt_tokens": 10, "gen_tokens": 5,
             "latency_s": 0.1} for i, ok in enumerate(right)]
    m = sum(r["scores"]["rougeL"] for r in rows) / len(rows)
    store.finish(key, {"info": {"prompts": ["p"]}, "train_seconds": 1.0, "eval_seconds": 1.0},
                 {"rougeL": (m, m, m)}, {"rougeL": True}, rows)


JUDGE = {"name": "judge-model", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
         "api_key_env": "JUDGE_KEY"}


def _store(tmp_path, judge_cfg=JUDGE):
    s = Store(tmp_path / "s.db")
    _add(s, "lora", [i % 5 != 0 for i in range(N)], judge_cfg)  # right on 80%
    _add(s, "few_shot", [i % 5 == 0 for i in range(N)], judge_cfg)  # right on the other 20%
    return s


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))


def test_judge_asks_both_orders_and_counts_only_agreement(tmp_path):
    items = [Item(f"e{i}", "q", "ref", "ref" if i < 6 else "other", "other" if i < 6 else "ref")
             for i in range(10)]
    fair = FakeJudge(fair_reply)
    assert judge(fair, items, tmp_path) == [1.0] * 6 + [0.0] * 4
    assert fair.asked == 20  # both orders of every pair
    biased = FakeJudge(lambda p: "A")  # always the first position, whatever it holds
    assert judge(biased, items, tmp_path / "b") == [0.5] * 10
    again = FakeJudge(fair_reply)
    judge(again, items, tmp_path)
    assert again.asked == 0  # cached: a report built again asks (and bills) nothing


def test_report_paragraph_names_the_preferred_arm(tmp_path, monkeypatch):
    store = _store(tmp_path)
    arms = load_arms(store)
    fair = judge_section.section(arms, "rougeL", model_of=lambda cfg: FakeJudge(fair_reply))
    assert (fair["a"], fair["b"], fair["n"]) == ("lora n=100", "few_shot", N)
    assert fair["preference"] == pytest.approx(0.8) and fair["lo"] > 0.5
    assert "the judge prefers lora n=100" in fair["sentence"]
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "other"))  # the fakes share one name
    biased = judge_section.section(arms, "rougeL", model_of=lambda cfg: FakeJudge(lambda p: "B"))
    assert biased["preference"] == 0.5 and "undecided at 40 examples" in biased["sentence"]


def test_no_judge_configured_no_paragraph_and_unreachable_judge_is_one_line(tmp_path, monkeypatch):
    assert judge_section.section(load_arms(_store(tmp_path / "a", None)), "rougeL") is None
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    md, _ = build(_store(tmp_path).path, tmp_path / "out")
    text = md.read_text()
    assert "Judge judge-model: not asked (model 'judge-model': set the API key" in text


class JudgeServer(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = fair_reply(body["messages"][-1]["content"])
        data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": f"{reply}."}}],
                           "usage": {"prompt_tokens": 50, "completion_tokens": 2,
                                     "total_tokens": 52}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_report_asks_an_openai_compatible_judge(tmp_path, monkeypatch):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), JudgeServer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("JUDGE_KEY", "sk-judge")
        store = _store(tmp_path, {**JUDGE, "base_url": f"http://127.0.0.1:{srv.server_address[1]}/v1"})
        md, html = build(store.path, tmp_path / "out")
    finally:
        srv.shutdown()
    assert "lora n=100 preferred on 32 of 40 examples, few_shot on 8" in md.read_text()
    assert "the judge prefers lora n=100" in html.read_text()
