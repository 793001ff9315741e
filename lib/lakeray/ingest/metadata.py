"""Ingestion metadata columns: which silo, which file, when, in which batch."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def with_ingest_metadata(df: DataFrame, source: str, file_col: Column, batch_id: str) -> DataFrame:
    return df.select(
        "*",
        F.lit(source).alias("_source"),
        file_col.alias("_file"),
        F.current_timestamp().alias("_ingested_at"),
        F.lit(batch_id).alias("_batch_id"),
    )


def bronze_stats_columns(source_keys: list[str], *extra: str) -> list[str]:
    """The bronze columns Delta keeps min/max statistics of: the keys and when/which batch landed them
    (every raw text column would cost a quarter of the write and serves no reader)."""
    return [*source_keys, *extra, "_ingested_at", "_batch_id"]
