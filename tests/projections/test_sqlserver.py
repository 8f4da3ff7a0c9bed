"""The read-only statement check of the SQL endpoint (pure)."""

from __future__ import annotations

import pytest

from projections.sqlserver import QueryRefused, check_read_only, split_format


@pytest.mark.parametrize("query", [
    "SELECT 1", "  select * from events", "WITH x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES",
    "DESCRIBE events", "EXPLAIN SELECT 1", "-- a comment\nSELECT 1", "/* c */ SELECT 1", "(SELECT 1)",
])
def test_reads_pass(query):
    check_read_only(query)


@pytest.mark.parametrize(("query", "word"), [
    ("INSERT INTO events VALUES (1)", "INSERT"), ("DROP TABLE events", "DROP"), ("ALTER TABLE events DELETE WHERE 1", "ALTER"),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE"), ("TRUNCATE events", "TRUNCATE"), ("SET readonly = 0", "SET"),
    ("USE system", "USE"), ("", "empty"), ("OPTIMIZE TABLE events", "OPTIMIZE"),
])
def test_writes_and_ddl_are_refused_naming_the_statement(query, word):
    with pytest.raises(QueryRefused, match=f"read-only endpoint: {word}"):
        check_read_only(query)


@pytest.mark.parametrize("query", [
    "SELECT * FROM file('/etc/passwd')", "SELECT * FROM url('http://x')", "SELECT * FROM s3('x')",
    "SELECT * FROM remote('h', 'db', 't')", "SELECT 1 INTO OUTFILE '/tmp/x'",
])
def test_table_functions_reaching_outside_are_refused(query):
    with pytest.raises(QueryRefused, match="reaches outside the database"):
        check_read_only(query)


def test_format_clause_is_split_off():
    assert split_format("SELECT 1 FORMAT JSONEachRow", "TabSeparated") == ("SELECT 1", "JSONEachRow")
    assert split_format("SELECT 1;", "CSV") == ("SELECT 1", "CSV")
