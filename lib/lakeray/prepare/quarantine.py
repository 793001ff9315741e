"""Rows rejected by a rule, kept whole with the rule that rejected them."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeray.prepare.validate import RAW, VIOLATIONS

QUARANTINE_COLUMNS = ["run_id", "source", "rule", "column", "value", "violations", "record", "_file",
                      "_batch_id", "_ingested_at", "quarantined_at"]


def quarantine_rows(rejected: DataFrame, source: str, run_id: str) -> DataFrame:
    """One row per rejected input row: the first broken rule, all of them, and the raw record."""
    first = F.col(VIOLATIONS)[0]
    return rejected.select(
        F.lit(run_id).alias("run_id"),
        F.lit(source).alias("source"),
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
