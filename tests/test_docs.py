"""The user-facing docs: every config key documented, the generated references complete,
the README short, no machine-specific or dated text, result tables equal to their files,
and the docs site building with --strict."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import docs_hook  # noqa: E402
import render_results  # noqa: E402

from tunelab.core import config  # noqa: E402
from tunelab.methods import load_config  # noqa: E402


def config_classes() -> list[type]:
    """Every dataclass config.py defines or re-exports from its own parts (config_after), so
    a new section is covered without listing it here."""
    return [c for _, c in inspect.getmembers(config, inspect.isclass)
            if dataclasses.is_dataclass(c) and c.__module__.startswith(config.__name__)]


def method_settings() -> dict[str, type]:
    from tunelab.methods import METHODS

    return {name: spec.settings for name, spec in METHODS.items()}


def test_every_config_key_and_method_setting_has_a_docstring():
    classes = {c.__name__: c for c in config_classes()} | method_settings()
    assert {"RunConfig", "TrainConfig", "ModelConfig", "lora", "rag"} <= set(classes)
    missing = [f"{name}.{f.name}" for name, cls in classes.items()
               for f in dataclasses.fields(cls) if not docs_hook.inherited_docs(cls).get(f.name)]
    assert not missing, f"keys without a docstring (add one under the field): {missing}"


def test_config_reference_lists_every_key_with_type_default_and_doc():
    from tunelab.methods.base import COMMON

    page = docs_hook.config_reference()
    for cls in [*config_classes(), *method_settings().values()]:
        for key, type_, default, doc in docs_hook.key_rows(cls):
            if cls is config.MethodConfig and key not in COMMON:
                continue  # a method's own setting: listed under each method that takes it
            assert f"| `{key}` | `{type_}` | {default} | {docs_hook._cell(doc)} |" in page, (cls, key)
    own = {f.name for cls in method_settings().values() for f in dataclasses.fields(cls)}
    # the shared entry holds the common keys and the method's settings object, nothing of its own
    assert {f.name for f in dataclasses.fields(config.MethodConfig)} == {*COMMON, "settings"}
    assert not own & set(COMMON)
    for name in method_settings():
        assert f"### `{name}`" in page
    assert "| `max_retries` | `int` | `5` |" in page  # a key issue 32's reader could not find


def walk(cmd, path="tunelab"):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from walk(sub, f"{path} {name}")


def test_cli_reference_lists_every_command_and_option():
    import typer

    from tunelab.cli.main import app

    page = docs_hook.cli_reference()
    sections = re.split(r"^#+ ", page, flags=re.MULTILINE)
    commands = list(walk(typer.main.get_command(app)))[1:]
    assert {"tunelab run", "tunelab data check", "tunelab probe facts"} <= {p for p, _ in commands}
    for path, cmd in commands:
        body = next((s for s in sections if s.startswith(f"`{path}`\n")), None)
        assert body is not None, f"no section for {path}"
        for param in cmd.params:
            shown = f"`{param.name.upper()}` (argument)" if param.param_type_name == "argument" \
                else f"`{param.opts[0]}`"
            assert shown in body, f"{path}: {shown} missing"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) < 200


FORBIDDEN = {
    "absolute machine path": r"(?<![\w.~])/(?:work|tmp|home|root)/",
    "lock wrapper": r"\bflock\b",
    "commit hash": r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b",
    "date": r"\b\d{4}-\d{2}-\d{2}\b",
    "CPU model name": r"\b(?:EPYC|Xeon|Ryzen|Threadripper|Opteron|Graviton|Core i[3579])\b",
    "superseded": r"(?i)\bsuperseded\b",
    "issue number": r"(?i)\bissue\s+#?\d+|(?<![\w&])#\d+\b",
}
"""What user-facing text must not carry: it describes the tool, not one machine's history."""


def user_facing() -> dict[str, str]:
    texts = {p.relative_to(ROOT).as_posix(): p.read_text()
             for p in [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "CONTRIBUTING.md",
                       *(ROOT / "docs").rglob("*.md")]}
    texts |= {f"(generated) {uri}": make() for uri, make in docs_hook.PAGES.items()}
    texts |= {p.relative_to(ROOT).as_posix(): p.read_text() for p in (ROOT / "configs").rglob("*.yaml")}
    texts |= {p.relative_to(ROOT).as_posix(): inspect.getdoc(_module(p)) or ""
              for p in (ROOT / "bench").glob("*.py")}
    return texts


def _module(path: Path):
    """A bench script's docstring without importing it (they load torch at the top)."""
    import ast
    import types

    mod = types.ModuleType(path.stem)
    mod.__doc__ = ast.get_docstring(ast.parse(path.read_text()))
    return mod


def find_forbidden(texts: dict[str, str]) -> list[str]:
    return [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {what}: {m.group(0)!r}"
            for name, text in texts.items() for what, pattern in FORBIDDEN.items()
            for m in re.finditer(pattern, text)]


def test_no_machine_paths_hashes_dates_or_history_in_user_facing_text():
    assert not find_forbidden(user_facing())


@pytest.mark.parametrize("bad", ["cd /work/main", "flock -x lock", "at d2535f2", "on 2026-12-03",
                                 "a 2-core AMD EPYC", "(superseded)", "see issue 16", "see #32"])
def test_the_scan_catches_each_kind(bad):
    assert find_forbidden({"x": f"text {bad} text"})


def test_the_scan_passes_ordinary_text():
    assert not find_forbidden({"x": "slot F1 0.790, 1,655 requests, a 100-step run, ~/.cache/x, "
                                     "`runs/my.db`, [cost](cost.md#break-even), decade, 5103 examples"})


def test_rendered_tables_equal_their_result_files():
    assert render_results.stale() == [], "run python scripts/render_results.py"


RUN = {"primary": "slot_f1", "recommendation": ["fine-tune (lora n=500): beats few_shot", "more"],
       "arms": [{"model": "m", "label": "lora", "n_train": 500, "prompt_tokens_mean": 51.4,
                 "train_seconds": 360.2, "eval_seconds": 20.0,
                 "metrics": {"slot_f1": {"mean": 0.79, "lo": 0.742, "hi": 0.847},
                             "mr_exact": {"mean": 0.34, "lo": 0.25, "hi": 0.43}}}],
       "provenance": {"command": "tunelab run configs/demo.yaml --json",
                      "code_version": "0.1.0+git.abcdef123456",
                      "machine": "2-core x86-64 CPU (AVX2), no GPU", "python": "3.11.7",
                      "packages": {"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2"}}}


def test_a_block_is_rendered_from_its_file_and_a_stale_one_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(render_results, "RESULTS", tmp_path)
    (tmp_path / "demo.json").write_text(json.dumps(RUN))
    doc = tmp_path / "page.md"
    doc.write_text("a\n<!-- results:demo -->\nold\n<!-- /results:demo -->\n"
                   "<!-- results:demo:recommendation -->\n<!-- /results:demo:recommendation -->\n")
    assert render_results.stale([doc]) == [f"{doc}: results:demo", f"{doc}: results:demo:recommendation"]
    text = render_results.render_text(doc.read_text())
    assert "| m | lora | 500 | 0.790 [0.742, 0.847] | 0.340 [0.250, 0.430] | 51 | 360 | 20 |" in text
    assert "> fine-tune (lora n=500): beats few_shot\n> more" in text
    assert ("`tunelab run configs/demo.yaml --json` on a 2-core x86-64 CPU (AVX2), no GPU; "
            "tunelab 0.1.0,") in text
    assert "abcdef123456" not in text  # the commit stays in the file, not in the prose
    doc.write_text(text)
    assert render_results.stale([doc]) == []
    (tmp_path / "demo.json").write_text(json.dumps(RUN).replace("0.742", "0.741"))
    assert render_results.stale([doc]) == [f"{doc}: results:demo"]


def test_a_bench_file_renders_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(render_results, "RESULTS", tmp_path)
    (tmp_path / "bench_x.json").write_text(json.dumps(
        {"rows": [{"arm": "lora", "tokens_per_s": 271.36}, {"arm": "full", "peak_rss_gb": 3.19}],
         "provenance": RUN["provenance"] | {"command": "python bench/x.py"}}))
    block = render_results.render_block("bench_x")
    assert block.splitlines()[:4] == ["| arm | tokens_per_s | peak_rss_gb |", "|---|---|---|",
                                      "| lora | 271.4 | — |", "| full | — | 3.190 |"]


def test_hosted_config_loads_without_the_network(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise AssertionError("loading a config must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    cfg = load_config(ROOT / "configs" / "hosted.yaml")
    assert (cfg.model.backend, cfg.model.api_key_env) == ("openai", "OPENAI_API_KEY")
    assert cfg.model.base_url.startswith("https://")


def test_provenance_names_the_machine_kind_and_a_portable_command(monkeypatch):
    from tunelab import __version__
    from tunelab.report import json_results as payload

    monkeypatch.chdir(ROOT)
    p = payload.provenance(["run", str(ROOT / "configs" / "demo.yaml"), "--store", "/elsewhere/x.db"])
    assert p["command"] == "tunelab run configs/demo.yaml --store x.db"
    # an argument with a space is quoted, so the command retyped passes it as one
    q = payload.provenance(["--a", "lora n=500", "--b", "few_shot"], program="python bench/coverage.py")
    assert q["command"] == "python bench/coverage.py --a 'lora n=500' --b few_shot"
    assert p["code_version"].startswith(__version__)
    assert re.fullmatch(r"\d+-core [\w-]+ CPU( \([\w-]+\))?, .+", p["machine"]), p["machine"]
    assert not find_forbidden({"machine": p["machine"]})
    assert {"torch", "transformers"} <= set(p["packages"])


def test_benchmarks_describe_every_bench_script_and_its_result_file():
    text = (ROOT / "BENCHMARKS.md").read_text()
    for script in sorted((ROOT / "bench").glob("*.py")):
        if script.stem != "common":
            assert f"python bench/{script.name}" in text, script.name
            kept = render_results.PACKAGED.get(script.stem)  # package data: the report reads it
            where = kept.relative_to(ROOT).as_posix() if kept else f"results/bench_{script.stem}"
            assert where in text, script.name


def test_docs_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the dev extra: CI installs it")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "reference" / "config" / "index.html").exists()
    assert (tmp_path / "reference" / "cli" / "index.html").exists()
