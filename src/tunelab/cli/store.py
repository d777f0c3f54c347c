"""Which results store a command reads, found the same way by every command:

1. `--store PATH`, when given;
2. else the `store:` of the one tunelab config in the current folder (the only *.yaml/*.yml
   file there with a `store:` key);
3. else the most recently written *.db under runs/ (what `tunelab run` and `make demo` write).

One line on stderr says which store was picked and why, so a script can see it.

`tunelab store migrate CONFIG` moves a store written with older cell keys onto today's
(run/migrate.py); `tunelab run` does the same on its own before it computes anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from tunelab import TunelabError
from tunelab.core.ui import console, fail, out

RUNS = Path("runs")

store_app = typer.Typer(no_args_is_help=True, help="Maintain a results store.")


@store_app.command("migrate")
def migrate_cmd(
    config: Path = typer.Argument(..., help="YAML run config whose cells the store holds."),
    store: str = typer.Option(None, "--store", help="Results store (overrides the config's `store:`)."),
):
    """Give the finished runs a store holds under older cell keys (stores written before key
    version 3) the keys of the config's cells, once, so they are reused; prints how many."""
    from tunelab.methods import load_config
    from tunelab.run.grid import migrate_config
    from tunelab.run.keys import KEY_VERSION

    try:
        cfg = load_config(config)
        if store:
            cfg.store = store
        moved = migrate_config(cfg)
    except TunelabError as e:
        fail(e)
    out.print(f"{cfg.store}: migrated {moved} stored cells to key version {KEY_VERSION}",
              highlight=False, soft_wrap=True)


def config_store(folder: Path = Path(".")) -> tuple[str, Path] | None:
    """(store, config) of the one config in `folder` that names a store, else None."""
    found = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue  # not a config of ours: ignored, as any other file here
        if isinstance(data, dict) and isinstance(data.get("store"), str):
            found.append((data["store"], path))
    return found[0] if len(found) == 1 else None


def latest_store(runs: Path = RUNS) -> Path | None:
    """The most recently modified *.db under runs/ (its -wal file counts as the store)."""
    def written(db: Path) -> float:
        wal = db.with_name(db.name + "-wal")
        return max(db.stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)

    dbs = [p for p in runs.rglob("*.db") if p.is_file()] if runs.is_dir() else []
    return max(dbs, key=written) if dbs else None


def pick_store(store: str | None) -> str:
    """The store a reading command uses (see the module docstring), announced on stderr."""
    if store:
        return store
    named = config_store()
    if named:
        console.print(f"store: {named[0]} (named by {named[1]}; --store to choose another)",
                      highlight=False, soft_wrap=True)
        return named[0]
    latest = latest_store()
    if latest:
        console.print(f"store: {latest} (the most recent under {RUNS}/; --store to choose another)",
                      highlight=False, soft_wrap=True)
        return str(latest)
    raise TunelabError(f"no results store: none given (--store), no config here names one, and "
                       f"none under {RUNS}/ (run `tunelab run CONFIG` first)")


def report_dir(store: str) -> Path:
    """Where `tunelab report` writes unless told: where `tunelab run` wrote (the runs' stored
    out_dir/report, when they agree), else a report/ folder next to the store."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        rows = con.execute("SELECT config FROM runs WHERE status='done'").fetchall()
        con.close()
        outs = {json.loads(c or "{}").get("out_dir") for (c,) in rows}
    except (sqlite3.Error, ValueError):
        outs = set()  # the store's own error is raised by the report, naming the file
    if len(outs) == 1 and (out := outs.pop()):
        return Path(out) / "report"
    return Path(store).parent / "report"
