"""A real PostgreSQL silo over JDBC: idempotent merges, credentials from the environment only."""

from __future__ import annotations

import logging

import pytest

from lakeray.errors import SourceError
from lakeray.ingest.jdbc import ingest_jdbc, redact
from lakeray.lakehouse import commit_info, latest_version
from lakeray.spec.models import JdbcCursor, Source
from tests.support import PG_CONNECTION, pg_sql, pg_table

SOURCE = Source.model_validate({
    "format": "jdbc", "table": "crm.accounts", "keys": ["id"], "latest_by": "updated_at",
    "connection": PG_CONNECTION,
    "columns": {"id": "string", "balance": "double", "active": "boolean", "updated_at": "timestamp"},
})


@pytest.fixture
def accounts(postgres, monkeypatch):
    return pg_table(postgres, monkeypatch,
                    "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.accounts;"
                    "CREATE TABLE crm.accounts (id text, balance double precision, active boolean, updated_at timestamp)",
                    "INSERT INTO crm.accounts VALUES ('a', 10.5, true, '2025-01-01'), ('b', NULL, false, '2025-01-02'),"
                    "('b', NULL, false, '2025-01-02')")   # an exact duplicate, as silos have


def _run(spark, tmp_path):
    return ingest_jdbc(spark, "accounts", SOURCE, str(tmp_path / "bronze"), "run-x", fetchsize=100)


def test_snapshot_lands_with_types_and_metadata(spark, tmp_path, accounts):
    assert _run(spark, tmp_path) == 3
    rows = spark.read.format("delta").load(str(tmp_path / "bronze")).orderBy("id").collect()
    assert [(r["id"], r["balance"], r["active"]) for r in rows] == [("a", 10.5, True), ("b", None, False), ("b", None, False)]
    assert rows[0]["_source"] == "accounts" and rows[0]["_file"] == "jdbc:crm.accounts" and rows[0]["_batch_id"] == "run-x"
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{tmp_path / 'bronze'}`").first()
    assert detail["properties"]["delta.dataSkippingStatsColumns"] == "`id`,`_row_hash`,`_ingested_at`,`_batch_id`"
    assert detail["properties"]["delta.enableChangeDataFeed"] == "true"      # prepare's incremental runs read it
    # the first load is the table's first commit (no empty table, no MERGE against it)
    assert latest_version(spark, str(tmp_path / "bronze")) == 0
    assert commit_info(spark, str(tmp_path / "bronze"), 0)["operation"] == "WRITE"


def test_a_table_another_run_created_first_is_merged_into(spark, tmp_path, accounts):
    """Two first loads at once: the one that finds the table created meanwhile MERGEs, as a rerun does."""
    from pyspark.sql import functions as F

    from lakeray.ingest.jdbc import ROW_HASH, _first_load, read_jdbc, row_hash
    from lakeray.ingest.metadata import with_ingest_metadata

    path = str(tmp_path / "bronze")
    staged = with_ingest_metadata(read_jdbc(spark, "accounts", SOURCE, 100), "accounts", F.lit("jdbc:crm.accounts"),
                                  "run-w").withColumn(ROW_HASH, row_hash(list(SOURCE.columns)))
    assert _first_load(staged, path, SOURCE) == 3
    assert _first_load(staged, path, SOURCE) is None               # the path is taken: the caller MERGEs
    assert _run(spark, tmp_path) == 0                               # and finds every row landed once
    assert spark.read.format("delta").load(path).count() == 3


def test_rerun_adds_nothing_and_changes_are_added_once(spark, tmp_path, accounts):
    assert _run(spark, tmp_path) == 3
    assert _run(spark, tmp_path) == 0
    pg_sql(accounts, "UPDATE crm.accounts SET balance = 99, updated_at = '2025-02-01' WHERE id = 'a'",
           "INSERT INTO crm.accounts VALUES ('c', 1, true, '2025-02-01')")
    assert _run(spark, tmp_path) == 2        # the new version of 'a', and 'c'
    assert _run(spark, tmp_path) == 0
    bronze = spark.read.format("delta").load(str(tmp_path / "bronze"))
    assert bronze.count() == 5               # both versions of 'a' kept for latest-wins dedupe


def test_missing_credentials_name_the_variable(spark, tmp_path, accounts, monkeypatch):
    monkeypatch.delenv("T_PG_PASSWORD")
    with pytest.raises(SourceError, match=r"source 'accounts': environment variable T_PG_PASSWORD \(database password\) is not set"):
        _run(spark, tmp_path)


def test_wrong_password_is_reported_without_leaking_it(spark, tmp_path, accounts, monkeypatch, caplog):
    monkeypatch.setenv("T_PG_PASSWORD", "s3cret-wrong-pw")
    caplog.set_level(logging.DEBUG, logger="lakeray")
    with pytest.raises(SourceError, match=r"source 'accounts': cannot read table crm.accounts at jdbc:postgresql://127.0.0.1") as info:
        _run(spark, tmp_path)
    assert "password authentication failed" in str(info.value)
    assert "s3cret-wrong-pw" not in str(info.value) and "s3cret-wrong-pw" not in caplog.text


def test_missing_table_and_column(spark, tmp_path, accounts):
    pg_sql(accounts, "ALTER TABLE crm.accounts DROP COLUMN active")
    with pytest.raises(SourceError, match=r"table crm.accounts has no column\(s\) active"):
        _run(spark, tmp_path)
    pg_sql(accounts, "DROP TABLE crm.accounts")
    with pytest.raises(SourceError, match=r"cannot read table crm.accounts .*does not exist"):
        _run(spark, tmp_path)


def test_redact_hides_passwords_in_urls():
    assert redact("jdbc:postgresql://h:5432/db?user=u&password=p&ssl=true") == "jdbc:postgresql://h:5432/db?user=u&password=***&ssl=true"
    assert redact("jdbc:mysql://u:pw@h/db") == "jdbc:mysql://***@h/db"


CURSOR = SOURCE.model_copy(update={"table": "crm.ledger", "cursor": JdbcCursor(column="updated_at", lookback=3600)})


@pytest.fixture
def ledger(postgres, monkeypatch):
    return pg_table(postgres, monkeypatch,
                    "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.ledger;"
                    "CREATE TABLE crm.ledger (id text, balance double precision, active boolean, updated_at timestamp,"
                    " note text)",
                    "INSERT INTO crm.ledger VALUES ('a', 1, true, '2025-01-01', 'x'), ('b', 2, true, '2025-01-05', 'x'),"
                    "('c', 3, true, NULL, 'x')")


def _ledger_rows(spark, tmp_path) -> list[tuple]:
    bronze = spark.read.format("delta").load(str(tmp_path / "bronze"))
    return sorted((r["id"], r["balance"]) for r in bronze.collect())


def test_a_cursor_reads_only_rows_at_or_after_the_landed_max(spark, tmp_path, ledger, caplog):
    """cursor: {column: updated_at, lookback: 3600}: the second run asks PostgreSQL only for the rows at or
    after the greatest updated_at landed (2025-01-05) less an hour, and those with none. A change that did
    not move the cursor, or moved it further back than the lookback, is not read, which a run without
    the cursor then shows by landing both."""
    def run(source):
        return ingest_jdbc(spark, "ledger", source, str(tmp_path / "bronze"), "run-x", fetchsize=100)

    assert run(CURSOR) == 3
    pg_sql(ledger,
           "UPDATE crm.ledger SET balance = 10 WHERE id = 'a'",                      # cursor not moved: unseen
           "UPDATE crm.ledger SET balance = 30 WHERE id = 'c'",                      # no cursor: read every run
           "INSERT INTO crm.ledger VALUES ('d', 4, true, '2025-01-04 23:30', 'x'),"  # late, within the lookback
           "('e', 5, true, '2025-01-03', 'x'),"                                      # older than the lookback
           "('f', 6, true, '2025-02-01', 'x')")
    caplog.clear()
    caplog.set_level(logging.INFO, logger="lakeray")
    assert run(CURSOR) == 3                                                          # c's new version, d, f
    assert "with updated_at >= 2025-01-04 23:00:00 or NULL (cursor)" in caplog.text
    assert "4 row(s) read from crm.ledger, 3 new" in caplog.text                     # b, c, d, f; not a nor e
    assert _ledger_rows(spark, tmp_path) == [("a", 1.0), ("b", 2.0), ("c", 3.0), ("c", 30.0), ("d", 4.0), ("f", 6.0)]
    assert run(CURSOR) == 0                                                          # reads f and c again: nothing new
    assert run(SOURCE.model_copy(update={"table": "crm.ledger"})) == 2               # the whole table: a's change and e
    assert _ledger_rows(spark, tmp_path) == [("a", 1.0), ("a", 10.0), ("b", 2.0), ("c", 3.0), ("c", 30.0), ("d", 4.0),
                                             ("e", 5.0), ("f", 6.0)]


def test_a_cursor_the_database_keeps_as_text_is_refused(spark, tmp_path, ledger):
    source = SOURCE.model_copy(update={"table": "crm.ledger", "columns": {**SOURCE.columns, "note": "bigint"},
                                       "cursor": JdbcCursor(column="note")})
    pg_sql(ledger, "UPDATE crm.ledger SET note = '7'")
    ingest_jdbc(spark, "ledger", source.model_copy(update={"cursor": None}), str(tmp_path / "bronze"), "r", 100)
    with pytest.raises(SourceError, match=r"source 'ledger': cursor.column 'note' is string in table crm.ledger; "
                                          r"a cursor must be a number, date or timestamp in the database"):
        ingest_jdbc(spark, "ledger", source, str(tmp_path / "bronze"), "r", 100)


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "csv", "path": "x", "table": None, "connection": None}, "cursor needs a jdbc source"),
    ({"cursor": {"column": "nope"}}, "cursor.column 'nope' is not one of the declared columns"),
    ({"cursor": {"column": "active"}}, "cursor.column 'active' is boolean; a cursor must be one of int, bigint"),
    ({"deletes": {"snapshot": True}}, "cursor and deletes.snapshot do not go together"),
    ({"cursor": {"column": "updated_at", "lookback": -1}}, "greater than or equal to 0"),
])
def test_cursor_settings_are_checked(change, message):
    spec = {**SOURCE.model_dump(exclude_none=True), "cursor": {"column": "updated_at"}, **change}
    with pytest.raises(ValueError, match=message):
        Source.model_validate({k: v for k, v in spec.items() if v is not None})


def test_a_first_load_killed_before_its_commit_loads_again(spark, tmp_path, accounts):
    """A first load killed mid-write leaves data files and an empty _delta_log, no commit: the next run
    writes the table (Delta's errorifexists asks the log, not the folder) and holds each row once."""
    import shutil

    path = tmp_path / "bronze"
    spark.range(4).write.parquet(str(tmp_path / "stray"))
    (path / "_delta_log").mkdir(parents=True)
    for part in (tmp_path / "stray").glob("*.parquet"):
        shutil.copy(part, path)
    assert _run(spark, tmp_path) == 3
    assert spark.read.format("delta").load(str(path)).count() == 3


def test_an_unbounded_numeric_beyond_decimal_38_18_lands_as_the_declared_double(spark, tmp_path, postgres, monkeypatch):
    # Spark reads an unbounded NUMERIC as Decimal(38, 18): 1e20 and more overflowed and failed the read
    pg_table(postgres, monkeypatch, "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.ledger;"
             "CREATE TABLE crm.ledger (id text, amount numeric, cents numeric(12, 2))",
             "INSERT INTO crm.ledger VALUES ('a', 1e40, 1.25), ('b', 'NaN', NULL), ('c', -12.5, 3)")
    source = Source.model_validate({"format": "jdbc", "table": "crm.ledger", "keys": ["id"], "connection": PG_CONNECTION,
                                    "columns": {"id": "string", "amount": "double", "cents": "double"}})
    assert ingest_jdbc(spark, "ledger", source, str(tmp_path / "bronze"), "run-1", fetchsize=100) == 3
    rows = {r["id"]: r for r in spark.read.format("delta").load(str(tmp_path / "bronze")).collect()}
    assert (rows["a"]["amount"], rows["a"]["cents"], rows["c"]["amount"]) == (1e40, 1.25, -12.5)
    assert rows["b"]["amount"] != rows["b"]["amount"] and rows["b"]["cents"] is None      # NaN, null


def test_bytea_and_time_declared_string_land_as_the_databases_text(spark, tmp_path, postgres, monkeypatch):
    # Spark reads a bytea as bytes (cast to string: U+FFFD garbage) and a time as a timestamp on 1970-01-01
    pg_table(postgres, monkeypatch, "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.blobs;"
             "CREATE TABLE crm.blobs (id text, digest bytea, opens time, closes timetz, seen timestamp, ok boolean)",
             "INSERT INTO crm.blobs VALUES ('a', '\\xdeadbeef', '09:30', '17:00+02', '2024-03-15 10:00', true),"
             " ('b', NULL, NULL, NULL, NULL, NULL)")
    columns = {"id": "string", "digest": "string", "opens": "string", "closes": "string", "seen": "string", "ok": "string"}
    source = Source.model_validate({"format": "jdbc", "table": "crm.blobs", "keys": ["id"], "connection": PG_CONNECTION,
                                    "columns": columns})
    assert ingest_jdbc(spark, "blobs", source, str(tmp_path / "bronze"), "run-1", fetchsize=100) == 2
    rows = {r["id"]: tuple(r[c] for c in columns) for r in spark.read.format("delta").load(str(tmp_path / "bronze")).collect()}
    # the other columns keep Spark's reading cast to text, as before (a boolean as true, not t)
    assert rows == {"a": ("a", "\\xdeadbeef", "09:30:00", "17:00:00+02", "2024-03-15 10:00:00", "true"),
                    "b": ("b", None, None, None, None, None)}


@pytest.mark.parametrize(("ddl", "values", "declared", "said"), [
    ("amount text", "('a', '12.5'), ('b', 'abc')", "double", "The value 'abc' of the type \"STRING\" cannot be cast"),
    ("amount bigint", "('a', 5), ('b', 9999999999)", "int", "The value 9999999999L of the type \"BIGINT\" cannot be cast"),
])
def test_a_value_the_declared_type_cannot_hold_stops_the_source_naming_it(spark, tmp_path, postgres, monkeypatch,
                                                                           ddl, values, declared, said):
    pg_table(postgres, monkeypatch, "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.odd;"
             f"CREATE TABLE crm.odd (id text, {ddl})", f"INSERT INTO crm.odd VALUES {values}")
    source = Source.model_validate({"format": "jdbc", "table": "crm.odd", "keys": ["id"], "connection": PG_CONNECTION,
                                    "columns": {"id": "string", "amount": declared}})
    with pytest.raises(SourceError) as caught:
        ingest_jdbc(spark, "odd", source, str(tmp_path / "bronze"), "run-1", fetchsize=100)
    message = str(caught.value)
    assert message.startswith(f"source 'odd': a value in crm.odd does not convert to its declared type "
                              f"(id string, amount {declared}): ")
    assert said in message and "Nothing was written" in message
    assert latest_version(spark, str(tmp_path / "bronze")) is None


def test_a_column_named_beyond_a_tables_reach_is_read_through_rename(spark, tmp_path, postgres, monkeypatch):
    # a quoted identifier with spaces and parentheses (Delta refuses such a column name), fetched as
    # numeric into the declared double: the rename applies after the driver's custom schema
    pg_table(postgres, monkeypatch, 'CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.birds;'
             'CREATE TABLE crm.birds (id text, "Body Mass (g)" numeric)',
             "INSERT INTO crm.birds VALUES ('a', 3750), ('b', NULL)")
    source = Source.model_validate({"format": "jdbc", "table": "crm.birds", "keys": ["id"], "connection": PG_CONNECTION,
                                    "columns": {"id": "string", "body_mass_g": "double"},
                                    "rename": {"body mass (g)": "body_mass_g"}})
    with pytest.raises(SourceError, match=r"table crm.birds has no column\(s\) body mass \(g\) \(it has id, Body Mass"):
        ingest_jdbc(spark, "birds", source, str(tmp_path / "bronze"), "run-1", fetchsize=100)
    source = source.model_copy(update={"rename": {"Body Mass (g)": "body_mass_g"}})
    assert ingest_jdbc(spark, "birds", source, str(tmp_path / "bronze"), "run-1", fetchsize=100) == 2
    rows = {r["id"]: r["body_mass_g"] for r in spark.read.format("delta").load(str(tmp_path / "bronze")).collect()}
    assert rows == {"a": 3750.0, "b": None}
