"""SQLite results store (WAL): runs, metrics, per-example predictions.

A finished run is written in one transaction (`record`), so a crash never leaves half a
run; a cell that crashed stays 'running' (or 'failed' with its error) and is redone next
time. Every run has a `kind` (KINDS); readers filter on it.
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
  kind TEXT NOT NULL DEFAULT 'cell', -- cell | probe | export (KINDS)
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


KINDS = ("cell", "probe", "export")
"""What a run is: a grid cell (claimed by `begin` while it runs, completed by `record`), a
probe's arm (probes/) or an exported artifact re-scored (ship/verify.py); the last two are
written whole by `record`. Only cells are arms of the report (decide/arms.py)."""

LEGACY_KIND = ("CASE WHEN method LIKE 'probe:%' THEN 'probe' WHEN method LIKE 'export:%' THEN 'export' "
               "ELSE 'cell' END")
"""The kind of a run in a store written before the kind column, from the method prefixes that
told them apart then; used once, when such a store is opened (Store._add_kind)."""


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
            self._columns = "*" if self._add_kind() else f"*, {LEGACY_KIND} AS kind"
        except sqlite3.Error as e:
            raise (damaged(self.path, e) if _is_damage(e) else
                   TunelabError(f"{self.path}: cannot open results store: {e}")) from None
        except OSError as e:
            raise TunelabError(f"{self.path}: cannot open results store: {e}") from None

    def _add_kind(self) -> bool:
        """Give an older store its kind column (its rows' kinds from LEGACY_KIND); False where
        the file cannot be written (a read-only copy), which is then read with kinds derived."""
        if any(c["name"] == "kind" for c in self.db.execute("PRAGMA table_info(runs)")):
            return True
        try:
            with self.db:
                self.db.execute("ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'cell'")
                self.db.execute(f"UPDATE runs SET kind = {LEGACY_KIND}")
        except sqlite3.OperationalError as e:
            if "readonly" not in str(e):
                raise
            return False
        return True

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

    def finish(self, key: str, fields: dict, metrics: dict, higher: dict, rows: list[dict]):
        """Everything about a finished cell (claimed by `begin`), in one transaction."""
        self.record("cell", key, fields, metrics, higher, rows)

    @_writes
    def record(self, kind: str, key: str, fields: dict, metrics: dict, higher: dict, rows: list[dict]):
        """The one writer of a finished run, in one transaction: its row, metrics (name ->
        (mean, lo, hi), `higher` name -> higher is better) and per-example `rows`. A cell's
        row, claimed by `begin`, is completed; a probe arm or an export is written whole,
        replacing an earlier attempt under its key."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of run '{kind}'. Available: {', '.join(KINDS)}")
        now = time.time()
        with self.db:
            if kind != "cell":
                self.db.execute("DELETE FROM runs WHERE id=?", (key,))
            cols = {"id": key, "started": now, **fields, "kind": kind, "status": "done", "finished": now,
                    "error": None}
            update = ", ".join(f"{c}=excluded.{c}" for c in cols if c not in ("id", "started"))
            self.db.execute(  # a claimed cell keeps its row's other columns and when it started
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT(id) DO UPDATE SET {update}",
                [_sql(v) for v in cols.values()],
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
    def runs(self, status: str | None = None, kind: str | None = None) -> list[dict]:
        """Runs in the order they started, of one status and one kind (KINDS) if given."""
        where = {c: v for c, v in (("status", status), ("kind", kind)) if v}
        q = (f"SELECT * FROM (SELECT {self._columns} FROM runs)"
             + (" WHERE " + " AND ".join(f"{c}=?" for c in where) if where else "") + " ORDER BY started")
        return [dict(r) for r in self.db.execute(q, tuple(where.values()))]

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
