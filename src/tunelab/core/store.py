"""SQLite results store (WAL): runs, metrics, per-example predictions.

A finished run is written in one transaction, so a crash never leaves half a run; a
cell that crashed stays 'running' (or 'failed' with its error) and is redone next time.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from pathlib import Path

from tunelab import TunelabError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,              -- the cell key: hash of the resolved cell config
  status TEXT NOT NULL,             -- running | done | failed
  task TEXT, method TEXT, label TEXT, model TEXT,
  train_size INTEGER, n_train INTEGER, n_test INTEGER, seed INTEGER,
  config TEXT,                      -- full run config + cell, JSON
  info TEXT,                        -- method info: cost, artifacts, prompts, JSON
  git_commit TEXT, versions TEXT,
  started REAL, finished REAL,
  train_seconds REAL, eval_seconds REAL, train_tokens INTEGER, trainable_params INTEGER,
  prompt_tokens_mean REAL, gen_tokens_mean REAL, peak_rss_mb REAL,
  error TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT, value REAL, lo REAL, hi REAL, higher_is_better INTEGER,
  PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS predictions (
  run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
  idx INTEGER, example_id TEXT, input TEXT, target TEXT, prediction TEXT, scores TEXT,
  prompt_tokens INTEGER, gen_tokens INTEGER, latency_s REAL,
  PRIMARY KEY (run_id, idx)
);
"""


class StoreError(TunelabError):
    """The store cannot be written (read-only file, full disk): the grid stops, nothing
    already stored is touched."""


def damaged(path: Path, e: Exception) -> TunelabError:
    """One line for a store SQLite cannot read (a corrupted page, not an SQLite file)."""
    return TunelabError(f"{path}: results store is damaged ({e}): move it aside and run again "
                        f"(finished cells are redone), or restore a copy; `sqlite3 {path} .recover` "
                        "may save its rows")


DAMAGE = ("malformed", "not a database", "file is encrypted")
"""SQLite's words for a damaged file (as opposed to a locked, read-only or full one)."""


def _is_damage(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.DatabaseError) and any(w in str(e) for w in DAMAGE)


def _guarded(writes: bool):
    """A damaged file becomes one line naming the store; a method that `writes` also turns
    any other SQLite failure into one line; a reading one lets it through unchanged."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except sqlite3.Error as e:
                if _is_damage(e):
                    raise damaged(self.path, e) from None
                if writes:
                    raise StoreError(f"{self.path}: cannot write results store: {e}") from None
                raise

        return wrapper

    return decorate


_reads, _writes = _guarded(writes=False), _guarded(writes=True)


class Store:
    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise TunelabError(f"{self.path}: no results store here (run `tunelab run` first)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if self.db.execute("SELECT name FROM sqlite_master WHERE name='runs'").fetchone() is None:
                self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise (damaged(self.path, e) if _is_damage(e) else
                   TunelabError(f"{self.path}: cannot open results store: {e}")) from None
        except OSError as e:
            raise TunelabError(f"{self.path}: cannot open results store: {e}") from None

    @_reads
    def status(self, key: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE id=?", (key,)).fetchone()
        return row["status"] if row else None

    @_writes
    def begin(self, key: str, fields: dict, replace: bool = False) -> bool:
        """Mark a cell running (replacing an earlier crashed or failed attempt, or with
        `replace` a finished one too); False if it is already done (another grid on this
        store finished it)."""
        with self.db:
            # The DELETE takes the write lock first, so check-and-claim is one step.
            self.db.execute("DELETE FROM runs WHERE id=? AND (status != 'done' OR ?)", (key, replace))
            cols = {"id": key, "status": "running", "started": time.time(), **fields}
            cur = self.db.execute(
                f"INSERT OR IGNORE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [_sql(v) for v in cols.values()],
            )
            return cur.rowcount == 1

    @_writes
    def finish(self, key: str, fields: dict, metrics: dict, higher: dict, rows: list[dict]):
        """Everything about a finished cell, in one transaction."""
        with self.db:
            cols = {**fields, "status": "done", "finished": time.time(), "error": None}
            self.db.execute(
                f"UPDATE runs SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?",
                [*(_sql(v) for v in cols.values()), key],
            )
            # Two grids on one store may both finish the same cell; same config and seed
            # give the same result, so the last writer simply replaces the first.
            self.db.execute("DELETE FROM metrics WHERE run_id=?", (key,))
            self.db.execute("DELETE FROM predictions WHERE run_id=?", (key,))
            self.db.executemany(
                "INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                [(key, n, m, lo, hi, int(higher[n])) for n, (m, lo, hi) in metrics.items()],
            )
            self.db.executemany(
                "INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(key, r["idx"], r["example_id"], r["input"], r["target"], r["prediction"],
                  json.dumps(r["scores"]), r["prompt_tokens"], r["gen_tokens"], r["latency_s"])
                 for r in rows],
            )

    @_writes
    def fail(self, key: str, error: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE runs SET status='failed', error=?, finished=? WHERE id=?",
                (error, time.time(), key),
            )

    @_writes
    def rename(self, ids: dict[str, str], fields: dict[str, dict] | None = None) -> None:
        """Give stored runs new ids (old -> new), their metrics and predictions with them,
        in one transaction (run/migrate.py); `fields`: columns to set on a renamed run, by
        its new id. An unfinished run under a new id is replaced; alias rows of the renamed
        runs (written by stores before key version 3) go."""
        with self.db:
            # the children follow their run within the transaction, so the check waits for its end
            self.db.execute("PRAGMA defer_foreign_keys=ON")
            for old, new in ids.items():
                self.db.execute("DELETE FROM runs WHERE id=? AND status != 'done'", (new,))
                self.db.execute("UPDATE runs SET id=? WHERE id=?", (new, old))
                for table in ("metrics", "predictions"):
                    self.db.execute(f"UPDATE {table} SET run_id=? WHERE run_id=?", (new, old))
            for new, cols in (fields or {}).items():
                self.db.execute(f"UPDATE runs SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?",
                                [*(_sql(v) for v in cols.values()), new])
            if self._has_aliases():
                self.db.executemany("DELETE FROM aliases WHERE run_id=?", [(o,) for o in ids])

    def _has_aliases(self) -> bool:
        return self.db.execute("SELECT name FROM sqlite_master WHERE name='aliases'").fetchone() is not None

    @_reads
    def aliases(self) -> dict[str, str]:
        """Cell key -> the run id it was stored under, recorded by grids before key version 3
        for cells found by an older key (run/migrate.py reads them)."""
        if not self._has_aliases():
            return {}
        return dict(self.db.execute("SELECT key, run_id FROM aliases").fetchall())

    @_reads
    def runs(self, status: str | None = None) -> list[dict]:
        q = "SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY started"
        return [dict(r) for r in self.db.execute(q, (status,) if status else ())]

    @_reads
    def run(self, prefix: str) -> dict:
        rows = self.db.execute("SELECT * FROM runs WHERE id LIKE ?", (prefix + "%",)).fetchall()
        if len(rows) != 1:
            raise TunelabError(f"run '{prefix}': {'no' if not rows else 'ambiguous'} match in {self.path}")
        return dict(rows[0])

    @_reads
    def metrics(self, run_id: str) -> dict[str, dict]:
        rows = self.db.execute("SELECT * FROM metrics WHERE run_id=?", (run_id,))
        return {r["name"]: dict(r) for r in rows}

    @_reads
    def predictions(self, run_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM predictions WHERE run_id=? ORDER BY idx", (run_id,))
        return [{**dict(r), "scores": json.loads(r["scores"])} for r in rows]


def _sql(v):
    return json.dumps(v, default=str) if isinstance(v, dict | list) else v
