"""Cost and break-even: the pure figures (one-off, per 1,000 requests, break-even volume,
Pareto front), the prompting arm a fine-tuned one is set against (the paired comparison,
not raw means), no dollars without prices, and the cost block outside every cell key."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.test_api import KEY, _config, server  # noqa: F401 (server: the loopback API fixture)
from tunelab import TunelabError
from tunelab.core.config import CostConfig, MethodConfig, ModelConfig, RunConfig, TrainConfig, to_dict
from tunelab.core.store import Store
from tunelab.decide.cost import Usage, break_even, device, evens, oneoff_usd, pareto, per_1k_usd, table
from tunelab.decide.verdict import compare
from tunelab.methods import load_config
from tunelab.report.build import build, load_arms
from tunelab.run.grid import cells

CPU = CostConfig(cpu_usd_per_hour=3.6, gpu_usd_per_hour=36.0)
"""3.6 $/h = 0.001 $/s on the CPU, ten times that on a GPU: figures easy to check by hand."""


def local(dev="cpu", oneoff_s=0.0, latency_s=0.2) -> Usage:
    return Usage("a", dev, oneoff_s, latency_s, prompt_tokens=500, gen_tokens=50)


def test_cost_per_1k_requests_local_and_api():
    assert per_1k_usd(local("cpu"), CPU) == pytest.approx(0.2)  # 200 device s x 0.001 $/s
    assert per_1k_usd(local("cuda"), CPU) == pytest.approx(2.0)  # the GPU's price, not the CPU's
    assert per_1k_usd(local("cpu"), CostConfig(gpu_usd_per_hour=1.0)) is None  # CPU not priced
    assert per_1k_usd(local("unknown"), CPU) is None
    api = Usage("a", "api", 0.0, 3.0, prompt_tokens=500, gen_tokens=50)
    prices = CostConfig(api_input_usd_per_mtok=0.15, api_output_usd_per_mtok=0.6)
    # 1,000 requests: 500k prompt tokens x 0.15 + 50k generated x 0.6, per million
    assert per_1k_usd(api, prices) == pytest.approx(0.075 + 0.03)
    assert per_1k_usd(api, CPU) is None  # hourly prices do not price an API
    own = Usage("a", "api", 0.0, 3.0, 500, 50, api_prices=(1.0, None))  # the model's own price wins
    assert per_1k_usd(own, prices) == pytest.approx(0.5 + 0.03)


def test_one_off_cost_is_time_on_the_recorded_hardware():
    assert oneoff_usd(local("cpu", oneoff_s=360), CPU) == pytest.approx(0.36)
    assert oneoff_usd(local("cuda", oneoff_s=360), CPU) == pytest.approx(3.6)
    assert oneoff_usd(local("cpu", oneoff_s=360), CostConfig()) is None  # no price: no dollars
    assert oneoff_usd(local("unknown", oneoff_s=360), CPU) is None
    assert oneoff_usd(local("unknown", oneoff_s=0), CostConfig()) == 0.0  # nothing spent


def test_break_even_volume():
    # 10 $ once, saving 2 $ per 1,000 requests: even after 5,000
    assert break_even(10.0, 1.0, 0.0, 3.0) == pytest.approx(5000)
    assert break_even(10.0, 3.0, 0.0, 3.0) is None  # never cheaper: saves nothing per request
    assert break_even(10.0, 4.0, 0.0, 3.0) is None
    assert break_even(0.0, 1.0, 0.0, 3.0) == 0.0  # cheaper from the first request
    assert break_even(1.0, 1.0, 1.0, 1.0) is None  # the same cost is never cheaper


def test_pareto_front():
    assert pareto([(1, 0.5), (2, 0.9), (3, 0.8), (1, 0.4)]) == [True, True, False, False]
    assert pareto([(2, 0.5), (1, 0.5)]) == [False, True]  # as good and cheaper
    assert pareto([(1, 0.5), (1, 0.5)]) == [True, True]  # a tie hides neither


def test_device_of_runs_stored_before_it_was_recorded():
    assert device({"info": json.dumps({"device": "cuda"})}) == "cuda"
    assert device({"info": "{}", "versions": json.dumps({"torch": "2.13.0+cpu"})}) == "cpu"
    assert device({"info": "{}", "versions": json.dumps({"torch": "2.13.0"})}) == "unknown"
    cell = {"cell": {"model": {"backend": "openai"}}}
    assert device({"info": None, "config": json.dumps(cell), "versions": "{}"}) == "api"


def test_cost_block_is_checked_when_the_config_is_read(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cost: {cpu_usd_per_hour: 0.1, requests_per_day: 5000}\n")
    got = load_config(cfg).cost
    assert (got.cpu_usd_per_hour, got.requests_per_day, got.gpu_usd_per_hour) == (0.1, 5000.0, None)
    for bad, want in (("{cpu_usd_per_hour: -1}", "config.cost.cpu_usd_per_hour: must be a number >= 0"),
                      ("{gpu_usd_per_hour: .nan}", "config.cost.gpu_usd_per_hour: must be a number >= 0"),
                      ("{api_input_usd_per_mtok: cheap}", "config.cost.api_input_usd_per_mtok: "),
                      ("{cpu_usd_per_hr: 1}", "config.cost: unknown key 'cpu_usd_per_hr'")):
        cfg.write_text(f"cost: {bad}\n")
        with pytest.raises(TunelabError, match="^" + re.escape(f"{cfg}: {want}")):
            load_config(cfg)


def test_cost_block_enters_no_cell_key():
    plain = RunConfig(methods=[MethodConfig(name="zero_shot"), MethodConfig(name="lora", train_sizes=[8])])
    priced = RunConfig(methods=plain.methods, cost=CostConfig(cpu_usd_per_hour=1.0, requests_per_day=9))
    assert [c.key for c in cells(plain, 100)] == [c.key for c in cells(priced, 100)]


def pattern(n: int, right: int, start: int = 0) -> list[float]:
    out = np.zeros(n)
    out[start:start + right] = 1.0
    return out.tolist()


def add(store: Store, method: str, scores: list[float], train_s: float = 0.0, latency: float = 0.1,
        dev: str = "cpu", cfg: dict | None = None) -> None:
    """A finished run as a grid stores it, with its measured seconds and device."""
    m = MethodConfig(name=method)
    n = 50 if method != "zero_shot" else 0
    cell = {"method": to_dict(m), "model": to_dict(ModelConfig(name="m")), "train_size": n, "seed": 0,
            "train": to_dict(TrainConfig())}
    key = f"{method}-{len(store.runs())}"
    store.begin(key, {"task": "viggo", "model": "m", "method": method, "label": method,
                      "train_size": n, "n_train": n, "seed": 0, "versions": {}, "git_commit": "x",
                      "config": {"task": {"name": "viggo"}, **(cfg or {}), "cell": cell}})
    rows = [{"idx": i, "example_id": f"e{i}", "input": "i", "target": "t", "prediction": "p",
             "scores": {"mr_exact": s, "slot_f1": s}, "prompt_tokens": 100, "gen_tokens": 10,
             "latency_s": latency} for i, s in enumerate(scores)]
    v = float(np.mean(scores))
    store.finish(key, {"info": {"prompts": ["p"], "device": dev, "latency_s_mean": latency},
                       "train_seconds": train_s, "eval_seconds": 1.0, "prompt_tokens_mean": 100.0,
                       "gen_tokens_mean": 10.0},
                 {"mr_exact": (v, v, v), "slot_f1": (v, v, v)}, {"mr_exact": True, "slot_f1": True}, rows)


def by_arm(rows: list[dict]) -> dict[str, dict]:
    return {r["arm"]: r for r in rows}


def test_break_even_against_the_best_prompting_arm_it_matches(tmp_path):
    """lora equals few_shot on every example (within the margin): it is set against
    few_shot, the best prompting arm, not dynamic_few_shot or zero_shot (also below it);
    100 s of training is earned back at (0.5 - 0.1) device s per request after 250
    requests, whatever the price."""
    s = Store(tmp_path / "s.db")
    add(s, "dynamic_few_shot", pattern(100, 30), latency=0.05)
    add(s, "zero_shot", pattern(100, 10), latency=0.05)
    add(s, "few_shot", pattern(100, 60), latency=0.5)
    add(s, "lora", pattern(100, 60), train_s=100.0, latency=0.1)
    arms = load_arms(s)
    (unpriced,) = evens(arms, "slot_f1", 2.0, CostConfig())
    assert (unpriced["against"], unpriced["kind"], unpriced["unit"]) == ("few_shot", "equivalent", "s")
    assert unpriced["requests"] == pytest.approx(250)
    (priced,) = evens(arms, "slot_f1", 2.0, CostConfig(cpu_usd_per_hour=3.6, requests_per_day=100))
    assert (priced["unit"], priced["requests"], priced["days"]) == \
        ("usd", pytest.approx(250), pytest.approx(2.5))
    assert priced["line"] == ("lora n=50 is within 2 points of few_shot and becomes cheaper in dollars "
                              "after 250 requests (2.5 days at 100 requests per day).")


def test_quality_is_judged_by_the_paired_comparison_not_the_mean(tmp_path):
    """lora's mean is above few_shot's, but the paired comparison is undecided: few_shot is
    not shown to be of equal or lower quality, so lora is set against zero_shot, which it
    beats; where lora is cheaper per request only than few_shot, it is never cheaper."""
    s = Store(tmp_path / "s.db")
    add(s, "zero_shot", pattern(50, 5), latency=0.05)
    add(s, "few_shot", pattern(50, 20), latency=0.5)
    add(s, "lora", pattern(50, 25, start=3), train_s=100.0, latency=0.1)
    arms = load_arms(s)
    lora, few = (next(a for a in arms if a.method == m) for m in ("lora", "few_shot"))
    assert lora.ci["slot_f1"][0] > few.ci["slot_f1"][0]
    assert compare(lora, few, "slot_f1", 2.0).kind == "undecided"
    (row,) = evens(arms, "slot_f1", 2.0, CostConfig())
    assert (row["against"], row["kind"], row["requests"]) == ("zero_shot", "better", None)
    assert row["line"] == ("lora n=50 beats zero_shot, but is never cheaper in cpu seconds (no prices; "
                           "same hardware): it costs no less per request.")


def test_no_prompting_arm_at_or_below_and_hardware_without_a_price(tmp_path):
    s = Store(tmp_path / "s.db")
    add(s, "few_shot", pattern(100, 60), latency=0.5)
    add(s, "lora", pattern(100, 10), train_s=100.0, latency=0.1)
    (row,) = evens(load_arms(s), "slot_f1", 2.0, CPU)
    assert row["against"] is None and row["requests"] is None
    assert "no prompting arm is shown equal (within 2 points) or lower on slot_f1" in row["line"]
    s = Store(tmp_path / "t.db")  # trained on a GPU, few-shot on the CPU: only the CPU is priced
    add(s, "few_shot", pattern(100, 60), latency=0.5)
    add(s, "lora", pattern(100, 60), train_s=100.0, latency=0.1, dev="cuda")
    (row,) = evens(load_arms(s), "slot_f1", 2.0, CostConfig(cpu_usd_per_hour=1.0))
    assert row["against"] == "few_shot" and row["unit"] is None and row["requests"] is None
    assert "needs prices for both" in row["line"]


def test_report_without_prices_shows_no_dollars(tmp_path):
    s = Store(tmp_path / "s.db")
    add(s, "few_shot", pattern(100, 60), latency=0.5)
    add(s, "lora", pattern(100, 60), train_s=100.0, latency=0.1)
    md, html = build(tmp_path / "s.db", tmp_path / "rep")
    section = md.read_text().split("## Cost and break-even")[1].split("![")[0]
    assert "No prices given" in section and not re.search(r"\$\d", section)
    assert "| lora n=50 | cpu | 100 | 100,000 | 10,000 | 100 | yes |" in section
    assert "after 250 requests" in section and "in cpu seconds" in section
    assert (tmp_path / "rep" / "pareto.png").stat().st_size > 0 and "Cost and break-even" in html.read_text()
    costs = table(load_arms(s), "slot_f1", 2.0, CostConfig())
    assert costs["unit"] == "s" and [r["front"] for r in costs["rows"]] == [False, True]


def test_report_uses_the_cost_block_stored_with_the_runs(tmp_path):
    s = Store(tmp_path / "s.db")
    cfg = {"cost": to_dict(CostConfig(cpu_usd_per_hour=3.6))}
    add(s, "few_shot", pattern(100, 60), latency=0.5, cfg=cfg)
    add(s, "lora", pattern(100, 60), train_s=100.0, latency=0.1, cfg=cfg)
    md, _ = build(tmp_path / "s.db", tmp_path / "rep")
    assert "| lora n=50 | cpu | 100 | $0.1 | 100,000 | 10,000 | 100 | $0.1 | yes |" in md.read_text()
    md, _ = build(tmp_path / "s.db", tmp_path / "rep", prices=CostConfig(cpu_usd_per_hour=36))
    assert "| lora n=50 | cpu | 100 | $1 | 100,000 | 10,000 | 100 | $1 | yes |" in md.read_text()


def test_priced_run_reuses_every_cell_and_reports_dollars(tmp_path, tiny_model_dir, viggo_dir):
    """Through the CLI on the tiny model: a grid run without prices, then the same grid
    with a cost block on the same store runs no cell again and prices the report."""
    from typer.testing import CliRunner

    from tests.conftest import write_config
    from tunelab.cli.main import app

    store = tmp_path / "runs" / "t.db"
    methods = "  - {name: zero_shot}\n  - {name: lora, train_sizes: [8]}\n"
    plain = write_config(tmp_path / "a.yaml", tiny_model_dir, viggo_dir, store, methods)
    r = CliRunner().invoke(app, ["run", str(plain)])
    assert r.exit_code == 0, r.output
    before = {row["id"]: row["finished"] for row in Store(store).runs("done")}
    assert {json.loads(row["info"])["device"] for row in Store(store).runs("done")} == {"cpu"}
    priced = write_config(tmp_path / "b.yaml", tiny_model_dir, viggo_dir, store, methods,
                          "cost: {cpu_usd_per_hour: 3600, requests_per_day: 1000}\n")
    r = CliRunner().invoke(app, ["run", str(priced), "--report-dir", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "2 cells, 2 already done" in r.output
    assert {row["id"]: row["finished"] for row in Store(store).runs("done")} == before
    text = (tmp_path / "rep" / "report.md").read_text()
    section = text.split("## Cost and break-even")[1].split("![")[0]
    assert "Prices (config `cost`, as given): cpu_usd_per_hour 3600; requests_per_day 1000." in section
    lora = next(line for line in section.splitlines() if line.startswith("| lora n=8 | cpu |"))
    # one-off: at 1 $ per second the dollars are the training seconds
    train_s = next(a for a in load_arms(Store(store)) if a.method == "lora").mean("train_seconds")
    assert lora.split(" | ")[3] == f"${train_s:.4g}"
    assert "Cost and break-even" in (tmp_path / "rep" / "report.html").read_text()


def test_shipped_cost_config_reuses_the_demos_cells():
    """configs/cost.yaml prices the demo: the same cells (keys), the same store."""
    demo, cost = load_config("configs/demo.yaml"), load_config("configs/cost.yaml")
    assert [c.key for c in cells(demo, 5000)] == [c.key for c in cells(cost, 5000)]
    assert cost.store == demo.store and cost.cost.cpu_usd_per_hour is not None


def test_prices_option_of_report(tmp_path):
    from typer.testing import CliRunner

    from tunelab.cli.main import app

    s = Store(tmp_path / "s.db")
    add(s, "few_shot", pattern(100, 60), latency=0.5)
    add(s, "lora", pattern(100, 60), train_s=100.0, latency=0.1)
    prices = tmp_path / "p.yaml"
    prices.write_text("cost: {cpu_usd_per_hour: 3.6}\n")
    ok = CliRunner().invoke(app, ["report", str(tmp_path / "s.db"), "-o", str(tmp_path / "r"),
                                  "--prices", str(prices)])
    assert ok.exit_code == 0, ok.output
    assert "| lora n=50 | cpu | 100 | $0.1 |" in (tmp_path / "r" / "report.md").read_text()
    prices.write_text("cost: {cpu_usd_per_hour: -3.6}\n")
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "s.db"), "-o", str(tmp_path / "r2"),
                                   "--prices", str(prices)])
    assert bad.exit_code != 0
    assert f"{prices}: config.cost.cpu_usd_per_hour: must be a number >= 0" in bad.output
    assert not (tmp_path / "r2").exists()


def test_api_arms_are_priced_by_their_tokens(tmp_path, viggo_dir, server, monkeypatch):  # noqa: F811
    """Through the openai backend (the loopback fake server of test_api): the run records
    "api" as its hardware and the report prices it by its measured tokens at the model's
    own prices (20 prompt tokens x 1 $/M + 7 generated x 2 $/M per request), not by time."""
    from typer.testing import CliRunner

    from tunelab.cli.main import app

    monkeypatch.setenv("TL_TEST_KEY", KEY)
    cfg = _config(tmp_path, viggo_dir, server, "  - {name: zero_shot}\n")
    r = CliRunner().invoke(app, ["run", str(cfg)])
    assert r.exit_code == 0, r.output
    (arm,) = load_arms(Store(tmp_path / "s.db"))
    assert json.loads(arm.runs[0]["info"])["device"] == "api"
    (row,) = table([arm], "slot_f1", 2.0, CostConfig(cpu_usd_per_hour=100.0))["rows"]
    assert row["device"] == "api" and row["usd_1k"] == pytest.approx(1000 * (20 * 1.0 + 7 * 2.0) / 1e6)
