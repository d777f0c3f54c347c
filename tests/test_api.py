"""openai backend against a fake OpenAI-compatible server on 127.0.0.1 (no network)."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from tests.conftest import viggo_rows
from tunelab.cli.main import app

KEY = "sk-test-secret-1234"
runner = CliRunner()


class Fake(BaseHTTPRequestHandler):
    requests: list[dict] = []
    auth: set[str] = set()
    long_for: set[str] = set()
    """User messages answered as if the answer used 99 tokens (a reply cut off at a limit)."""
    calls = 0
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.calls += 1
            first = cls.calls == 1
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            cls.auth.add(self.headers.get("Authorization", ""))
            if first:  # one rate limit: the client must back off and retry
                return self._send(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "10"})
            cls.requests.append(body)
            # Echo the last user message's first slot as the answer, with token usage.
            user = body["messages"][-1]["content"]
            self._send(200, {
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"inform(name[{user[:5]}])"}}],
                "usage": {"prompt_tokens": 10 * len(body["messages"]),
                          "completion_tokens": 99 if user in cls.long_for else 7,
                          "total_tokens": 10 * len(body["messages"]) + 7},
            })
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _send(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    Fake.requests, Fake.auth, Fake.calls, Fake.max_in_flight = [], set(), 0, 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def _config(tmp_path, viggo_dir, url, methods):
    cfg = tmp_path / "api.yaml"
    cfg.write_text(
        f"task: {{name: viggo, data_dir: '{viggo_dir}', n_test: 6}}\n"
        f"model: {{name: fake-gpt, backend: openai, base_url: '{url}', api_key_env: TL_TEST_KEY,\n"
        f"        concurrency: 2, price_prompt: 1.0, price_completion: 2.0}}\n"
        f"eval: {{max_new_tokens: 12, bootstrap: 200}}\n"
        f"store: '{tmp_path / 's.db'}'\nout_dir: '{tmp_path}'\nmethods:\n{methods}"
    )
    return cfg


def test_openai_backend_zero_and_few_shot(tmp_path, viggo_dir, server, monkeypatch):
    monkeypatch.setenv("TL_TEST_KEY", KEY)
    cfg = _config(tmp_path, viggo_dir, server,
                  "  - {name: zero_shot}\n  - {name: few_shot, k: 2, train_sizes: [8]}\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    assert Fake.auth == {f"Bearer {KEY}"}
    assert len(Fake.requests) == 12 and Fake.calls == 13  # 2 cells x 6 tests + 1 retried 429
    assert 1 <= Fake.max_in_flight <= 2
    few = [q for q in Fake.requests if len(q["messages"]) == 1 + 2 * 2 + 1]
    assert len(few) == 6  # system + 2 shots (user, assistant) + the test input
    con = sqlite3.connect(tmp_path / "s.db")
    rows = con.execute("SELECT method, status, prompt_tokens_mean, gen_tokens_mean, info "
                       "FROM runs ORDER BY method").fetchall()
    assert [(m, s, p, g) for m, s, p, g, _ in rows] == [("few_shot", "done", 60.0, 7.0),
                                                         ("zero_shot", "done", 20.0, 7.0)]
    zero_info = json.loads(rows[1][4])
    assert zero_info["api_cost_usd"] == pytest.approx((6 * 20 * 1.0 + 6 * 7 * 2.0) / 1e6)
    echoes = sorted(f"inform(name[{r['ref'][:5]}])" for r in viggo_rows("test", 6))
    for method in ("few_shot", "zero_shot"):  # each test sentence's answer, stored with it
        preds = con.execute("SELECT p.prediction, p.input FROM predictions p JOIN runs r ON r.id = p.run_id "
                            "WHERE r.method = ?", (method,)).fetchall()
        assert sorted(p for p, _ in preds) == echoes
        assert all(p == f"inform(name[{x[:5]}])" for p, x in preds)
    con.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "api.yaml"]
    blob = b"".join(p.read_bytes() for p in written)
    assert KEY.encode() not in blob and KEY not in r.output


def test_openai_backend_refuses_training_and_missing_key(tmp_path, viggo_dir, server, monkeypatch):
    monkeypatch.setenv("TL_TEST_KEY", KEY)
    cfg = _config(tmp_path, viggo_dir, server, "  - {name: lora, train_sizes: [8]}\n")
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code != 0 and "openai backend (prompting only" in r.output
    monkeypatch.delenv("TL_TEST_KEY")
    cfg = _config(tmp_path, viggo_dir, server, "  - {name: zero_shot}\n")
    r = runner.invoke(app, ["run", str(cfg), "--fail-fast"])
    assert r.exit_code != 0 and "TL_TEST_KEY" in r.output


def test_openai_backend_runs_the_methods_that_choose_messages_per_example(tmp_path, viggo_dir, server,
                                                                         monkeypatch):
    """dynamic_few_shot and rag choose their messages per example; the API model is sent
    those messages (before, they built text only, which the API path cannot send)."""
    monkeypatch.setenv("TL_TEST_KEY", KEY)
    corpus = tmp_path / "kb"
    corpus.mkdir()
    (corpus / "games.md").write_text("Portal 2 is a puzzle game released in 2011 by Valve. " * 5)
    cfg = _config(tmp_path, viggo_dir, server, "  - {name: dynamic_few_shot, k: 2, train_sizes: [8]}\n"
                  "  - {name: rag, k: 1, chunk_size: 120, chunk_overlap: 30}\n")
    cfg.write_text(cfg.read_text().replace("n_test: 6}", f"n_test: 6, corpus: '{corpus}'}}"))
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    shots = [q for q in Fake.requests if len(q["messages"]) == 1 + 2 * 2 + 1]
    passages = [q for q in Fake.requests if q["messages"][-1]["content"].startswith("Passages:\n[games.md")]
    assert len(shots) == 6 and len(passages) == 6 and len(Fake.requests) == 12
    con = sqlite3.connect(tmp_path / "s.db")
    assert [s for (s,) in con.execute("SELECT status FROM runs")] == ["done", "done"]


def test_the_openai_backend_imports_no_torch():
    """A hosted-model run needs no torch: the backend's answer type lives apart from the
    local generate (on main before the layout change, api imported generate for it)."""
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).parent.parent / "src"
    code = "import sys, tunelab.backends.openai_api; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"
