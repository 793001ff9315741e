"""A database silo over JDBC into bronze, idempotently.

Each run snapshots the table and MERGEs it into bronze on a hash of the row's values:
rows already landed are skipped, so a rerun (or a rerun after a crash) adds nothing twice,
while every distinct version of a row is kept for the silver stage's latest-wins dedupe.
Credentials are read from the environment variables the spec names, never logged.
"""

from __future__ import annotations

import logging
import os
import re

from pyspark.sql import functions as F

from lakeray.errors import SourceError
from lakeray.faults import crash_point
from lakeray.ingest.metadata import bronze_properties, create_bronze, with_ingest_metadata
from lakeray.ingest.schema import bronze_read_schema
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


def read_jdbc(spark, name: str, source: Source, fetchsize: int):
    opts = connection_options(name, source, fetchsize)
    schema = bronze_read_schema(source)
    try:
        df = spark.read.format("jdbc").options(**opts).load()
        missing = [c for c in source.columns if c not in df.columns]
    except Exception as exc:  # py4j surfaces the driver's SQLException
        detail = root_cause(exc)[:500].replace(opts["password"], "***")
        raise SourceError(
            f"source '{name}': cannot read table {source.table} at {redact(opts['url'])}: {detail}"
        ) from None
    if missing:
        raise SourceError(f"source '{name}': table {source.table} has no column(s) {', '.join(missing)}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def row_hash(columns: list[str]):
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def ingest_jdbc(spark, name: str, source: Source, bronze_path: str, run_id: str, fetchsize: int) -> int:
    """MERGE the current table contents into bronze; returns the number of rows inserted."""
    from delta.tables import DeltaTable

    snapshot = read_jdbc(spark, name, source, fetchsize)
    staged = with_ingest_metadata(snapshot, name, F.lit(f"jdbc:{source.table}"), run_id)
    staged = staged.withColumn(ROW_HASH, row_hash(list(source.columns)))
    create_bronze(spark, bronze_path, staged.schema, bronze_properties(source.keys, ROW_HASH))
    target = DeltaTable.forPath(spark, bronze_path)
    before = latest_version(spark, bronze_path)
    (target.alias("t")
     .merge(staged.alias("s"), f"t.{ROW_HASH} = s.{ROW_HASH}")
     .whenNotMatchedInsertAll()
     .execute())
    metrics = commit_metrics_since(spark, bronze_path, before) or {}
    inserted = int(metrics.get("numTargetRowsInserted", 0))
    crash_point("ingest.after_bronze_commit", name)
    return inserted
