"""`tunelab probe ...`: the facts-vs-form probes from the command line."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tunelab import TunelabError
from tunelab.core.ui import console, say
from tunelab.core.ui import fail as _fail

probe_app = typer.Typer(no_args_is_help=True,
                        help="What fine-tuning can and cannot teach: form versus facts.")

STORE = "runs/probes.db"
OUT = "runs/probes"


def _ints(text: str, option: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or min(vals) < 1:
        raise TunelabError(f"{option}: expected positive integers separated by commas, got {text!r}")
    return sorted(set(vals))


def _methods(text: str) -> list[str]:
    from tunelab.probes import FINE_TUNES

    out = [m.strip() for m in text.split(",") if m.strip()]
    for m in out:
        if m not in FINE_TUNES:
            raise TunelabError(f"--methods: unknown method '{m}'. Available: {', '.join(FINE_TUNES)}")
    return out


OUT_HELP = "Folder to write the probe report (report.md, report.html) into."
JSON_HELP = "Print the verdicts and the report's paths as JSON on stdout."


def _verdicts(db, probe: str | None) -> list[str]:
    """The probe's verdict lines (both probes' when `probe` is None)."""
    from tunelab.probes import summary

    lines = []
    if probe in (None, "facts"):
        lines += summary.facts_lines(summary.load(db, "facts"))
    if probe in (None, "substitute"):
        lines += summary.substitute_lines(summary.load(db, "substitute"))
    return lines


def _results(lines: list[str], md, html, as_json: bool) -> None:
    """Verdicts and report paths: results, so on stdout."""
    if as_json:
        from tunelab.cli.output import print_json

        print_json({"verdicts": lines, "report": {"html": str(html), "md": str(md)}})
        return
    for line in lines:
        say(f"- {line}")
    say(f"report: {html} (and {md})")


def _run(probe: str, settings, store: str, out: str, as_json: bool = False) -> None:
    """Load the model, run the probe into the store, rebuild the report, print verdicts."""
    import importlib

    from tunelab.backends.registry import timed_load
    from tunelab.core.config import ModelConfig
    from tunelab.core.store import Store
    from tunelab.probes import PROBES, summary

    t0 = time.perf_counter()
    db = Store(store)
    model, tok, secs = timed_load(ModelConfig(name=settings.model))
    if tok is None:
        raise TunelabError("probes need a local model (weights), not an API backend")
    console.print(f"model {settings.model} loaded in {secs:.1f} s")
    importlib.import_module(PROBES[probe]).run(settings, model, tok, db)
    md, html = summary.build(store, out)
    _results(_verdicts(db, probe), md, html, as_json)
    console.print(f"wall time: {time.perf_counter() - t0:.0f} s")


@probe_app.command("substitute")
def substitute_cmd(
    corpus: Path = typer.Option(None, help="Plain-text corpus (default: tiny Shakespeare)."),
    old: str = typer.Option("Romeo", help="Name replaced in the corpus."),
    new: str = typer.Option("Bob", help="Name put in its place."),
    model: str = typer.Option("smollm2-135m", help="Packaged alias, local path or hub id."),
    methods: str = typer.Option("lora,full", help="Fine-tunes to compare: lora, full."),
    steps: str = typer.Option("15,45", help="Checkpoints (optimizer steps) measured in one run."),
    scope: str = typer.Option("play", help="play: the stretch naming the character; all: everything."),
    samples: int = typer.Option(20, help="Samples per generation prompt."),
    seed: int = typer.Option(0),
    store: str = typer.Option(STORE, "--store", help="Results store the probe writes."),
    out: str = typer.Option(OUT, "-o", "--out", help=OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Rename a character, fine-tune, and measure which level moved: form, surface, fact."""
    from tunelab.probes.substitute import SubstituteSettings

    try:
        from tunelab.data.datasource import resolve

        corpus = corpus or resolve("tiny_shakespeare") / "input.txt"
        s = SubstituteSettings(corpus=str(corpus), old=old, new=new, model=model, methods=_methods(methods),
                               steps=_ints(steps, "--steps"), scope=scope, samples=samples, seed=seed)
        _run("substitute", s, store, out, as_json)
    except TunelabError as e:
        _fail(e)


@probe_app.command("facts")
def facts_cmd(
    kb: Path = typer.Option(None, help="Knowledge base JSONL (default: the shipped invented facts)."),
    unanswerable: Path = typer.Option(None, help="Unanswerable questions JSONL."),
    general: Path = typer.Option(None, help="General questions JSONL (forgetting)."),
    general_text: Path = typer.Option(None, help="Held-out general text, JSON/JSONL with output or text."),
    model: str = typer.Option("smollm2-135m", help="Packaged alias, local path or hub id."),
    methods: str = typer.Option("lora,full", help="Fine-tunes to compare: lora, full."),
    epochs: str = typer.Option("2,5,10", help="Epoch counts measured in one training run."),
    augment: int = typer.Option(2, help="Model paraphrases per fact for the augmented arm (0: none)."),
    fact_counts: str = typer.Option("10,20", help="Learnability vs number of facts (LoRA)."),
    replay: float = typer.Option(0.0, help="Share of general instruction examples in the training "
                                 "mix of an extra '<method> + replay' arm per fine-tune (0: none; "
                                 "0.5: as many as facts)."),
    baselines: bool = typer.Option(True, help="In-context, RAG and RAG + LoRA arms (--no-baselines: "
                                   "closed-book and fine-tuned arms only, cheaper)."),
    replay_data: Path = typer.Option(None, help="Replay examples, JSON/JSONL with instruction, input, output "
                                     "(default: $TUNELAB_DATA_DIR/alpaca/alpaca_5000.json)."),
    seed: int = typer.Option(0),
    store: str = typer.Option(STORE, "--store", help="Results store the probe writes."),
    out: str = typer.Option(OUT, "-o", "--out", help=OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Teach invented facts by fine-tuning, in context and by retrieval; score near, paraphrase,
    reversal, hallucination and forgetting."""
    from tunelab.probes.facts import FactsSettings
    from tunelab.probes.replay import replay_count

    try:
        replay_count(1, replay)  # a bad fraction fails here, before the model loads
        s = FactsSettings(model=model, methods=_methods(methods), epochs=_ints(epochs, "--epochs"),
                          augment=augment, fact_counts=_ints(fact_counts, "--fact-counts"), seed=seed,
                          general_text=str(general_text or ""), replay=replay,
                          replay_data=str(replay_data or ""), baselines=baselines)
        for name, path in (("kb", kb), ("unanswerable", unanswerable), ("general", general)):
            if path:
                setattr(s, name, str(path))
        _run("facts", s, store, out, as_json)
    except TunelabError as e:
        _fail(e)


@probe_app.command("report")
def report_cmd(store: str = typer.Option(STORE, "--store", help="Results store of the probes."),
               out: str = typer.Option(OUT, "-o", "--out", help=OUT_HELP),
               as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """Rebuild the facts-vs-form report from the stored probe runs; print the verdicts."""
    from tunelab.core.store import Store
    from tunelab.probes import summary

    try:
        md, html = summary.build(store, out)
        lines = _verdicts(Store(store, create=False), None)
    except TunelabError as e:
        _fail(e)
    _results(lines, md, html, as_json)
