"""A database silo over JDBC into bronze, idempotently.

Each run snapshots the table and MERGEs it into bronze on a hash of the row's values:
rows already landed are skipped, so a rerun (or a rerun after a crash) adds nothing twice (the first
run, with no bronze yet, writes the snapshot as the table's first commit: nothing to match),
while every distinct version of a row is kept for the silver stage's latest-wins dedupe. With
`deletes.snapshot` the same commit also lands a delete marker for each key that left the table.
With `cursor` a run reads only the rows at or after the greatest cursor value landed so far (less the
lookback), through a predicate Spark pushes down to the database. Credentials are read from the
environment variables the spec names, never logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, DateType, DecimalType, NumericType, TimestampNTZType, TimestampType

from lakeray.errors import SourceError
from lakeray.faults import crash_point
from lakeray.ingest.metadata import SNAPSHOT_DELETE, bronze_properties, create_bronze, with_ingest_metadata
from lakeray.ingest.schema import SPARK_TYPES, bronze_read_schema, quoted
from lakeray.lakehouse import commit_metrics_since, latest_version
from lakeray.spark.session import root_cause
from lakeray.spec.models import Source

log = logging.getLogger(__name__)
ROW_HASH = "_row_hash"


def _env(var: str, name: str, what: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise SourceError(f"source '{name}': environment variable {var} ({what}) is not set")
    return value


def redact(url: str) -> str:
    """A JDBC URL safe for logs: no password=..., no user:pass@."""
    url = re.sub(r"(?i)(password|pwd)=[^&;]*", r"\1=***", url)
    return re.sub(r"//[^/@]*:[^/@]*@", "//***@", url)


def connection_options(name: str, source: Source, fetchsize: int) -> dict[str, str]:
    conn = source.connection
    opts = {
        "url": _env(conn.url_env, name, "JDBC URL"),
        "user": _env(conn.user_env, name, "database user"),
        "password": _env(conn.password_env, name, "database password"),
        "driver": conn.driver,
        "dbtable": source.table,
        "fetchsize": str(fetchsize),
    }
    if source.partitioning:
        p = source.partitioning
        opts.update({"partitionColumn": p.column, "lowerBound": str(p.lower), "upperBound": str(p.upper),
                     "numPartitions": str(p.num_partitions)})
    return opts


def cursor_floor(spark, bronze_path: str, source: Source):
    """The least cursor value this run must read (None: read the whole table): the greatest value
    bronze holds, less the cursor's lookback. One aggregate over a column of bronze."""
    if source.cursor is None or latest_version(spark, bronze_path) is None:
        return None
    column, lookback = source.cursor.column, source.cursor.lookback
    bronze = spark.read.format("delta").load(bronze_path)
    if column not in bronze.columns:        # a column the spec added since: nothing landed to go by
        return None
    top = bronze.agg(F.max(column)).first()[0]
    if top is None or not lookback:
        return top
    if isinstance(top, dt.datetime):
        return top - dt.timedelta(seconds=lookback)
    if isinstance(top, dt.date):
        return top - dt.timedelta(days=math.ceil(lookback / 86400))
    return top - lookback


def _from_floor(df: DataFrame, name: str, source: Source, floor) -> DataFrame:
    """The rows at or after `floor`, compared on the column as the database types it, so Spark pushes
    the predicate into the query (a text column would compare as text: refused)."""
    column = source.cursor.column
    kind = df.schema[column].dataType
    if not isinstance(kind, (NumericType, DateType, TimestampType, TimestampNTZType)):
        raise SourceError(f"source '{name}': cursor.column '{column}' is {kind.simpleString()} in table "
                          f"{source.table}; a cursor must be a number, date or timestamp in the database")
    return df.where(F.col(column).isNull() | (F.col(column) >= F.lit(floor).cast(kind)))


def fetched_as(df: DataFrame, source: Source) -> dict[str, str]:
    """The columns the driver must fetch in another type than Spark maps them to (JDBC's customSchema):
    an unbounded NUMERIC comes as Decimal(38, 18), which a value of 1e20 or more overflows (the read
    fails), so it is fetched in its declared type; a `bytea` or `time` declared string is fetched as the
    database's text for it (`\\xdeadbeef`, `10:00:00`), not as bytes a cast decodes into U+FFFD garbage
    or as a timestamp on 1970-01-01."""
    out = {}
    for column, declared in source.columns.items():
        field = df.schema[source.in_silo(column)]
        if isinstance(field.dataType, DecimalType):
            out[field.name] = SPARK_TYPES[declared].simpleString()
        elif declared == "string" and (isinstance(field.dataType, BinaryType) or field.metadata.get("logical_time_type")):
            out[field.name] = "string"
    return out


def read_jdbc(spark, name: str, source: Source, fetchsize: int, floor=None):
    """The table (with `floor`, its rows whose cursor is at or after it, or NULL), typed as declared."""
    opts = connection_options(name, source, fetchsize)
    schema = bronze_read_schema(source)
    try:
        df = spark.read.format("jdbc").options(**opts).load()
        missing = [source.in_silo(c) for c in source.columns if source.in_silo(c) not in df.columns]
    except Exception as exc:  # py4j surfaces the driver's SQLException
        detail = root_cause(exc)[:500].replace(opts["password"], "***")
        raise SourceError(
            f"source '{name}': cannot read table {source.table} at {redact(opts['url'])}: {detail}"
        ) from None
    if missing:
        raise SourceError(f"source '{name}': table {source.table} has no column(s) {', '.join(missing)} "
                          f"(it has {', '.join(df.columns)}; names are matched exactly)")
    fetched = fetched_as(df, source)
    if fetched:
        custom = ", ".join(f"{quoted(c)} {kind}" for c, kind in fetched.items())
        df = spark.read.format("jdbc").options(**opts).option("customSchema", custom).load()
    df = df.withColumnsRenamed({silo: column for silo, column in source.rename.items()})
    if floor is not None:
        df = _from_floor(df, name, source, floor)
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def row_hash(columns: list[str]):
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def with_snapshot_deletes(staged: DataFrame, bronze: DataFrame, name: str, source: Source, run_id: str) -> DataFrame:
    """The snapshot diff (sources.<name>.deletes.snapshot): a delete marker for every key that is live in
    bronze (its last landed row is not a marker) and absent from this snapshot, and a fresh row hash for
    the snapshot's rows of keys that are marked deleted, so a key that comes back with the very values
    it had lands again. A marker carries the greatest `latest_by` its key has had, so it beats every
    version landed so far; a rerun finds the keys marked and adds nothing twice."""
    keys = list(source.keys)
    present = reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in keys])
    marker = F.col("_file").startswith(SNAPSHOT_DELETE)
    by = [source.latest_by] if source.latest_by and source.latest_by not in keys else []
    state = (bronze.where(present).groupBy(*keys)
             .agg(F.max(F.when(marker, F.col("_ingested_at"))).alias("_gone_at"),
                  F.max(F.when(~marker, F.col("_ingested_at"))).alias("_live_at"), *[F.max(c).alias(c) for c in by])
             .withColumn("_deleted", F.col("_gone_at").isNotNull()
                         & (F.col("_live_at").isNull() | (F.col("_gone_at") > F.col("_live_at")))))
    gone = (state.where(~F.col("_deleted")).join(staged.where(present).select(*keys).distinct(), keys, "left_anti"))
    fields = {f.name: f.dataType for f in staged.schema.fields}
    filled = {**{k: F.col(k) for k in keys}, **{c: F.col(c) for c in by},
              "_source": F.lit(name),
              "_file": F.lit(f"{SNAPSHOT_DELETE}{source.table}"), "_ingested_at": F.current_timestamp(),
              "_batch_id": F.lit(run_id),
              ROW_HASH: F.sha2(F.concat_ws("|", F.to_json(F.struct(*keys)), F.lit(run_id), F.lit("deleted")), 256)}
    markers = gone.select(*[filled.get(n, F.lit(None)).cast(t).alias(n) for n, t in fields.items()])
    revived = staged.join(state.where(F.col("_deleted")).select(*keys, "_deleted"), keys, "left").select(
        *[(F.when(F.col("_deleted"), F.sha2(F.concat_ws("|", F.col(ROW_HASH), F.lit(run_id)), 256))
           .otherwise(F.col(ROW_HASH)) if n == ROW_HASH else F.col(n)).alias(n) for n in fields])
    return revived.unionByName(markers)


def _first_load(staged: DataFrame, bronze_path: str, source: Source) -> int | None:
    """The table's first commit: the snapshot written with bronze's properties, one commit instead of an
    empty table and a MERGE against it (about 0.5 s of a 20k-row first ingest). Returns the rows
    written; None when another run created the table meanwhile (the caller MERGEs, as on any rerun)."""
    from pyspark.errors import AnalysisException

    from lakeray.lakehouse import commit_info

    writer = staged.write.format("delta").mode("errorifexists")
    for key, value in bronze_properties(source.keys, ROW_HASH).items():
        writer = writer.option(key, value)
    try:
        writer.save(bronze_path)
    except AnalysisException as exc:
        if latest_version(staged.sparkSession, bronze_path) is None:
            raise
        log.info("ingest: %s was created meanwhile (%s); merging", bronze_path, str(exc).splitlines()[0])
        return None
    return int(commit_info(staged.sparkSession, bronze_path, 0)["metrics"].get("numOutputRows", 0))


CONVERSION_ERRORS = ("CAST_INVALID_INPUT", "CAST_OVERFLOW", "NUMERIC_VALUE_OUT_OF_RANGE", "Bad value for type")


def ingest_jdbc(spark, name: str, source: Source, bronze_path: str, run_id: str, fetchsize: int) -> int:
    """MERGE the current table contents into bronze; returns the number of rows inserted. A value the
    declared type cannot hold (text for a double, an overflow) stops the source with a SourceError
    naming it; nothing is written."""
    try:
        return _ingest_jdbc(spark, name, source, bronze_path, run_id, fetchsize)
    except Exception as exc:
        cause = root_cause(exc)
        if not any(marker in f"{exc} {cause}" for marker in CONVERSION_ERRORS):
            raise
        detail = cause.strip().splitlines()[0][:400]
        raise SourceError(
            f"source '{name}': a value in {source.table} does not convert to its declared type "
            f"({', '.join(f'{c} {t}' for c, t in source.columns.items())}): {detail}. Nothing was written; declare "
            "the column as the database holds it (e.g. string) and let an expectation quarantine such rows, or "
            "fix the row") from None


def _ingest_jdbc(spark, name: str, source: Source, bronze_path: str, run_id: str, fetchsize: int) -> int:
    from delta.tables import DeltaTable

    diff = source.deletes is not None and source.deletes.snapshot
    floor = cursor_floor(spark, bronze_path, source)
    if floor is not None:
        log.info("ingest %s: reading the rows of %s with %s >= %s or NULL (cursor)", name, source.table,
                 source.cursor.column, floor)
    snapshot = read_jdbc(spark, name, source, fetchsize, floor)
    if diff:        # read the table once: the diff and the rows must come from the same snapshot
        snapshot = snapshot.localCheckpoint()
    staged = with_ingest_metadata(snapshot, name, F.lit(f"jdbc:{source.table}"), run_id)
    staged = staged.withColumn(ROW_HASH, row_hash(list(source.columns)))
    if latest_version(spark, bronze_path) is None:
        inserted = _first_load(staged, bronze_path, source)
        if inserted is not None:
            log.info("ingest %s: %d row(s) read from %s, %d new", name, inserted, source.table, inserted)
            crash_point("ingest.after_bronze_commit", name)
            return inserted
    create_bronze(spark, bronze_path, staged.schema, bronze_properties(source.keys, ROW_HASH))
    target = DeltaTable.forPath(spark, bronze_path)
    before = latest_version(spark, bronze_path)
    if diff:
        staged = with_snapshot_deletes(staged, target.toDF(), name, source, run_id)
    (target.alias("t")
     .merge(staged.alias("s"), f"t.{ROW_HASH} = s.{ROW_HASH}")
     .whenNotMatchedInsertAll()
     .execute())
    metrics = commit_metrics_since(spark, bronze_path, before) or {}
    inserted = int(metrics.get("numTargetRowsInserted", 0))
    if "numSourceRows" in metrics:
        log.info("ingest %s: %s row(s) read from %s, %d new", name, metrics["numSourceRows"], source.table, inserted)
    if diff and inserted:
        marked = (spark.read.format("delta").load(bronze_path)
                  .where((F.col("_batch_id") == run_id) & F.col("_file").startswith(SNAPSHOT_DELETE)).count())
        if marked:
            log.info("ingest %s: %d key(s) no longer in %s marked deleted (deletes.snapshot)", name, marked,
                     source.table)
    crash_point("ingest.after_bronze_commit", name)
    return inserted
