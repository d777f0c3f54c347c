"""mkdocs hook (mkdocs.yml `hooks:`): the generated pages of the docs site.

- reference/config.md: every config key (each config dataclass's fields, then each
  method's own settings) with its type, default and field docstring (config.field_docs);
- reference/cli.md: every command, argument and option of the typer app (click's view of it);
- results.md: every result file under results/, rendered by scripts/render_results.py;
- benchmarks.md: BENCHMARKS.md.

They are made at build time from the code and the files, never committed, so they cannot
drift. `make docs` builds the site; tests/test_docs.py checks what these functions return.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This checkout's code, not another install's. Imported now: mkdocs restores sys.path once
# the hook is loaded, and a package's submodules are then found through its own __path__.
for _p in (ROOT / "src", ROOT / "scripts"):
    sys.path.insert(0, str(_p))
import render_results  # noqa: E402

import tunelab  # noqa: E402, F401

SECTIONS = [("", "RunConfig", "Top-level keys of a run config."),
            ("task", "TaskConfig", "The task and its data."),
            ("model", "ModelConfig", "The model (also each entry of `models:`)."),
            ("train", "TrainConfig", "Training settings (a method's or a stage's `train:` overrides them)."),
            ("eval", "EvalConfig", "Generation and confidence intervals."),
            ("report", "ReportConfig", "How the report judges differences."),
            ("cost", "CostConfig", "Prices for the cost and break-even table."),
            ("export", "ExportConfig", "Export and re-score the best fine-tuned arm."),
            ("methods[].stages[]", "StageConfig", "Training stages run before a method.")]
"""Config sections in reading order: (where the keys go in YAML, dataclass name, one line)."""


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return "(section)"
    elif f.default is dataclasses.MISSING:
        return "(required)"
    else:
        value = f.default
    # a list of sections (methods) is shown by name, as a config would write it
    return f"`{json.dumps(value, default=lambda o: {'name': getattr(o, 'name', str(o))})}`"


def inherited_docs(cls) -> dict[str, str]:
    """field_docs over the class and its dataclass bases (a method's settings inherit
    `prompt` and `k` from base classes)."""
    from tunelab.core.config import field_docs

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(field_docs(klass))
    return docs


def key_rows(cls, keys: list[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, docstring) for each field of dataclass `cls` (or only `keys`)."""
    docs = inherited_docs(cls)
    return [(f.name, str(f.type), _default(f), docs.get(f.name, ""))
            for f in dataclasses.fields(cls) if keys is None or f.name in keys]


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows) -> list[str]:
    out = ["| key | type | default | what it does |", "|---|---|---|---|"]
    out += [f"| `{k}` | `{t}` | {d} | {_cell(doc)} |" for k, t, d, doc in rows]
    return out


def spec_facts(spec) -> str:
    """What a method's spec declares besides its settings, in words."""
    facts = ["trains weights" if spec.trains else "prompting only"]
    if not spec.needs_local_model:
        facts.append("also runs against an API model")
    if spec.lr is not None:
        facts.append(f"default lr {spec.lr:g}")
    if spec.saved:
        facts.append(f"`tunelab export` ships its {spec.saved}" + (", or merged" if spec.mergeable else ""))
    if spec.stage:
        facts.append(f"runs as stage kind `{spec.stage}`")
    return "; ".join(facts)


def config_reference() -> str:
    from tunelab.core import config
    from tunelab.methods import METHODS
    from tunelab.methods.base import COMMON

    lines = ["# Configuration reference", "",
             "Generated from the config dataclasses' field docstrings (`src/tunelab/core/config*.py`) "
             "and each method's own settings (`src/tunelab/methods/`). An unknown key fails when "
             "the config is read, naming the file and the key.", ""]
    for where, name, about in SECTIONS:
        lines += [f"## `{where or 'top level'}`", "", about, "", *_table(key_rows(getattr(config, name))), ""]
    lines += ["## `methods[]`", "", "Keys every method entry takes; every other key is one of the "
              "method's own settings (below).", "", *_table(key_rows(config.MethodConfig, list(COMMON))), ""]
    for mname, spec in METHODS.items():
        lines += [f"### `{mname}`", "", f"`name: {mname}` ({spec_facts(spec)}). Its own settings:", "",
                  *_table(key_rows(spec.settings)), ""]
    return "\n".join(lines)


def _param_row(p) -> str:
    names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
    if p.param_type_name == "argument":
        names = f"`{p.name.upper()}` (argument)"
    default = "" if p.default is None or callable(p.default) else f"`{p.default}`"
    if p.required:
        default = "required"
    return f"| {names} | {_type_name(p)} | {default} | {_cell(getattr(p, 'help', None) or '')} |"


def _type_name(p) -> str:
    """The parameter's type as the code annotates it (typer >= 0.25 keeps the annotation;
    click's own parameters carry a named type)."""
    ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    if ann is None:
        return getattr(getattr(p, "type", None), "name", "")
    generic = typing.get_origin(ann) is not None  # list[Path] keeps its item type
    return (str(ann) if generic else getattr(ann, "__name__", str(ann))).replace("pathlib.", "")


def _command_docs(cmd, path: str, level: int) -> list[str]:
    """A command's help and parameters, then its subcommands' (typer vendors click, so a group
    is told by its `commands`, not by click's classes)."""
    lines = [f"{'#' * level} `{path}`", "", (cmd.help or "").strip(), ""]
    params = [p for p in cmd.params if p.name != "help"]
    if params:
        lines += ["| argument / option | type | default | help |", "|---|---|---|---|",
                  *[_param_row(p) for p in params], ""]
    if hasattr(cmd, "commands"):
        for name, sub in sorted(cmd.commands.items()):
            lines += _command_docs(sub, f"{path} {name}", min(level + 1, 3))
    return lines


def cli_reference() -> str:
    import typer

    from tunelab.cli.main import app

    root = typer.main.get_command(app)
    lines = ["# Command-line reference", "",
             "Generated from the typer app (`src/tunelab/cli/main.py`); `tunelab COMMAND --help` prints "
             "the same.", ""]
    lines += _command_docs(root, "tunelab", 1)[2:]  # the app's help, then its commands
    return "\n".join(lines)


def results_page() -> str:
    lines = ["# Results", "",
             "Every result file in the repository's `results/` folder, rendered: the JSON "
             "`tunelab run --json` (or a bench script) wrote, with the command and the machine.", ""]
    files = sorted(render_results.RESULTS.glob("*.json"))
    for path in files:
        lines += [f"## `results/{path.name}`", "", render_results.full(json.loads(path.read_text())), ""]
    if not files:
        lines.append("No result file yet.")
    return "\n".join(lines)


def benchmarks_page() -> str:
    """BENCHMARKS.md as it is in the repository (its tables rendered from results/bench_*.json)."""
    return (ROOT / "BENCHMARKS.md").read_text()


PAGES = {"reference/config.md": config_reference, "reference/cli.md": cli_reference,
         "results.md": results_page, "benchmarks.md": benchmarks_page}


def on_files(files, config):  # mkdocs hook
    from mkdocs.structure.files import File

    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files
