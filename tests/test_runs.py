"""The run-metrics table: rows reconcile with deleted keys, and a table written before rows_deleted existed
gains the column on the next append (old rows read it as null). Each append's note is read back from
the Delta log alone (last_note), and where the log cannot say, the caller is told to ask the table."""

from __future__ import annotations

import os

from pyspark.sql import types as T

from lakeray.runs import RUN_METRICS_SCHEMA, append_run_metrics, last_note, metric_row


def test_old_run_metrics_table_gains_rows_deleted(spark, tmp_path):
    path = str(tmp_path / "run_metrics")
    old_schema = T.StructType([f for f in RUN_METRICS_SCHEMA.fields if f.name != "rows_deleted"])
    old = metric_row("r0", "prepare", "t", rows_in=3, clean=2, duplicates=1)[:-1]
    spark.createDataFrame([old], old_schema).write.format("delta").save(path)

    append_run_metrics(spark, path, [metric_row("r1", "prepare", "t", rows_in=5, clean=1, duplicates=2, deleted=2)])
    rows = {r["run_id"]: r for r in spark.read.format("delta").load(path).collect()}
    assert rows["r1"]["rows_deleted"] == 2 and rows["r1"]["reconciled"] is True
    assert rows["r0"]["rows_deleted"] is None and rows["r0"]["reconciled"] is True
    assert metric_row("r2", "prepare", "t", rows_in=5, clean=1, duplicates=2)[7] is False   # 2 rows unaccounted


def test_the_newest_note_of_a_stage_is_read_from_the_log(spark, tmp_path):
    path = str(tmp_path / "run_metrics")
    assert last_note(spark, path, "prepare") == (None, True)             # no table: no earlier run

    def append(run_id: str, stage: str, note: bool = True) -> None:
        append_run_metrics(spark, path, [metric_row(run_id, stage, "t", rows_in=1, clean=1)],
                           note={"stage": stage, "run_id": run_id, "status": "ok"} if note else None)

    append("i1", "ingest")
    assert last_note(spark, path, "prepare") == (None, True)             # every commit read: none of prepare
    append("p1", "prepare")
    append("i2", "ingest")
    append("i3", "ingest")
    assert last_note(spark, path, "prepare") == ({"stage": "prepare", "run_id": "p1", "status": "ok"}, True)
    assert last_note(spark, path, "ingest")[0]["run_id"] == "i3"
    assert last_note(spark, path, "prepare", lookback=2) == (None, False)   # not within the lookback
    append("x1", "prepare", note=False)                                  # a commit without a note
    assert last_note(spark, path, "prepare") == (None, False)
    append("p2", "prepare")
    assert last_note(spark, path, "prepare")[0]["run_id"] == "p2"
    # log cleanup: a checkpoint at v5, and the commit files before it removed (as Delta's cleanup does)
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).checkpoint()
    for version in range(5):
        os.remove(os.path.join(path, "_delta_log", f"{version:020d}.json"))
    append("i4", "ingest")
    assert last_note(spark, path, "ingest")[0]["run_id"] == "i4"
    assert last_note(spark, path, "prepare") == ({"stage": "prepare", "run_id": "p2", "status": "ok"}, True)
    assert last_note(spark, path, "train") == (None, False)              # the walk reached a removed file
    append("i5", "ingest", note=False)
    assert last_note(spark, path, "ingest") == (None, False)
