"""The track record: rows computed from a shipped and a reference store, the bench script
that writes them, the docs view, and the sentence the report quotes (shipped config,
shipped task with other settings, own data)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.test_verdict import add, pattern
from tunelab.core.config import read_config, to_dict
from tunelab.core.store import Store
from tunelab.decide.arms import load_arms
from tunelab.decide.track_record import differences, flat, match, row, store_side, task_key
from tunelab.report import track_record
from tunelab.report.build import build

ROOT = Path(__file__).parents[1]


def stored(config: str, **task) -> dict:
    """A shipped config as the store keeps it with every run, `task` settings changed."""
    cfg = to_dict(read_config(ROOT / config)[0])
    cfg["task"] |= task
    return cfg


def fill(path: Path, cfg: dict, lora: list[float], few: list[float], seeds: int = 1) -> Path:
    """A store of one config's three arms (zero_shot, few_shot, lora) with these scores."""
    s, cell = Store(path), {"primary": "mr_exact"}  # the scores add() writes, whatever the task
    for seed in range(seeds):
        add(s, "zero_shot", [0.0] * len(lora), seed=seed, cfg=cfg, cell=cell)
        add(s, "few_shot", few, n=100, seed=seed, cfg=cfg, cell=cell, k=5, train_sizes=[100])
        add(s, "lora", lora, n=500, seed=seed, cfg=cfg, cell=cell, train_sizes=[500])
    return path


def demo_row(tmp_path: Path, ref_lora: list[float], reason: str | None = None) -> dict:
    """The demo's row: fine-tuning wins by 40 points on 100 test examples (shipped), and a
    400-example, 3-seed reference whose lora scores are `ref_lora`."""
    cfg = stored("configs/demo.yaml")
    shipped = fill(tmp_path / "demo.db", cfg, pattern(100, [(0, 80)]), pattern(100, [(0, 40)]))
    ref = fill(tmp_path / "ref.db", stored("configs/reference/viggo_demo.yaml"), ref_lora,
               pattern(400, [(0, 160)]), seeds=3)
    return row("viggo", "ViGGO demo", "configs/demo.yaml", "configs/reference/viggo_demo.yaml", flat(cfg),
               store_side(shipped)[0], store_side(ref)[0], reason, expected=9)


def test_a_row_compares_the_two_headlines(tmp_path):
    r = demo_row(tmp_path, pattern(400, [(0, 320)]))
    s, ref = r["shipped"], r["reference"]
    assert r["status"] == "agreed" and r["agreed"] is True and r["reason"] is None
    assert (s["verdict"], s["tuned"], s["prompted"], s["n_test"], s["seeds"]) == (
        "fine-tune", "lora n=500", "few_shot", 100, 1)
    assert (ref["verdict"], ref["n_test"], ref["seeds"], ref["cells"]) == ("fine-tune", 400, 3, 9)
    assert s["lo"] < s["lead"] == 40.0 < s["hi"] and s["ci"] == "simultaneous 95% CI"
    assert s["wall_s"] == 3.0 and ref["wall_s"] == 9.0  # eval 1 s per cell, no training


def test_a_row_prints_the_lead_the_report_prints(tmp_path):
    """The row keeps points to one decimal, as the reports print them: rounded to two first,
    a lead of 45.9499 points (a report's +45.9) rendered as +46.0 in the track record."""
    cfg = stored("configs/demo.yaml")
    side = store_side(fill(tmp_path / "s.db", cfg, [0.459499] * 100, [0.0] * 100))[0]
    assert f"{side['lead']:+.1f}" == f"{100 * 0.459499:+.1f}" == "+45.9"


def test_a_disagreement_carries_its_note(tmp_path):
    r = demo_row(tmp_path, pattern(400, [(0, 161)]), reason="the seconds budget")
    assert (r["status"], r["agreed"], r["reference"]["verdict"]) == ("disagreed", False, "within margin")
    assert r["reason"] == "the seconds budget"
    sentence = track_record.row_sentence(r)
    assert "the verdict disagreed with a reference run 12x larger" in sentence
    assert sentence.endswith("Why: the seconds budget.")


def test_two_undecided_verdicts_agree_and_say_that_neither_picks_a_side(tmp_path):
    # GSM8k: shipped and reference both undecided. "agreed" alone reads as if the reference
    # had confirmed a side; the sentence says the agreement is on recommending neither
    cfg = stored("configs/demo.yaml")
    shipped = fill(tmp_path / "s.db", cfg, pattern(100, [(0, 50)]), pattern(100, [(25, 75)]))
    ref = fill(tmp_path / "r.db", stored("configs/reference/viggo_demo.yaml"), pattern(400, [(0, 200)]),
               pattern(400, [(100, 300)]), seeds=3)
    r = row("viggo", "ViGGO demo", "c", "r", flat(cfg), store_side(shipped)[0], store_side(ref)[0],
            expected=9)
    verdicts = (r["shipped"]["verdict"], r["reference"]["verdict"], r["agreed"])
    assert verdicts == ("undecided", "undecided", True)
    sentence = track_record.row_sentence(r)
    assert "the verdict agreed" in sentence and "Both runs are undecided" in sentence, sentence
    decided = track_record.row_sentence(demo_row(tmp_path, pattern(400, [(0, 320)])))
    assert "Both runs are undecided" not in decided


def test_no_reference_or_an_unfinished_one_gives_no_values(tmp_path):
    cfg = stored("configs/demo.yaml")
    shipped = store_side(fill(tmp_path / "demo.db", cfg, pattern(100, [(0, 80)]), pattern(100, [(0, 40)])))[0]
    missing = row("viggo", "ViGGO demo", "c", "r", flat(cfg), shipped, None)
    assert missing["status"] == "reference not run yet"
    assert missing["agreed"] is None and missing["reference"] is None
    partial = store_side(fill(tmp_path / "ref.db", cfg, pattern(100, [(0, 80)]), pattern(100, [(0, 40)])))[0]
    unfinished = row("viggo", "ViGGO demo", "c", "r", flat(cfg), shipped, partial, expected=9)
    assert unfinished["status"] == "reference run not finished (3 of 9 cells)"
    assert unfinished["agreed"] is None and unfinished["reference"] is None


def test_a_run_is_matched_to_a_shipped_config_by_its_settings():
    rows = [{"task": "viggo", "fingerprint": flat(stored("configs/demo.yaml"))},
            {"task": "your_data", "fingerprint": flat(stored("configs/your_data.yaml"))}]
    assert match([stored("configs/demo.yaml")], rows) == (rows[0], [])
    found, diffs = match([stored("configs/demo.yaml", n_test=200)], rows)
    assert found is rows[0] and diffs == ["task.n_test 200 (shipped: 100)"]
    assert match([stored("configs/your_data.yaml")], rows) == (rows[1], [])
    own = stored("configs/your_data.yaml", train="my_tickets.jsonl")
    assert task_key(own) == "jsonl:my_tickets.jsonl" and match([own], rows) == (None, [])
    assert match([stored("configs/sql.yaml")], rows) == (None, [])  # a task no row holds


@pytest.fixture
def record(tmp_path):
    """A track record of two rows: the demo's, agreed, and SQL's, reference not run yet."""
    agreed = demo_row(tmp_path, pattern(400, [(0, 320)]))
    sql = row("sql", "SQL", "configs/sql.yaml", "configs/reference/sql.yaml",
              flat(stored("configs/sql.yaml")), None, None)
    return [agreed, sql]


def report_of(tmp_path: Path, cfg: dict, rows: list[dict], monkeypatch) -> tuple[str, str, dict]:
    """report.md, report.html and the --json track_record block of a store of `cfg`'s runs,
    with `rows` as the installed track record."""
    from tunelab.report.json_results import outlook

    path = tmp_path / "record.json"
    path.write_text(json.dumps({"rows": rows}))
    monkeypatch.setattr(track_record, "PATH", path)
    store = fill(tmp_path / "run.db", cfg, pattern(100, [(0, 80)]), pattern(100, [(0, 40)]))
    md, html = build(store, tmp_path / "rep")
    return md.read_text(), html.read_text(), outlook(load_arms(Store(store)), "mr_exact", 2.0)["track_record"]


def test_the_report_of_a_shipped_config_quotes_its_row(tmp_path, monkeypatch, record):
    md, html, block = report_of(tmp_path, stored("configs/demo.yaml"), record, monkeypatch)
    said = ("Track record: on the shipped ViGGO demo config (configs/demo.yaml), the verdict agreed "
            "with a reference run 12x larger (400 test examples x 3 seeds against 100 x 1): shipped "
            "fine-tune (lora n=500 vs few_shot: +40.0 points, simultaneous 95% CI")
    assert said in md.split("## Results")[0] and said in html
    assert block["kind"] == "shipped config" and block["row"] == "viggo"
    assert block["sentence"].startswith(said)
    assert "This run's verdict" not in block["sentence"]  # the same verdict as the recorded run
    record[0]["shipped"]["verdict"] = "prompt"  # recorded otherwise: the sentence says whose it is
    quoted = track_record.quote(load_arms(Store(tmp_path / "run.db")), record)["sentence"]
    assert quoted.endswith("This run's verdict (fine-tune) is not the one recorded for the shipped config "
                           "(prompt): the row speaks for the recorded run.")


def test_a_stored_config_older_or_newer_than_the_code_still_matches():
    """A field the stored run lacks reads as its default; one the code no longer has is
    ignored: the demo store of an earlier version is still the shipped demo's."""
    cfg = stored("configs/demo.yaml")
    older = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "plateau_drops"}}
    newer = {**cfg, "task": {**cfg["task"], "a_field_removed_since": 1}}
    assert flat(older) == flat(newer) == flat(cfg)
    # a method's own settings under `settings`, only those given: the same entry
    nested = {**cfg, "methods": [{"name": "zero_shot", "train_sizes": [0], "settings": {}},
                                 {"name": "few_shot", "train_sizes": [100], "settings": {"k": 5}},
                                 {"name": "lora", "train_sizes": [500], "settings": {}}]}
    assert differences(flat(nested), flat(cfg)) == []
    nested["methods"][1]["settings"]["k"] = 3
    nested["methods"][2]["train_sizes"] = [250]
    assert differences(flat(nested), flat(cfg)) == ["methods[1].k 3 (shipped: 5)",
                                                    "methods[2].train_sizes [250] (shipped: [500])"]
    assert differences(flat({**cfg, "methods": cfg["methods"][:2]}), flat(cfg)) == [
        "methods.count 2 (shipped: 3)"]


def test_a_shipped_task_with_other_settings_says_the_row_is_not_its_own(tmp_path, monkeypatch, record):
    *_, block = report_of(tmp_path, stored("configs/demo.yaml", n_test=200), record, monkeypatch)
    assert block["kind"] == "shipped task" and block["differences"] == ["task.n_test 200 (shipped: 100)"]
    assert block["sentence"].startswith(
        "Track record: this run is on the ViGGO demo task but not on its shipped config "
        "(configs/demo.yaml; this run differs in task.n_test 200 (shipped: 100)), so what follows "
        "is the shipped config's record, not this run's: on the shipped ViGGO demo config")


def test_a_shipped_task_without_a_reference_says_so(tmp_path, monkeypatch, record):
    *_, block = report_of(tmp_path, stored("configs/sql.yaml"), record, monkeypatch)
    assert block["sentence"] == ("Track record: no reference run yet for the shipped SQL config "
                                 "(configs/sql.yaml), so its verdict has not been checked against a "
                                 "larger run yet.")


def test_own_data_gets_the_agreement_rate_of_the_shipped_tasks(tmp_path, monkeypatch, record):
    own = stored("configs/your_data.yaml", train="my_tickets.jsonl")
    md, html, block = report_of(tmp_path, own, record, monkeypatch)
    said = ("Track record: 1 of 1 shipped tasks checked agreed with their reference runs (ViGGO demo); "
            "measured on the shipped tasks, not on yours.")
    assert block == {"kind": "own data", "sentence": said, "row": None}
    assert said in md and said in html
    none = track_record.own_data([record[1]])
    assert none.startswith("Track record: no shipped task has been checked against a reference run yet")


def test_the_packaged_record_has_a_row_for_every_shipped_task():
    """Rendered by the docs, quoted by the report: one row per shipped task, none invented."""
    bench = _bench()
    rows = track_record.load()
    assert [r["task"] for r in rows] == list(bench.SHIPPED)
    for r in rows:
        assert differences(flat(to_dict(read_config(ROOT / r["config"])[0])), r["fingerprint"]) == []
        assert (r["agreed"] is None) == (r["reference"] is None)


def _bench():
    spec = importlib.util.spec_from_file_location("track_record_bench", ROOT / "bench" / "track_record.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_bench_script_reads_the_stores_the_configs_name(tmp_path, monkeypatch):
    """From a copy of the configs: the demo's shipped and reference stores in place give its
    row; every other task says its reference is not run yet; a bad notes file is one line."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "runs" / "reference").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    fill(tmp_path / "runs" / "demo.db", stored("configs/demo.yaml"), pattern(100, [(0, 80)]),
         pattern(100, [(0, 40)]))
    fill(tmp_path / "runs" / "reference" / "viggo_demo.db", stored("configs/reference/viggo_demo.yaml"),
         pattern(400, [(0, 320)]), pattern(400, [(0, 160)]), seeds=3)
    bench = _bench()
    out = bench.main(["--out", str(tmp_path / "tr.json")])
    data = json.loads(out.read_text())
    status = {r["task"]: r["status"] for r in data["rows"]}
    others = {t: "reference not run yet" for t in bench.SHIPPED if t != "viggo"}
    assert status == {"viggo": "agreed", **others}
    assert data["figures"] == {"tasks": 7, "compared": 1, "agreed": 1}
    assert {r["coverage"] for r in data["rows"]} == {None}  # no coverage measured yet
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bench_coverage_viggo.json").write_text(json.dumps({
        "source": "store viggo_demo.db: lora n=500 - few_shot on slot_f1, 400 examples", "nominal": 0.95,
        "rows": [{"n": n, "method": m, "coverage": c, "mean_width": 0.1, "reps": 1000}
                 for n, m, c in ((40, "percentile", 0.921), (40, "t", 0.95), (100, "percentile", 0.944))]}))
    viggo = json.loads(bench.main(["--out", str(tmp_path / "tr.json")]).read_text())["rows"][0]
    assert viggo["coverage"]["by_n"] == {"40": 0.921, "100": 0.944}  # the printed interval's only
    said = track_record.row_sentence(viggo)
    assert said.endswith("held the difference of all the examples in 92.1% of 1000 drawn slices of 40 "
                         "examples, 94.4% of 100 (nominal 95%); at 40 that is 2.9 points short: read its "
                         "intervals as somewhat too narrow there."), said
    assert data["provenance"]["command"].startswith("python bench/track_record.py")
    (tmp_path / "notes.yaml").write_text("viggo_demo: budget\n")
    with pytest.raises(SystemExit, match=r"notes\.yaml: 'viggo_demo': expected task"):
        bench.main(["--out", str(tmp_path / "tr.json"), "--notes", str(tmp_path / "notes.yaml")])


def test_one_task_is_reread_and_the_other_rows_are_kept(tmp_path, monkeypatch):
    """`--task`: a machine that holds only one task's stores re-reads that task and keeps the
    other rows as the table has them; a shipped store that is not here keeps its side only
    while the shipped config is the one it was read for, and the reference is always re-read."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "runs" / "reference").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    fill(tmp_path / "runs" / "demo.db", stored("configs/demo.yaml"), pattern(100, [(0, 80)]),
         pattern(100, [(0, 40)]))
    ref = fill(tmp_path / "runs" / "reference" / "viggo_demo.db", stored("configs/reference/viggo_demo.yaml"),
               pattern(400, [(0, 320)]), pattern(400, [(0, 160)]), seeds=3)
    bench, out = _bench(), tmp_path / "tr.json"
    with pytest.raises(SystemExit, match=r"tr\.json: no row for 'viggo_act' to keep"):
        bench.main(["--out", str(out), "--task", "viggo"])  # no table yet: nothing to keep
    first = json.loads(bench.main(["--out", str(out)]).read_text())
    version = first["provenance"]["code_version"]
    assert first["rows"][0]["shipped"]["read_by"] == first["rows"][0]["reference"]["read_by"] == version
    table = json.loads(out.read_text())
    table["rows"][2]["status"] = "kept, not re-read"  # sql: must come back as it stands
    out.write_text(json.dumps(table))
    (tmp_path / "runs" / "demo.db").unlink()  # the shipped store is not on this machine
    ref.unlink()  # the reference ran again: fine-tuning now wins by 10 points, not 40
    fill(ref, stored("configs/reference/viggo_demo.yaml"), pattern(400, [(0, 200)]),
         pattern(400, [(0, 160)]), seeds=3)
    again = json.loads(bench.main(["--out", str(out), "--task", "viggo"]).read_text())
    viggo = again["rows"][0]
    assert viggo["status"] == "agreed"
    assert viggo["shipped"] == first["rows"][0]["shipped"] | {"kept": True}  # from the table
    assert (viggo["reference"]["lead"], first["rows"][0]["reference"]["lead"]) == (10.0, 40.0)
    assert again["rows"][2]["status"] == "kept, not re-read"
    assert again["rows"][1:] == [r | {"coverage": None} for r in table["rows"][1:]]
    assert again["provenance"]["command"].endswith("--task viggo")
    render_results = _render_results()
    assert render_results.track(again).endswith(
        "It read ViGGO demo reference; every other side is kept from an earlier read of its store.")
    assert "It read" not in render_results.track(first)
    demo = tmp_path / "configs" / "demo.yaml"  # the shipped config changed since its side was read
    demo.write_text(demo.read_text().replace("n_test: 100", "n_test: 60"))
    assert "n_test: 60" in demo.read_text()
    changed = json.loads(bench.main(["--out", str(out), "--task", "viggo"]).read_text())["rows"][0]
    assert (changed["status"], changed["shipped"]) == ("shipped run not run yet", None)


def _render_results():
    """scripts/render_results.py, the docs' renderer, as a module."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import render_results

    return render_results


def test_the_docs_view_shows_one_row_per_task(record):
    render_results = _render_results()
    table = render_results.track({"rows": record, "provenance": {
        "command": "python bench/track_record.py", "machine": "m", "code_version": "0.1.0",
        "python": "3.11", "packages": {}}}).splitlines()
    assert table[2].startswith("| ViGGO demo (`configs/demo.yaml`) | fine-tune | fine-tune | yes | +40.0 "
                               "(simultaneous 95% CI ")
    assert table[2].endswith("| 100 x 1 / 400 x 3 | 3 s / 9 s | — |  |")
    assert table[3] == ("| SQL (`configs/sql.yaml`) | — | — | — | — | — | — / — | — / — | — | "
                        "reference not run yet |")
    record[0]["coverage"] = {"by_n": {"100": 0.944, "40": 0.921}, "nominal": 0.95, "reps": 1000}
    again = render_results.track({"rows": record, "provenance": {
        "command": "c", "machine": "m", "code_version": "0", "python": "3", "packages": {}}})
    assert "| 92.1% / 94.4% (40 / 100) |  |" in again.splitlines()[2]


def test_a_side_against_fine_tuning_on_an_unconverged_arm_says_so(tmp_path):
    """As the report's headline: a verdict against fine-tuning whose best arm did not
    converge is quoted with why it is not reliable."""
    from tests.test_verdict import STILL_FALLING

    s = Store(tmp_path / "s.db")
    add(s, "lora", pattern(100, [(0, 40)]), n=50, info=STILL_FALLING)
    add(s, "few_shot", pattern(100, [(0, 80)]), n=50, k=5)
    side = store_side(tmp_path / "s.db")[0]
    assert side["verdict"] == "prompt"
    assert side["caveat"].startswith("lora n=50: validation loss still falling")
    assert track_record.described(side).endswith(
        "; not reliable against fine-tuning: lora n=50: validation loss still falling when the budget ran "
        "out (0.800 after 1.000))")
