"""The SQL sandbox: every denial, the time limit, the row limit, and execution accuracy."""

import pytest

from tunelab.sandbox import build, execution_match, parse_schema, run

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
    assert r.rows is None and r.error
    assert "not authorized" in r.error or "prohibited" in r.error or "no such" in r.error
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

