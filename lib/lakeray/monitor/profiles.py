"""The monitor's profiles table: every hour of the inference log profiled once, windows merged from it.

A Structured Streaming query over the inference log (Delta source, `Trigger.AvailableNow`) hands
each drift run only the rows appended since the last one; they are counted in one pass
(lakeray.monitor.window) into partial profiles per (hour of ts, segment, column) and written to
<lakehouse>/<pipeline>/monitor/profiles. Label merges rewrite log files without new
rows and are skipped (`skipChangeCommits`); a late row lands in its own hour's profile whenever it
arrives. There is one query (checkpoint) per champion train run and plan: a new champion's rows
are profiled against its own baseline bins, from the start of the log.

A drift window [start, end) is then the merge of the stored profiles of its whole hours plus one
pass over the raw rows of the partial hours at its edges (none when both ends fall on the hour):
a rerun over an already profiled window reads no raw rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging

from lakeray.monitor.window import (
    ALL,
    Plan,
    WindowCounts,
    empty_window,
    file_partials,
    merged,
    merged_here,
    partial_schema,
    partials,
    window_of,
)

log = logging.getLogger(__name__)
LAYOUT = 1            # bump when the partial profile's meaning changes: a new query profiles the log again
GROUP = ["segment_column", "segment_value", "c"]
HOUR = dt.timedelta(hours=1)
RUN_COLUMN = "train_run_id"     # the inference log's column naming the model that served the row


def plan_id(plan: Plan) -> str:
    """What a stored partial depends on besides the train run (whose baseline bins are fixed)."""
    text = json.dumps([LAYOUT, [(name, column, numeric, len(edges), len(fine)) for name, column, numeric, edges, fine in plan.columns],
                       [list(s) for s in plan.segments], plan.time], default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _table_exists(spark, path: str) -> bool:
    """A Delta table is there (its log folder; cheaper than resolving the table)."""
    from lakeray.lakehouse import fs

    return fs.exists(f"{path.rstrip('/')}/_delta_log", spark)


def profile_new_rows(spark, log_path: str, profiles_path: str, checkpoints: str, train_run_id: str, plan: Plan) -> int:
    """Profile the inference-log rows of `train_run_id` appended since the last call; returns how many.

    Each stream batch replaces its own rows (Delta replaceWhere on run, plan and batch id), so a
    batch replayed after a crash is stored once. A query starting without its checkpoint (first
    run, or the checkpoint was removed) first deletes what the run and plan have stored, and a
    stored table that was removed takes its checkpoint with it: the log is profiled again whole."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    from lakeray.lakehouse import fs

    pid = plan_id(plan)
    checkpoint = f"{checkpoints}/{train_run_id}-{pid}"
    stored = _table_exists(spark, profiles_path)
    if not stored and fs.exists(checkpoint, spark):
        log.warning("profiles: %s is gone; profiling the inference log again from the start", profiles_path)
        fs.delete(checkpoint, spark)
    elif stored and not fs.exists(checkpoint, spark):
        from delta.tables import DeltaTable

        DeltaTable.forPath(spark, profiles_path).delete((F.col("train_run_id") == train_run_id) & (F.col("plan") == pid))
    elif _caught_up(spark, checkpoint, log_path):
        log.info("profiles: nothing appended to %s since the last profiled version: no query started", log_path)
        return 0
    owned = f"train_run_id = '{train_run_id}' AND plan = '{pid}'"
    why_not = direct_read_problem(log_path, plan)
    if why_not:
        log.info("profiles: the inference log's rows go through Spark's scan (%s)", why_not)
    counted = [0]

    def each(batch, batch_id: int) -> None:
        files = None if why_not else scanned_files(batch)
        if files is None:
            frame = partials(batch, plan)
        else:
            log.info("profiles: batch %d read with pyarrow from %d file(s), %.0f MB", batch_id, len(files),
                     sum(files.values()) / 2**20)
            frame = file_partials(spark, files, plan, (RUN_COLUMN, train_run_id))
        # the tasks' partials (a few per task, hour, segment and column) merged here, not in a shuffle
        parts = frame.toArrow().to_pandas()
        if parts.empty:
            return
        whole = (parts["segment_column"] == ALL) & (parts["c"] == plan.columns[0][0])
        counted[0] += int(parts.loc[whole, "rows"].sum())
        merged_rows = [row for _, row in merged_here(parts, ["h", *GROUP])]
        for row in merged_rows:
            row["h"] = None if row["h"] is None or row["h"] != row["h"] else int(row["h"])
        rows = spark.createDataFrame(pa.Table.from_pylist(merged_rows, schema=partial_schema()))
        (rows.withColumn("hour", F.timestamp_seconds("h")).withColumn("train_run_id", F.lit(train_run_id))
         .withColumn("plan", F.lit(pid)).withColumn("stream_batch", F.lit(batch_id).cast("long"))
         .withColumn("profiled_at", F.current_timestamp())
         .write.format("delta").mode("overwrite").option("replaceWhere", f"{owned} AND stream_batch = {int(batch_id)}")
         .save(profiles_path))

    stream = (spark.readStream.format("delta").option("skipChangeCommits", "true").option("maxBytesPerTrigger", "1g")
              .load(log_path).where(F.col(RUN_COLUMN) == train_run_id))
    query = (stream.writeStream.foreachBatch(each).trigger(availableNow=True)
             .option("checkpointLocation", checkpoint).start())
    query.awaitTermination()
    new = counted[0]
    log.info("profiles: %d new inference-log row(s) of train run %s profiled into %s", new, train_run_id, profiles_path)
    return new


def direct_read_problem(log_path: str, plan: Plan) -> str | None:
    """Why the stream's batches cannot be read straight from their Parquet files with pyarrow (None:
    they can): the log is not on the local file system (object stores keep Spark's credentials
    and readers), its files need Delta to be read (deletion vectors, column mapping), or a column
    the plan counts (or the run column rows are kept by) is a partition column (not in the files)."""
    from deltalake import DeltaTable

    from lakeray.lakehouse.delta import raw_read_blockers
    from lakeray.lakehouse.fs import is_uri

    if is_uri(log_path) and not log_path.startswith("file:"):
        return "not on the local file system"
    try:
        table = DeltaTable(log_path)
    except Exception as exc:  # noqa: BLE001 -- delta-rs cannot read it: Spark's reader decides
        return f"delta-rs cannot open it: {str(exc)[:200]}"
    blockers = raw_read_blockers(table)
    if blockers:
        return f"its files need Delta's reader ({', '.join(blockers)})"
    parted = set(table.metadata().partition_columns) & {*plan.needed, RUN_COLUMN}
    return f"partition column(s) {sorted(parted)} are read (not in the files)" if parted else None


def scanned_files(batch) -> dict[str, int] | None:
    """{path: bytes} of the local Parquet files a stream batch scans, from its RDD lineage (the one
    FileScanRDD under it: the batch DataFrame itself is a LogicalRDD, so inputFiles() is empty);
    None when the batch is anything else."""
    try:
        scans, stack = [], [batch._jdf.queryExecution().analyzed().rdd()]
        while stack:
            rdd = stack.pop()
            if rdd.getClass().getName().endswith(".FileScanRDD"):
                scans.append(rdd)
                continue
            deps = rdd.dependencies().iterator()
            while deps.hasNext():
                stack.append(deps.next().rdd())
        if len(scans) != 1:
            return None
        files: dict[str, int] = {}
        for part in scans[0].partitions():
            for piece in part.files():
                uri = piece.filePath().toUri()
                if uri.getScheme() not in (None, "file"):
                    return None
                files[uri.getPath()] = files.get(uri.getPath(), 0) + int(piece.length())
        return files
    except Exception as exc:  # noqa: BLE001 -- Spark's internals differ (Spark Connect, another version): Spark's scan
        log.debug("profiles: the batch's files are not known (%r); Spark's scan reads it", exc)
        return None


def _caught_up(spark, checkpoint: str, log_path: str) -> bool:
    """True when the query's last committed batch ended past the inference log's latest version (its
    Delta source offset names the next version to read, index -1): a query would start, read nothing
    and stop, about a second of Spark's time for every run that finds no new rows. Read from the
    checkpoint's files and the log's file names; no Spark job. False whenever unsure (no commit for
    the last offset, a version read in part, another table at the path, the log's first commit cleaned)."""
    from lakeray.lakehouse import fs
    from lakeray.lakehouse.delta import latest_version, table_id

    batches = [int(n) for n in fs.listdir(f"{checkpoint}/offsets", spark) if n.isdigit()]
    last = max(batches, default=None)
    if last is None or not fs.exists(f"{checkpoint}/commits/{last}", spark):
        return False
    try:
        offset = json.loads((fs.read_text(f"{checkpoint}/offsets/{last}", spark) or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False
    version = latest_version(spark, log_path)
    return (isinstance(offset, dict) and offset.get("index") == -1 and not offset.get("isStartingVersion")
            and version is not None and int(offset.get("reservoirVersion", -1)) > version
            and offset.get("reservoirId") is not None and offset.get("reservoirId") == table_id(spark, log_path))


def floor_hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: dt.datetime) -> dt.datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + HOUR


@dataclasses.dataclass(frozen=True)
class Split:
    """A window's whole hours (read from the profiles table) and the raw ranges at its edges."""
    hours: tuple[dt.datetime, dt.datetime] | None
    raw: tuple[tuple[dt.datetime, dt.datetime], ...]


def split_window(start: dt.datetime, end: dt.datetime) -> Split:
    first, last = ceil_hour(start), floor_hour(end)
    if first >= last:
        return Split(None, ((start, end),) if start < end else ())
    raw = tuple(r for r in ((start, first), (last, end)) if r[0] < r[1])
    return Split((first, last), raw)


def read_window(spark, log_frame, profiles_path: str, train_run_id: str, plan: Plan, start: dt.datetime,
                end: dt.datetime, driver_merge_hours: int = 48) -> dict[tuple[str, str], WindowCounts]:
    """{(segment column, value): counts} of the rows of `train_run_id` with start <= ts < end: stored
    profiles for the whole hours, one pass over `log_frame` (the inference log) for the edges. The
    partials of up to `driver_merge_hours` whole hours are merged on the driver, more by Spark."""
    return read_windows(spark, log_frame, profiles_path, train_run_id, plan, {"": (start, end)}, driver_merge_hours)[""]


def read_windows(spark, log_frame, profiles_path: str, train_run_id: str, plan: Plan,
                 ranges: dict[str, tuple[dt.datetime, dt.datetime]], driver_merge_hours: int = 48) -> dict[str, dict]:
    """read_window for several named ranges (e.g. this window and the one before), in one Spark job
    where their hours are few."""
    from functools import reduce

    from pyspark.sql import functions as F

    stored = None
    if _table_exists(spark, profiles_path):
        stored = (spark.read.format("delta").load(profiles_path)
                  .where((F.col("train_run_id") == train_run_id) & (F.col("plan") == plan_id(plan))))
    parts, hours = {}, 0.0
    for name, (start, end) in ranges.items():
        split = split_window(start, end)
        mine = []
        if split.hours and stored is not None:
            mine.append(stored.where((F.col("hour") >= F.lit(split.hours[0])) & (F.col("hour") < F.lit(split.hours[1])))
                        .select(*partials_columns()))
            hours += (split.hours[1] - split.hours[0]) / HOUR
        if split.raw:
            inside = reduce(lambda a, b: a | b, [(F.col("ts") >= F.lit(a)) & (F.col("ts") < F.lit(b)) for a, b in split.raw])
            mine.append(partials(log_frame.where((F.col("train_run_id") == train_run_id) & inside), plan))
        parts[name] = [part.withColumn("w", F.lit(name)) for part in mine]
        text = lambda r: f"[{r[0]:%Y-%m-%d %H:%M:%S}, {r[1]:%Y-%m-%d %H:%M:%S})"  # noqa: E731
        log.info("window %s: whole hours %s from %s, raw rows %s", text((start, end)), text(split.hours) if split.hours else "none",
                 profiles_path, " + ".join(map(text, split.raw)) or "none")
    every = [part for mine in parts.values() for part in mine]
    rows: dict[str, list] = {name: [] for name in ranges}
    if every and hours <= driver_merge_hours:     # a few hundred partials: merged here, no shuffle, no Python worker
        frame = reduce(lambda a, b: a.unionByName(b), every).toArrow().to_pandas()
        for (name, *_), row in merged_here(frame, ["w", *GROUP]):
            rows[name].append(row)
    elif every:
        for name, mine in parts.items():
            if mine:
                rows[name] = merged(reduce(lambda a, b: a.unionByName(b), mine).drop("w"), GROUP).collect()
    out = {}
    for name in ranges:
        windows = window_of(rows[name], plan)
        windows.setdefault((ALL, ALL), empty_window(plan))
        out[name] = windows
    return out


def partials_columns() -> list[str]:
    return ["h", "segment_column", "segment_value", "c", "rows", "nulls", "bins", "fine_n", "fine_s", "cat_k", "cat_n",
            "s2", "lo", "hi"]
