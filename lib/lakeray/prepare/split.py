"""Deterministic train/validation/test assignment.

hash: a row's split depends only on its entity key and the seed, so it is the same across
      reruns and does not move when new entities arrive.
time: by a date column and the spec's validation_start / test_start.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.spec.models import Split

SPLIT = "split"
BUCKETS = 10_000


def hash_bucket(key: Column, seed: int) -> Column:
    """A stable bucket in [0, 1) for a key."""
    return F.pmod(F.xxhash64(F.lit(seed), key.cast("string")), F.lit(BUCKETS)) / F.lit(BUCKETS)


def split_column(split: Split, entity_key: str) -> Column:
    if split.method == "hash":
        bucket = hash_bucket(F.col(split.column or entity_key), split.seed)
        train = split.fractions["train"]
        validation = train + split.fractions["validation"]
        return F.when(bucket < train, "train").when(bucket < validation, "validation").otherwise("test")
    when = F.col(split.column)
    return (F.when(when < F.lit(split.validation_start), "train")
            .when(when < F.lit(split.test_start), "validation")
            .otherwise("test"))


def assign_split(df: DataFrame, split: Split, entity_key: str) -> DataFrame:
    return df.withColumn(SPLIT, split_column(split, entity_key))
