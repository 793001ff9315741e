"""Ingestion metadata columns: which silo, which file, when, in which batch."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.lakehouse import latest_version, stats_property
from lakeray.spark.local import local_frame

# the `_file` of a delete marker that a JDBC snapshot diff lands (sources.<name>.deletes.snapshot): it
# sorts below the `jdbc:<table>` of the rows read, so a live row landed at the same instant wins a tie
SNAPSHOT_DELETE = "jdbc-deleted:"


def with_ingest_metadata(df: DataFrame, source: str, file_col: Column, batch_id: str) -> DataFrame:
    return df.select(
        "*",
        F.lit(source).alias("_source"),
        file_col.alias("_file"),
        F.current_timestamp().alias("_ingested_at"),
        F.lit(batch_id).alias("_batch_id"),
    )


def bronze_properties(source_keys: list[str], *extra: str) -> dict[str, str]:
    """Table properties of a bronze table, set when it is created: min/max statistics only for the keys
    and when/which batch landed a row (every raw text column would cost a quarter of the write and
    serves no reader), and the change data feed, which tells prepare the rows added since its last
    run (lakeray.prepare.incremental; appends cost nothing extra: their files are the feed)."""
    stats = stats_property([*source_keys, *extra, "_ingested_at", "_batch_id"])
    return {stats[0]: stats[1], "delta.enableChangeDataFeed": "true"}


def create_bronze(spark, path: str, schema, properties: dict[str, str]) -> None:
    """An empty bronze table with its properties, unless one exists. Written as an empty append, not
    with DeltaTable.createIfNotExists: a write that failed before its first commit (a batch whose every
    file Spark could not read) leaves a `_delta_log` folder without a commit, which the builder takes
    for a table it then cannot find (DELTA_TABLE_NOT_FOUND), so the source could never start."""
    if latest_version(spark, path) is not None:
        return
    local_frame(spark, [], schema).write.format("delta").mode("append").options(**properties).save(path)
