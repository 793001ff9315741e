"""Run ids and the run-metrics table that every job appends to."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from pyspark.sql import types as T

from lakeray.spark.local import local_frame

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


def append_run_metrics(spark, path: str, rows: list[tuple], note: dict | None = None) -> None:
    """Append `rows`; `note` becomes the commit's userMetadata (what a later run reads back from the
    Delta log alone: last_note)."""
    if rows:
        writer = local_frame(spark, rows, RUN_METRICS_SCHEMA).write.format("delta").mode("append")
        if note is not None:
            writer = writer.option("userMetadata", json.dumps(note, sort_keys=True, default=str))
        writer.option("mergeSchema", "true").save(path)


def last_note(spark, path: str, stage: str, lookback: int = 200) -> tuple[dict | None, bool]:
    """The newest commit note (append_run_metrics' `note`) of `stage`, read from the commit files of the
    run-metrics table, newest first: no Spark job. Returns (note, True) when found, (None, True) when
    the table does not exist, and (None, False) when the log cannot say (a commit file cleaned up, a
    commit without a note: written before notes, or by hand; none within `lookback` commits): the
    caller then queries the table."""
    from lakeray.lakehouse import commit_actions, latest_version

    version = latest_version(spark, path)
    if version is None:
        return None, True
    for v in range(version, max(-1, version - lookback), -1):
        actions = commit_actions(spark, path, v)
        if actions is None:
            return None, False
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        try:
            note = json.loads(info.get("userMetadata") or "null")
        except ValueError:
            return None, False
        if not isinstance(note, dict) or "stage" not in note:
            return None, False
        if note["stage"] == stage:
            return note, True
    return None, version < lookback       # the whole log was read: there is none
