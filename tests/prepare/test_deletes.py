"""Deletes in a silo reach silver (sources.<name>.deletes): a real PostgreSQL table with a soft-delete flag,
ingested into bronze (every version kept) and staged; accounting reconciles with the deleted keys."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from lakeray.ingest.jdbc import ingest_jdbc
from lakeray.prepare.dedupe import STATUS
from lakeray.prepare.steps import account, clean_rows, stage_source
from lakeray.spec.models import Deletes, Source
from tests.support import PG_CONNECTION, pg_sql, pg_table

SOURCE = Source.model_validate({
    "format": "jdbc", "table": "crm.members", "keys": ["id"], "latest_by": "updated_at",
    "connection": PG_CONNECTION,
    "columns": {"id": "string", "plan": "string", "spend": "double", "deleted": "boolean", "updated_at": "timestamp"},
    "expectations": [{"rule": "allowed_values", "column": "plan", "values": ["basic", "pro"]},
                     {"rule": "range", "column": "spend", "min": 0}],
    "deletes": {"column": "deleted"},
})


@pytest.fixture
def members(postgres, monkeypatch):
    return pg_table(postgres, monkeypatch,
                    "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.members;"
                    "CREATE TABLE crm.members (id text, plan text, spend double precision, deleted boolean, updated_at timestamp)",
                    "INSERT INTO crm.members VALUES ('m1', 'basic', 1, false, '2025-01-01'), "
                    "('m2', 'pro', 2, NULL, '2025-01-01'), ('m3', 'pro', 3, false, '2025-01-01')")


def _stage(spark, bronze: str):
    rows_in = spark.read.format("delta").load(bronze).count()
    staged = stage_source(spark.read.format("delta").load(bronze), SOURCE).cache()
    acct, _ = account("members", rows_in, staged)
    statuses = sorted((r["id"], str(r["updated_at"])[:10], r[STATUS]) for r in staged.collect())
    silver = sorted(r["id"] for r in clean_rows(staged, SOURCE).collect())
    return acct, statuses, silver


def test_soft_deleted_keys_leave_silver_and_come_back(spark, tmp_path, members):
    bronze = str(tmp_path / "bronze")
    ingest_jdbc(spark, "members", SOURCE, bronze, "run-1", fetchsize=100)
    acct, _, silver = _stage(spark, bronze)
    assert silver == ["m1", "m2", "m3"] and acct.deleted == 0 and acct.reconciled    # a NULL flag is live

    # m2 soft-deleted; m3 soft-deleted by a row whose data breaks two rules (a marker is not data)
    pg_sql(members, "UPDATE crm.members SET deleted = true, updated_at = '2025-02-01' WHERE id = 'm2';"
                    "UPDATE crm.members SET deleted = true, plan = 'gone', spend = -1, updated_at = '2025-02-01' WHERE id = 'm3'")
    assert ingest_jdbc(spark, "members", SOURCE, bronze, "run-2", fetchsize=100) == 2
    acct, statuses, silver = _stage(spark, bronze)
    assert silver == ["m1"]
    assert statuses == [("m1", "2025-01-01", "clean"),
                        ("m2", "2025-01-01", "duplicate"), ("m2", "2025-02-01", "deleted"),
                        ("m3", "2025-01-01", "duplicate"), ("m3", "2025-02-01", "deleted")]
    assert (acct.rows_in, acct.clean, acct.quarantined, acct.duplicates, acct.deleted) == (5, 1, 0, 2, 2)
    assert acct.reconciled and "+ deleted 2 [reconciled]" in acct.line()

    # m2 comes back (a newer live version); a late re-delivery of m3's old version does not revive m3
    pg_sql(members, "UPDATE crm.members SET deleted = false, updated_at = '2025-03-01' WHERE id = 'm2';"
                    "INSERT INTO crm.members VALUES ('m3', 'pro', 3, false, '2024-12-31')")
    ingest_jdbc(spark, "members", SOURCE, bronze, "run-3", fetchsize=100)
    acct, statuses, silver = _stage(spark, bronze)
    assert silver == ["m1", "m2"]
    assert ("m2", "2025-02-01", "duplicate") in statuses and ("m2", "2025-03-01", "clean") in statuses
    assert ("m3", "2025-02-01", "deleted") in statuses and ("m3", "2024-12-31", "duplicate") in statuses
    assert acct.reconciled and acct.deleted == 1


def test_a_marker_without_a_key_is_quarantined_not_deleted(spark, tmp_path, members):
    pg_sql(members, "INSERT INTO crm.members VALUES (NULL, 'pro', 1, true, '2025-02-01')")
    bronze = str(tmp_path / "bronze")
    ingest_jdbc(spark, "members", SOURCE, bronze, "run-1", fetchsize=100)
    staged = stage_source(spark.read.format("delta").load(bronze), SOURCE)
    bad = staged.where(F.col("id").isNull()).collect()
    assert [(r[STATUS], r["_violations"][0]["rule"]) for r in bad] == [("quarantined", "not_null:id")]


SNAPSHOT = SOURCE.model_copy(update={"table": "crm.plans", "deletes": Deletes(snapshot=True),
                                     "columns": {c: t for c, t in SOURCE.columns.items() if c != "deleted"}})


def test_a_snapshot_diff_marks_the_keys_that_left_the_table(spark, tmp_path, postgres, monkeypatch, caplog):
    """deletes.snapshot: rows removed from the table (no flag column) leave silver; the marker is landed
    once; a key that comes back with the very values it had lands again and is live."""
    plans = pg_table(postgres, monkeypatch,
                     "CREATE SCHEMA IF NOT EXISTS crm; DROP TABLE IF EXISTS crm.plans;"
                     "CREATE TABLE crm.plans (id text, plan text, spend double precision, updated_at timestamp)",
                     "INSERT INTO crm.plans VALUES ('m1', 'basic', 1, '2025-01-01'), ('m2', 'pro', 2, '2025-01-02'), "
                     "('m3', 'pro', 3, '2025-01-01'), ('m4', 'pro', -5, '2025-01-01'), (NULL, 'pro', 1, '2025-01-01')")
    bronze = str(tmp_path / "bronze")

    def ingest(run: str) -> int:
        return ingest_jdbc(spark, "plans", SNAPSHOT, bronze, run, fetchsize=100)

    def stage():
        rows_in = spark.read.format("delta").load(bronze).count()
        staged = stage_source(spark.read.format("delta").load(bronze), SNAPSHOT).cache()
        acct, _ = account("plans", rows_in, staged)
        assert acct.reconciled, acct.line()
        return acct, sorted(r["id"] for r in clean_rows(staged, SNAPSHOT).collect())

    assert ingest("run-1") == 5
    assert stage()[1] == ["m1", "m2", "m3"]             # m4 breaks a rule, the NULL id has no key
    # m2 and m4 (a quarantined key) leave the table; the row without a key cannot be diffed and stays
    pg_sql(plans, "DELETE FROM crm.plans WHERE id IN ('m2', 'm4')")
    with caplog.at_level("INFO", logger="lakeray.ingest"):
        assert ingest("run-2") == 2
    assert "2 key(s) no longer in crm.plans marked deleted" in caplog.text
    assert ingest("run-3") == 0                          # a rerun lands nothing twice
    acct, silver = stage()
    # 7 rows: m1, m3 clean; m4's row and the keyless one quarantined; m2's old row a duplicate; 2 markers
    assert silver == ["m1", "m3"] and (acct.rows_in, acct.quarantined, acct.duplicates, acct.deleted) == (7, 2, 1, 2)
    markers = (spark.read.format("delta").load(bronze).where(F.col("_file").startswith("jdbc-deleted:"))
               .select("id", "plan", "updated_at", "_batch_id").collect())
    # the marker carries its key's latest updated_at (it beats every version landed before it) and no data
    assert sorted((r["id"], r["plan"], str(r["updated_at"])[:10], r["_batch_id"]) for r in markers) == [
        ("m2", None, "2025-01-02", "run-2"), ("m4", None, "2025-01-01", "run-2")]
    # m2 comes back with the very values it had: it lands again (a new row hash) and is live
    pg_sql(plans, "INSERT INTO crm.plans VALUES ('m2', 'pro', 2, '2025-01-02')")
    assert ingest("run-4") == 1 and ingest("run-5") == 0
    acct, silver = stage()
    assert silver == ["m1", "m2", "m3"] and acct.deleted == 1
    # and leaves again: a second marker
    pg_sql(plans, "DELETE FROM crm.plans WHERE id = 'm2'")
    assert ingest("run-6") == 1
    assert stage()[1] == ["m1", "m3"]


def test_a_snapshot_diff_needs_a_jdbc_source():
    with pytest.raises(ValueError, match="deletes.snapshot needs a jdbc source"):
        Source.model_validate({"format": "csv", "path": "p", "columns": {"id": "string"}, "keys": ["id"],
                               "deletes": {"snapshot": True}})
    with pytest.raises(ValueError, match="deletes needs 'column'"):
        Source.model_validate({"format": "csv", "path": "p", "columns": {"id": "string"}, "keys": ["id"],
                               "deletes": {}})
