"""File silos (CSV, JSON, Parquet drops) into bronze, each file exactly once.

A Structured Streaming file source with a checkpoint and an available-now trigger finds the
files that arrived since the last run. Each micro-batch is appended to Delta with an
idempotent write (txnAppId + txnVersion = batch id): if the job dies after the Delta commit
but before the stream's checkpoint commit, the replayed batch is skipped by Delta.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from pathlib import Path

from pyspark.sql import functions as F

from lakeray.faults import crash_point
from lakeray.ingest.metadata import with_ingest_metadata
from lakeray.ingest.schema import CORRUPT, bronze_read_schema, bronze_table_schema
from lakeray.errors import SourceError
from lakeray.lakehouse import commit_metrics_since, latest_version
from lakeray.spec.models import Source

log = logging.getLogger(__name__)

FORMAT_DEFAULTS = {
    "csv": {"header": "true", "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT, "multiLine": "false"},
    "json": {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    "parquet": {},
}
FILE_PATTERNS = {"csv": "*.csv", "json": "*.json", "parquet": "*.parquet"}


@dataclasses.dataclass
class FileIngest:
    batches: int = 0
    rows: int = 0
    skipped_batches: int = 0


def _app_id(checkpoint: str) -> str:
    """A stable id for this checkpoint's writes; a new checkpoint gets a new id."""
    marker = Path(checkpoint) / "lakeray_txn_app_id"
    if marker.exists():
        return marker.read_text().strip()
    marker.parent.mkdir(parents=True, exist_ok=True)
    app_id = f"lakeray-{uuid.uuid4()}"
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(app_id)
    os.replace(tmp, marker)
    return app_id


def read_stream(spark, source: Source, landing_path: str):
    if not Path(landing_path).is_dir():
        raise SourceError(f"landing folder {landing_path} does not exist (source path '{source.path}')")
    options = {**FORMAT_DEFAULTS[source.format], **source.options, "pathGlobFilter": FILE_PATTERNS[source.format]}
    return (
        spark.readStream.format(source.format)
        .schema(bronze_read_schema(source))
        .options(**options)
        .load(landing_path)
    )


def ingest_files(spark, name: str, source: Source, landing_path: str, bronze_path: str,
                 checkpoint: str, run_id: str) -> FileIngest:
    """Append the files that arrived in `landing_path` since the last run to `bronze_path`."""
    stream = read_stream(spark, source, landing_path)
    stream = with_ingest_metadata(stream, name, F.col("_metadata.file_path"), run_id)
    app_id = _app_id(checkpoint)
    stats = FileIngest()

    def write_batch(batch_df, batch_id: int) -> None:
        before = latest_version(spark, bronze_path)
        (batch_df.write.format("delta").mode("append")
         .option("txnAppId", app_id).option("txnVersion", batch_id)
         .option("userMetadata", f'{{"run_id": "{run_id}", "stream_batch": {batch_id}}}')
         .save(bronze_path))
        metrics = commit_metrics_since(spark, bronze_path, before)
        if metrics is None:
            stats.skipped_batches += 1
            log.warning("source %s: batch %d was already committed to bronze (replay after a crash): skipped",
                        name, batch_id)
        else:
            stats.batches += 1
            stats.rows += int(metrics.get("numOutputRows", 0))
        crash_point("ingest.after_bronze_commit", name)

    query = (
        stream.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .queryName(f"lakeray_ingest_{name}")
        .start()
    )
    query.awaitTermination()
    if latest_version(spark, bronze_path) is None:   # nothing has arrived yet: an empty table, not none
        from delta.tables import DeltaTable

        DeltaTable.createIfNotExists(spark).location(bronze_path).addColumns(bronze_table_schema(source)).execute()
        log.warning("source %s: no files in %s yet; bronze is an empty table", name, landing_path)
    return stats
