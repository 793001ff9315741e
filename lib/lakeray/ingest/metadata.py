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
