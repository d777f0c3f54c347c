"""The SQL sandbox: every denial, the time limit, the row limit, and execution accuracy."""

import os
import time

import pytest

from tunelab.tasks.sql_jail import MEMORY_LIMIT, Jail
from tunelab.tasks.sql_sandbox import build, execution_match, parse_schema, run, tables

CONTEXT = "CREATE TABLE head (age INTEGER, name VARCHAR, born VARCHAR)"


@pytest.fixture
def con():
    c = build(parse_schema(CONTEXT), seed=0, gold="SELECT name FROM head WHERE born = 'Paris'")
    yield c
    c.close()


def test_select_runs(con):
    r = run(con, "SELECT COUNT(*) FROM head")
    assert r.error == "" and r.rows[0][0] > 0


@pytest.mark.parametrize("sql", [
    "ATTACH DATABASE '/tmp/tunelab-sandbox-attack.db' AS evil",
    "DETACH DATABASE main",
    "PRAGMA table_info(head)",
    "SELECT load_extension('/tmp/evil.so')",
    "INSERT INTO head VALUES (1, 'x', 'y')",
    "UPDATE head SET age = 0",
    "DELETE FROM head",
    "DROP TABLE head",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
])
def test_denied(con, sql, tmp_path):
    r = run(con, sql)
    assert r.rows is None and r.error.startswith("not authorized")
    assert run(con, "SELECT COUNT(*) FROM head").rows == [(6,)]  # nothing changed


def test_attach_writes_no_file(con, tmp_path):
    target = tmp_path / "evil.db"
    r = run(con, f"ATTACH DATABASE '{target}' AS evil")
    assert "not authorized" in r.error and not target.exists()


def test_recursive_loop_hits_time_limit(con):
    loop = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    r = run(con, loop, time_limit=0.2)
    assert r.rows is None and "time limit" in r.error


def test_row_limit(con):
    many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50) SELECT x FROM c"
    assert "more than 10 rows" in run(con, many, max_rows=10).error
    assert len(run(con, many, max_rows=100).rows) == 50


def test_huge_blob_is_refused(con):
    assert "too big" in run(con, "SELECT randomblob(1000000000)").error


def test_two_statements_refused(con):
    r = run(con, "SELECT 1; DROP TABLE head")
    assert r.rows is None and run(con, "SELECT COUNT(*) FROM head").rows == [(6,)]


def test_authorizer_removed_after_query(con):
    run(con, "PRAGMA table_info(head)")
    con.execute("CREATE TABLE ok (x)")  # the sandbox's own setup is not blocked afterwards


def test_execution_match():
    gold = "SELECT name FROM head WHERE age > 56"
    assert execution_match("select NAME from head where age>56", gold, CONTEXT) == (1.0, "")
    assert execution_match("SELECT name FROM head WHERE 56 < age", gold, CONTEXT)[0] == 1.0
    score, why = execution_match("SELECT name FROM head WHERE age > 57", gold, CONTEXT)
    assert score == 0.0 and "different rows" in why
    score, why = execution_match("SELECT nme FROM head", gold, CONTEXT)
    assert score == 0.0 and "no such column" in why
    score, why = execution_match("this is not sql", gold, CONTEXT)
    assert score == 0.0 and "syntax error" in why
    assert execution_match("", gold, CONTEXT) == (0.0, "empty prediction")


def test_where_literals_make_gold_nonempty():
    gold = 'SELECT born FROM head WHERE name = "essendon"'
    rows = [run(build(parse_schema(CONTEXT), s, gold), gold).rows for s in range(3)]
    assert any(rows), "generated rows should reuse the gold query's literals"
    assert execution_match('SELECT born FROM head WHERE name = "collingwood"', gold, CONTEXT)[0] == 0.0


def test_duplicate_table_in_context():
    ctx = "CREATE TABLE wine (a INTEGER); CREATE TABLE WINE (b VARCHAR)"
    assert execution_match("SELECT a, b FROM wine", "SELECT a, b FROM WINE", ctx)[0] == 1.0



LOOP = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
# Each printf is one long C call (~1 s here; 10 s on a loaded machine) and the progress
# handler looks at the clock only every 1000 opcodes, so in-process this runs several seconds.
PRINTF = "SELECT " + ", ".join(["printf('%.*c', 2147483647, 'x')"] * 4)
HOSTILE = {  # query -> what its error must say
    PRINTF: "time limit",
    f"{LOOP} SELECT max(x) FROM c": "time limit",
    "SELECT zeroblob(1000000000)": "too big",
    "SELECT length(randomblob(2000000000))": "too big",
    "VACUUM INTO 'vacuumed.db'": "authoriz",
    "VACUUM INTO 'file:vacuumed2.db?mode=rwc'": "authoriz",
    "ATTACH 'file:attached.db?mode=rwc' AS a": "not authorized",
    "ATTACH DATABASE 'file:attached2.db?mode=rwc&cache=shared' AS a": "not authorized",
    "CREATE VIEW v AS SELECT 1": "not authorized",
    "CREATE TEMP VIEW v AS SELECT 1": "not authorized",
    "CREATE TEMP TRIGGER t AFTER INSERT ON head BEGIN SELECT 1; END": "not authorized",
    "PRAGMA temp_store_directory = '.'": "not authorized",
}


@pytest.fixture
def jail(tmp_path, monkeypatch):
    """A jail whose child sees a TMPDIR and a working directory the test can inspect."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("SQLITE_TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path / "cwd")
    j = Jail()
    assert j.open(tables(parse_schema(CONTEXT), 0)) == ""
    yield j
    j.close()


@pytest.mark.parametrize("sql", list(HOSTILE))
def test_hostile_query_ends_in_time_and_leaves_no_file(jail, sql, tmp_path):
    limit = 0.5
    start = time.monotonic()
    rows, error = jail.run(sql, time_limit=limit)
    took = time.monotonic() - start
    assert rows is None and HOSTILE[sql] in error
    assert took <= limit + 0.5, f"{took:.2f} s against a {limit} s limit"
    for d in (tmp_path / "tmp", tmp_path / "cwd", jail.workdir):
        assert os.listdir(d) == [], d
    assert jail.run("SELECT COUNT(*) FROM head") == ([(6,)], "")  # nothing changed, still serving


def test_memory_of_a_query_is_capped(jail):
    rows, error = jail.run(f"{LOOP} SELECT count(DISTINCT randomblob(99000)) FROM c", time_limit=10)
    assert rows is None and error == "out of memory"
    assert jail.peak_rss() < MEMORY_LIMIT
    assert jail.run("SELECT COUNT(*) FROM head") == ([(6,)], "")


def test_execution_match_survives_a_killed_query():
    gold = "SELECT name FROM head WHERE age > 56"
    assert execution_match(gold, gold, CONTEXT) == (1.0, "")  # the child is started
    start = time.monotonic()
    score, why = execution_match(PRINTF, gold, CONTEXT)
    assert score == 0.0 and "time limit" in why and time.monotonic() - start <= 1.0 + 0.5
    assert execution_match(gold, gold, CONTEXT) == (1.0, "")  # a fresh child took over
