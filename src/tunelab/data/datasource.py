"""Where a task's data folder comes from, in this order:

1. `task.data_dir` in the config;
2. `$TUNELAB_DATA_DIR/<folder>`, a local mirror, if that folder exists;
3. the copy shipped inside the package (`tunelab/data/datasets/<folder>`, each with SOURCE.md);
4. a copy exported earlier from the public dataset (`$TUNELAB_CACHE/data/<folder>`);
5. the public dataset, fetched by its id through `datasets.load_dataset` and written in
   the files the task reads (online users; HF_DATASETS_OFFLINE=1 turns this off).

When none is available, one TunelabError line names the mirror path and the dataset id.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunelab import TunelabError

SHIPPED = Path(__file__).parent / "datasets"
"""The data the demo and the tests use, shipped with the package (see each SOURCE.md)."""


def mirror_root() -> Path | None:
    """$TUNELAB_DATA_DIR if set (a folder of <folder>/ mirrors), else None."""
    env = os.environ.get("TUNELAB_DATA_DIR")
    return Path(env) if env else None


def cache_dir() -> Path:
    # as models.cache_root, without importing torch for a path
    return Path(os.environ.get("TUNELAB_CACHE", Path.home() / ".cache" / "tunelab")) / "data"


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _viggo(ds, dest: Path) -> None:
    for split in ("train", "validation", "test"):
        with open(dest / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["mr", "ref"])
            w.writerows((r["meaning_representation"], r["target"]) for r in ds[split])


def _gsm8k(ds, dest: Path) -> None:
    for split in ("train", "test"):
        _write_jsonl(dest / f"{split}.jsonl", ({"question": r["question"], "answer": r["answer"]}
                                               for r in ds[split]))


def _sql(ds, dest: Path) -> None:
    _write_jsonl(dest / "sql_create_context_subset.jsonl",
                 ({"question": r["question"], "context": r["context"], "answer": r["answer"]}
                  for r in ds["train"]))


def _shakespeare(ds, dest: Path) -> None:
    # the dataset keeps the file's three consecutive parts as one text each
    text = "".join(ds[s][0]["text"] for s in ("train", "validation", "test"))
    (dest / "input.txt").write_text(text, encoding="utf-8")


def _alpaca(ds, dest: Path) -> None:
    # a seeded 5,000-row sample, as the mirror's alpaca_5000.json is (not the same rows)
    rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in ds["train"]]
    sample = random.Random(0).sample(rows, min(5000, len(rows)))
    (dest / "alpaca_5000.json").write_text(json.dumps(sample, ensure_ascii=False), encoding="utf-8")


@dataclass(frozen=True)
class Public:
    """A public dataset and how to write it as the files the task reads."""

    id: str
    config: str | None
    export: Callable[[object, Path], None]


PUBLIC: dict[str, Public] = {
    "viggo": Public("GEM/viggo", None, _viggo),
    "gsm8k": Public("openai/gsm8k", "main", _gsm8k),
    "sql_create_context": Public("b-mc2/sql-create-context", None, _sql),
    "tiny_shakespeare": Public("karpathy/tiny_shakespeare", None, _shakespeare),
    "alpaca": Public("tatsu-lab/alpaca", None, _alpaca),
}
"""Task folder -> public dataset id. sharegpt_fastchat_dummy ships whole and has none."""


def _fetch(folder: str, pub: Public) -> Path:
    """Export the public dataset into the cache (written whole, then renamed into place)."""
    import datasets

    dest = cache_dir() / folder
    tmp = dest.with_name(f"{folder}.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        pub.export(datasets.load_dataset(pub.id, pub.config), tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / "SOURCE.md").write_text(f"Exported by tunelab from the public dataset `{pub.id}` "
                                   f"(config {pub.config}); see its dataset card for the licence.\n")
    tmp.rename(dest)
    return dest


def resolve(folder: str) -> Path:
    """The folder holding a task's files (see the module docstring for the order)."""
    mirror = mirror_root()
    candidates = ([mirror / folder] if mirror else []) + [SHIPPED / folder, cache_dir() / folder]
    for c in candidates:
        if c.is_dir():
            return c
    pub = PUBLIC.get(folder)
    where = mirror / folder if mirror else Path("$TUNELAB_DATA_DIR") / folder
    if pub is None:
        raise TunelabError(f"data for '{folder}' not found: put it in {where} (no public dataset id known)")
    try:
        return _fetch(folder, pub)
    except Exception as e:  # offline, unknown id, changed columns: one line naming both
        raise TunelabError(f"data for '{folder}' not found: no local mirror at {where} and the public "
                           f"dataset '{pub.id}' could not be loaded ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


def data_dir() -> Path:
    """Where relative data paths in a config (stages, distillation inputs) are looked up:
    $TUNELAB_DATA_DIR if set, else the shipped data."""
    return mirror_root() or SHIPPED
