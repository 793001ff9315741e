"""Delta MERGEs that carry lineage: upsert-and-delete on keys, and replacing the rows of some keys.

A MERGE has no writer options, so the commit's userMetadata comes from the session setting
spark.databricks.delta.commitInfo.userMetadata, set in a clone of the caller's session made for that
one statement (Delta reads it from the session the target table was opened with): MERGEs into
different tables can run at once from threads, each with its own lineage. The source is computed
into a local checkpoint first (nothing to merge: no commit; Delta's own copy of it is then cheap).
"""

from __future__ import annotations

import json
import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeray.lakehouse.delta import TableVersion, latest_version

log = logging.getLogger(__name__)
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
OP = "_merge_op"


def statement_session(spark, lineage: dict | None) -> SparkSession:
    """A clone of `spark` (its settings, same SparkContext) whose commits carry `lineage`; `spark`
    itself is left as it was."""
    session = SparkSession(spark.sparkContext, spark._jsparkSession.cloneSession())
    # the MERGE sources here are local checkpoints already: Delta's own copy of one would drop its
    # broadcast hint (the copy has no size) and shuffle the whole target against it
    session.conf.set("spark.databricks.delta.merge.materializeSource", "none")
    if lineage is not None:
        session.conf.set(_USER_METADATA, json.dumps(lineage, sort_keys=True, default=str))
    else:
        session.conf.unset(_USER_METADATA)
    return session


def _q(column: str) -> str:
    return f"`{column}`"


def _stored_bytes(frame: DataFrame) -> int | None:
    """The bytes a local checkpoint's blocks take (the block manager's count; no Spark job)."""
    try:
        rdd = frame._jdf.queryExecution().analyzed().rdd().id()
        for info in frame.sparkSession.sparkContext._jsc.sc().getRDDStorageInfo():
            if info.id() == rdd:
                return int(info.memSize()) + int(info.diskSize())
    except Exception:  # noqa: BLE001 - not a LogicalRDD (e.g. Spark Connect): no size, no hint
        return None
    return None


def checkpointed(frame: DataFrame) -> DataFrame:
    """`frame` computed now into a local checkpoint: a leaf plan, so what is built on it plans short
    (each stage of a re-planned lineage is one more Spark job: a MERGE copies its source first). When
    it is small (under spark.sql.autoBroadcastJoinThreshold) it carries a broadcast hint: Spark's
    estimate of a checkpoint is that of the plan it came from (a filter of a whole table), so joins
    against it would otherwise shuffle both sides, the big table included."""
    ready = frame.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
    size = _stored_bytes(ready)
    if size is None:
        return ready
    limit = int(ready.sparkSession._jsparkSession.sessionState().conf().autoBroadcastJoinThreshold())
    return F.broadcast(ready) if 0 <= size <= limit else ready


def merge_rows(spark, path: str, rows: DataFrame, gone: DataFrame, on: list[str], *,
               lineage: dict | None = None) -> TableVersion:
    """One commit: the target rows whose `on` values are in `gone` are deleted; `rows` are inserted, or
    update their match when any column differs (an unchanged row is not rewritten). `rows` must have
    the target's columns and unique `on` values; `gone` holds `on` values absent from `rows`. Nothing to
    merge: no commit (the version stays)."""
    from delta.tables import DeltaTable

    columns = rows.columns
    source = rows.withColumn(OP, F.lit("upsert")).unionByName(gone.select(*on).withColumn(OP, F.lit("delete")),
                                                             allowMissingColumns=True)
    match = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in on)
    differs = " OR ".join(f"NOT (t.{_q(c)} <=> s.{_q(c)})" for c in columns)
    values = {_q(c): f"s.{_q(c)}" for c in columns}
    ready = checkpointed(source)
    if not ready.isEmpty():
        (DeltaTable.forPath(statement_session(spark, lineage), path).alias("t").merge(ready.alias("s"), match)
         .whenMatchedDelete(f"s.{OP} = 'delete'")
         .whenMatchedUpdate(f"s.{OP} = 'upsert' AND ({differs})", values)
         .whenNotMatchedInsert(f"s.{OP} = 'upsert'", values)
         .execute())
    version = latest_version(spark, path)
    log.info("merged into %s (version %s)", path, version)
    return TableVersion(path, version)


def replace_rows(spark, path: str, rows: DataFrame, gone: DataFrame, on: list[str], *,
                 lineage: dict | None = None) -> TableVersion:
    """One commit: every target row whose `on` values are in `gone` is deleted and `rows` are appended
    (a table with many rows per key, e.g. the quarantine)."""
    from delta.tables import DeltaTable

    source = rows.withColumn(OP, F.lit("insert")).unionByName(
        gone.select(*on).distinct().withColumn(OP, F.lit("delete")), allowMissingColumns=True)
    match = " AND ".join([*(f"t.{_q(k)} = s.{_q(k)}" for k in on), f"s.{OP} = 'delete'"])
    ready = checkpointed(source)
    if not ready.isEmpty():
        (DeltaTable.forPath(statement_session(spark, lineage), path).alias("t").merge(ready.alias("s"), match)
         .whenMatchedDelete()
         .whenNotMatchedInsert(f"s.{OP} = 'insert'", {_q(c): f"s.{_q(c)}" for c in rows.columns})
         .execute())
    version = latest_version(spark, path)
    log.info("replaced rows in %s (version %s)", path, version)
    return TableVersion(path, version)
