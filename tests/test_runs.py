"""The run-metrics table: rows reconcile with deleted keys, and a table written before rows_deleted existed
gains the column on the next append (old rows read it as null)."""

from __future__ import annotations

from pyspark.sql import types as T

from lakeray.runs import RUN_METRICS_SCHEMA, append_run_metrics, metric_row


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
