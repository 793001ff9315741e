"""Run ids and the run-metrics table that every job appends to."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from pyspark.sql import types as T

RUN_METRICS_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType()),
    T.StructField("stage", T.StringType()),
    T.StructField("table", T.StringType()),
    T.StructField("rows_in", T.LongType()),
    T.StructField("rows_clean", T.LongType()),
    T.StructField("rows_quarantined", T.LongType()),
    T.StructField("rows_duplicate", T.LongType()),
    T.StructField("reconciled", T.BooleanType()),
    T.StructField("status", T.StringType()),
    T.StructField("details", T.StringType()),
    T.StructField("recorded_at", T.TimestampType()),
    T.StructField("rows_deleted", T.LongType()),     # added later: older tables gain it on the next append
])


def new_run_id(stage: str) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stage}-{now}-{uuid.uuid4().hex[:8]}"


def metric_row(run_id: str, stage: str, table: str, *, rows_in: int, clean: int = 0, quarantined: int = 0,
               duplicates: int = 0, deleted: int = 0, status: str = "ok", details: dict | None = None) -> tuple:
    reconciled = rows_in == clean + quarantined + duplicates + deleted
    return (run_id, stage, table, int(rows_in), int(clean), int(quarantined), int(duplicates), reconciled,
            status, json.dumps(details or {}, sort_keys=True, default=str),
            dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), int(deleted))


def append_run_metrics(spark, path: str, rows: list[tuple]) -> None:
    if rows:
        (spark.createDataFrame(rows, RUN_METRICS_SCHEMA).write.format("delta").mode("append")
         .option("mergeSchema", "true").save(path))
