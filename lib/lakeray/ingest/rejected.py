"""meta/rejected_files: every landed file set aside whole at ingestion, with the reason.

One row per rejected file and stream batch: run_id, source, file, reason (header_mismatch |
schema_mismatch | unreadable), detail (which columns, Spark's error), stream_batch, rejected_at.
Appended with the stream batch's transaction id, so a batch replayed after a crash adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from pyspark.sql import types as T

from lakeray.ingest.screen import Rejection
from lakeray.spark.local import local_frame

log = logging.getLogger(__name__)
# sources are ingested from threads: the first append creates the table, and two creating it at once
# would conflict (Delta's version 0), so appends here go one at a time
_APPEND = threading.Lock()

REJECTED_FILES_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType()), T.StructField("source", T.StringType()),
    T.StructField("file", T.StringType()), T.StructField("reason", T.StringType()),
    T.StructField("detail", T.StringType()), T.StructField("stream_batch", T.LongType()),
    T.StructField("rejected_at", T.TimestampType()),
])


def record_rejections(spark, path: str, source: str, rejections: list[Rejection], *, run_id: str,
                      batch_id: int, app_id: str) -> None:
    if not rejections:
        return
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    # a screen's detail names a setting as sources.<name>.x (it does not know the name): the source's own
    rejections = [Rejection(r.file, r.reason, r.detail.replace("sources.<name>.", f"sources.{source}."))
                  for r in rejections]
    rows = [(run_id, source, r.file, r.reason, r.detail, int(batch_id), now) for r in rejections]
    with _APPEND:
        (local_frame(spark, rows, REJECTED_FILES_SCHEMA).write.format("delta").mode("append")
         .option("txnAppId", app_id).option("txnVersion", batch_id).save(path))
    for r in rejections:
        log.warning("source %s: file %s set aside (%s): %s; recorded in %s", source, r.file, r.reason, r.detail, path)
