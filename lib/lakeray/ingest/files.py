"""File silos (CSV, JSON, Parquet drops) into bronze, each file exactly once, bad files set aside.

A Structured Streaming file source (format binaryFile, only names and sizes are read) with a
checkpoint and an available-now trigger finds the files that arrived since the last run. Each
micro-batch names its files; each is screened (lakeray.ingest.screen: CSV header, Parquet
footer), the good ones are read with a batch reader (CSV columns mapped by header name) and
appended to Delta with an idempotent write (txnAppId + txnVersion = batch id): if the job dies
after the Delta commit but before the stream's checkpoint commit, the replayed batch is skipped
by Delta. A file that fails is recorded in meta/rejected_files and the others go in.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath

from pyspark.sql import types as T

from lakeray.errors import SourceError
from lakeray.faults import crash_point
from lakeray.ingest.metadata import bronze_properties, create_bronze
from lakeray.ingest.parquet_screen import screen_parquet
from lakeray.ingest.readers import read_groups
from lakeray.ingest.rejected import record_rejections
from lakeray.ingest.schema import bronze_table_schema
from lakeray.ingest.screen import (
    Layout,
    Rejection,
    failed_read,
    screen_csv,
    screen_text,
)
from lakeray.ingest.state import app_id as checkpoint_app_id
from lakeray.ingest.state import check_source_state, moved_landing_error, record_landing, reset_hint
from lakeray.lakehouse import commit_metrics_since, fs, latest_version
from lakeray.spec.models import Source

log = logging.getLogger(__name__)

# compressed text files (Hadoop picks the codec from the extension) are read like plain ones
FILE_PATTERNS = {"csv": "*.{csv,csv.gz,csv.bz2}", "json": "*.{json,json.gz,json.bz2}", "parquet": "*.parquet"}
LISTING_SCHEMA = T.StructType([T.StructField("path", T.StringType()), T.StructField("modificationTime", T.TimestampType()),
                               T.StructField("length", T.LongType()), T.StructField("content", T.BinaryType())])


@dataclasses.dataclass
class FileIngest:
    batches: int = 0
    rows: int = 0
    skipped_batches: int = 0
    files: int = 0
    rejected_files: int = 0


def new_files_stream(spark, source: Source, landing_path: str):
    """One row per landed file not seen by the checkpoint yet (its content is not read)."""
    if not fs.is_dir(landing_path, spark):
        raise SourceError(f"landing folder {landing_path} does not exist (source path '{source.path}')")
    options = {**source.options, "pathGlobFilter": FILE_PATTERNS[source.format]}
    return (spark.readStream.format("binaryFile").schema(LISTING_SCHEMA).options(**options)
            .load(landing_path).select("path", "length"))


# each file format's check (csv, json and parquet are the file formats a spec accepts)
SCREENS = {"csv": screen_csv, "json": screen_text, "parquet": screen_parquet}


def screen(spark, source: Source, files: list[str], name: str = "<name>") -> tuple[dict[Layout, list[str]], list[Rejection]]:
    """Files grouped by how to read them (screen.Layout: column order, multiLine, widened or respelled
    columns), and the rejected ones. `name`: the source's, for the settings a warning names."""
    groups: dict[Layout, list[str]] = {}
    rejected: list[Rejection] = []
    for path in files:
        outcome = SCREENS[source.format](spark, path, source, **({"name": name} if source.format == "csv" else {}))
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            groups.setdefault(outcome, []).append(path)
    return groups, rejected


def ingest_files(spark, name: str, source: Source, landing_path: str, bronze_path: str,
                 checkpoint: str, run_id: str, *, rejected_path: str | None = None,
                 pipeline: str | None = None) -> FileIngest:
    """Append the files that arrived in `landing_path` since the last run to `bronze_path`;
    files that cannot go in whole are recorded in `rejected_path` (default: beside bronze, meta/rejected_files)."""
    rejected_path = rejected_path or fs.join(posixpath.dirname(posixpath.dirname(bronze_path)), "meta", "rejected_files")
    check_source_state(spark, name, landing_path, bronze_path, checkpoint, pipeline)
    stream = new_files_stream(spark, source, landing_path)
    app_id = checkpoint_app_id(checkpoint, spark)
    stats = FileIngest()

    def write_batch(listing, batch_id: int) -> None:
        files = list(dict.fromkeys(r["path"] for r in listing.collect()))
        groups, rejected = screen(spark, source, files, name)
        before = latest_version(spark, bronze_path)
        metrics: dict | None = {}
        while True:
            frame = read_groups(spark, name, source, groups, run_id)
            if frame is None:
                break
            try:
                (frame.write.format("delta").mode("append")
                 .options(**bronze_properties(source.keys))   # applied when the table is created
                 .option("txnAppId", app_id).option("txnVersion", batch_id)
                 .option("userMetadata", f'{{"run_id": "{run_id}", "stream_batch": {batch_id}}}')
                 .save(bronze_path))
            except Exception as exc:   # a file Spark cannot read: set it aside, read the batch again
                bad = failed_read(exc, [f for paths in groups.values() for f in paths])
                if bad is None:
                    raise
                rejected.append(bad)
                groups = {layout: [f for f in paths if f != bad.file] for layout, paths in groups.items()}
                continue
            metrics = commit_metrics_since(spark, bronze_path, before)
            break
        record_rejections(spark, rejected_path, name, rejected, run_id=run_id, batch_id=batch_id, app_id=app_id)
        stats.rejected_files += len(rejected)
        stats.files += len(files) - len(rejected)
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
    try:
        query.awaitTermination()
    except Exception as exc:
        if "Wrong basePath" in str(exc):
            raise moved_landing_error(pipeline, name, checkpoint, None, landing_path) from None
        raise
    record_landing(spark, checkpoint, landing_path)
    if latest_version(spark, bronze_path) is None:   # nothing has arrived yet: an empty table, not none
        create_bronze(spark, bronze_path, bronze_table_schema(source), bronze_properties(source.keys))
        if stats.rejected_files:
            log.warning("source %s: every file in %s was set aside; bronze is an empty table", name, landing_path)
        else:
            log.warning("source %s: no files in %s yet; bronze is an empty table", name, landing_path)
    if stats.rejected_files:
        log.warning("source %s: %d file(s) set aside, recorded in %s; fix each and land it under a new name "
                    "(a file source never reads a name twice), or re-land everything and run %s",
                    name, stats.rejected_files, rejected_path, reset_hint(pipeline, name))
    return stats
