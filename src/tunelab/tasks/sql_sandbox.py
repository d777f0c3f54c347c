"""Run untrusted SQL (model output) against small generated databases, safely.

Each query gets a fresh in-memory SQLite database: tables are built from the task's
CREATE TABLE context and filled with a few rows generated deterministically from a seed.
`execution_match` runs every query in `tunelab.tasks.sql_jail`'s child process: an authorizer denies
ATTACH, DETACH, PRAGMA, load_extension and every write; a progress handler aborts it after
a time limit (so `WITH RECURSIVE` loops end) and a hard kill ends what the handler cannot
(one long C call); the child's memory is capped; at most `max_rows` rows are fetched and
strings/blobs are capped in size. Nothing here raises for a bad query: the result carries
the error instead.

Execution accuracy compares result multisets of the gold and predicted query on several
databases (like test-suite accuracy): rows reuse the literals of the gold query, so its
WHERE clauses select something and an empty-vs-empty match is rare, not the norm.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

import tunelab.tasks.sql_jail as jail
from tunelab.tasks.sql_jail import MAX_ROWS, TIME_LIMIT_S, Jail, connect

ROWS_PER_TABLE = 6
N_DATABASES = 3
JAIL = Jail()
"""The child process every `execution_match` query runs in (started on first use)."""


@dataclass
class Result:
    rows: list[tuple] | None
    error: str = ""


@dataclass
class Column:
    name: str
    kind: str
    """'int', 'real' or 'text' (SQLite type affinity)."""


def _affinity(type_sql: str) -> str:
    t = type_sql.upper()
    if "INT" in t:
        return "int"
    if any(k in t for k in ("REAL", "FLOA", "DOUB", "DEC", "NUM")):
        return "real"
    return "text"


def parse_schema(context: str) -> dict[str, list[Column]]:
    """Tables and typed columns of CREATE TABLE statements.

    >>> s = parse_schema("CREATE TABLE head (age INTEGER, name VARCHAR); CREATE TABLE t (x REAL)")
    >>> [(t, [(c.name, c.kind) for c in cols]) for t, cols in s.items()]
    [('head', [('age', 'int'), ('name', 'text')]), ('t', [('x', 'real')])]
    """
    tables: dict[str, list[Column]] = {}
    tables_ci: dict[str, str] = {}
    for stmt in sqlglot.parse(context, read="sqlite"):
        if not isinstance(stmt, exp.Create) or not isinstance(stmt.this, exp.Schema):
            continue
        # SQLite names are case-insensitive; contexts sometimes declare a table twice.
        name = stmt.this.this.name
        cols = tables.setdefault(tables_ci.setdefault(name.lower(), name), [])
        for c in stmt.this.expressions:
            if isinstance(c, exp.ColumnDef) and c.name.lower() not in {x.name.lower() for x in cols}:
                kind = c.args.get("kind")
                cols.append(Column(c.name, _affinity(kind.sql() if kind else "")))
    return {t: cols for t, cols in tables.items() if cols}


def literals(sql: str) -> tuple[list[str], list[float]]:
    """String and numeric literals of a query (double-quoted words count as strings:
    WikiSQL-style gold queries write `col = "value"`).

    >>> literals('SELECT a FROM t WHERE b = "essendon" AND c > 56 AND d = \\'x\\'')
    (['essendon', 'x'], [56.0])
    """
    strings = re.findall(r"'((?:[^']|'')*)'|\"([^\"]*)\"", sql)
    numbers = re.findall(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.])", sql)
    return [a or b for a, b in strings], [float(n) for n in numbers]


def _value(col: Column, rng: random.Random, strings: list[str], numbers: list[float]):
    if col.kind == "text":
        if strings and rng.random() < 0.5:
            return rng.choice(strings)
        return f"{col.name}_{rng.randint(0, 9)}"
    if numbers and rng.random() < 0.5:
        v = rng.choice(numbers) + rng.choice([-1, 0, 0, 1])
    else:
        v = rng.randint(0, 100)
    return int(v) if col.kind == "int" else float(v) + rng.choice([0.0, 0.5])


def tables(schema: dict[str, list[Column]], seed: int, gold: str = "") -> list:
    """ROWS_PER_TABLE deterministic rows per table, as (name, column names, rows)."""
    strings, numbers = literals(gold)
    out = []
    for t, (table, cols) in enumerate(schema.items()):
        rng = random.Random(f"{seed}:{t}:{table}")
        rows = [[_value(c, rng, strings, numbers) for c in cols] for _ in range(ROWS_PER_TABLE)]
        out.append((table, [c.name for c in cols], rows))
    return out


def build(schema: dict[str, list[Column]], seed: int, gold: str = "") -> sqlite3.Connection:
    """A fresh in-memory database in this process (tests; `execution_match` uses the jail)."""
    return connect(tables(schema, seed, gold))


def run(con: sqlite3.Connection, sql: str, time_limit: float = TIME_LIMIT_S,
        max_rows: int = MAX_ROWS) -> Result:
    """Run one untrusted statement read-only in this process; never raises for a bad query.
    Only the jail bounds a single long C call (see `tunelab.tasks.sql_jail`)."""
    return Result(*jail.run(con, sql, time_limit, max_rows))


def _bag(rows: list[tuple]) -> Counter:
    return Counter(tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows)


def execution_match(pred: str, gold: str, context: str, seed: int = 0) -> tuple[float, str]:
    """(1.0 if pred returns the same multiset of rows as gold on every generated database,
    else 0.0; the reason when it is 0)."""
    if not pred.strip():
        return 0.0, "empty prediction"
    try:
        schema = parse_schema(context)
    except sqlglot.errors.SqlglotError as e:
        return 0.0, f"context: {str(e).splitlines()[0]}"
    for k in range(N_DATABASES):
        error = JAIL.open(tables(schema, seed + k, gold))
        if error:
            return 0.0, f"context: {error}"
        want, got = Result(*JAIL.run(gold)), Result(*JAIL.run(pred))
        if want.error:
            return 0.0, f"gold query failed: {want.error}"
        if got.error:
            return 0.0, got.error
        if _bag(want.rows) != _bag(got.rows):
            return 0.0, f"different rows on database {k}"
    return 1.0, ""
