"""A real PostgreSQL silo over JDBC: idempotent merges, credentials from the environment only."""

from __future__ import annotations

import logging

import pytest

from lakeray.errors import SourceError
from lakeray.ingest.jdbc import ingest_jdbc, redact
from lakeray.spec.models import Source
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
