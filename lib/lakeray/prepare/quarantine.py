"""Rows rejected by a rule, kept whole with the rule that rejected them."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.prepare.validate import RAW, VIOLATIONS

QUARANTINE_COLUMNS = ["run_id", "source", "key", "rule", "column", "value", "violations", "record", "_file",
                      "_batch_id", "_ingested_at", "quarantined_at"]


def key_json(keys: list[str]) -> Column:
    """The row's typed key as JSON (null when a key column is null): how the quarantine names the
    entity a row belongs to, so an incremental run can replace the rows of the keys it re-stages."""
    present = reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in keys])
    return F.when(present, F.to_json(F.struct(*[F.col(k) for k in keys])))


def quarantine_rows(rejected: DataFrame, source: str, run_id: str, keys: list[str]) -> DataFrame:
    """One row per rejected input row: its key, the first broken rule, all of them, and the raw record."""
    first = F.col(VIOLATIONS)[0]
    return rejected.select(
        F.lit(run_id).alias("run_id"),
        F.lit(source).alias("source"),
        key_json(keys).alias("key"),
        first["rule"].alias("rule"),
        first["column"].alias("column"),
        first["value"].alias("value"),
        F.col(VIOLATIONS).alias("violations"),
        F.to_json(F.col(RAW)).alias("record"),
        F.col("_file"),
        F.col("_batch_id"),
        F.col("_ingested_at"),
        F.current_timestamp().alias("quarantined_at"),
    )
