"""Deterministic train/validation/test assignment, and the checks that the parts can be used.

hash:   a row's split depends only on its entity key (or `column`) and the seed, so it is the same
        across reruns and does not move when new entities arrive.
time:   by a date, timestamp or integer (e.g. year) column and the spec's validation_start / test_start.
column: the dataset's own split column, mapped by the spec's `values` lists; validation may be carved
        from the train rows by a seeded hash of the entity key (validation_fraction). Rows whose value
        is in no list are flagged by `unlisted_rows` (the prepare job quarantines or refuses them).
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.spec.models import Split

SPLIT = "split"
PARTS = ("train", "validation", "test")
BUCKETS = 10_000
MIN_VALUES_PER_PART = 5     # hash on a column: distinct values needed per part at the smallest fraction


def hash_bucket(key: Column, seed: int) -> Column:
    """A stable bucket in [0, 1) for a key."""
    return F.pmod(F.xxhash64(F.lit(seed), key.cast("string")), F.lit(BUCKETS)) / F.lit(BUCKETS)


def _listed(split: Split, part: str, value: Column, column_type: str | None) -> Column:
    literals = [F.lit(v) if column_type is None else F.lit(v).cast(column_type) for v in (split.values or {}).get(part, [])]
    return value.isin(literals) if literals else F.lit(False)


def unlisted_rows(split: Split, column_type: str | None = None) -> Column:
    """True where a column split's value is null or in none of the spec's lists."""
    value = F.col(split.column)
    listed = [_listed(split, part, value, column_type) for part in PARTS]
    return F.coalesce(~(listed[0] | listed[1] | listed[2]), F.lit(True))


def split_column(split: Split, entity_key: str, column_type: str | None = None) -> Column:
    if split.method == "hash":
        bucket = hash_bucket(F.col(split.column or entity_key), split.seed)
        train = split.fractions["train"]
        validation = train + split.fractions["validation"]
        return F.when(bucket < train, "train").when(bucket < validation, "validation").otherwise("test")
    if split.method == "column":
        value = F.col(split.column)
        train = F.lit("train")
        if split.validation_fraction is not None:
            train = F.when(hash_bucket(F.col(entity_key), split.seed) < split.validation_fraction, "validation").otherwise("train")
        return (F.when(_listed(split, "train", value, column_type), train)
                .when(_listed(split, "validation", value, column_type), "validation")
                .when(_listed(split, "test", value, column_type), "test"))
    when = F.col(split.column)
    return (F.when(when < F.lit(split.validation_start), "train")
            .when(when < F.lit(split.test_start), "validation")
            .otherwise("test"))


def column_type(df: DataFrame, split: Split) -> str | None:
    """The Spark type of a column split's column (its listed values are cast to it); None otherwise."""
    return df.schema[split.column].dataType.simpleString() if split.method == "column" else None


def assign_split(df: DataFrame, split: Split, entity_key: str) -> DataFrame:
    return df.withColumn(SPLIT, split_column(split, entity_key, column_type(df, split)))


# -- checks on the assigned rows, before gold is written (each returns problem lines)

def size_problems(counts: dict[str, int], min_rows: int) -> list[str]:
    shown = ", ".join(f"{p}={counts.get(p, 0)}" for p in PARTS)
    problems = []
    for part in PARTS:
        n = counts.get(part, 0)
        if n == 0:
            problems.append(f"split '{part}' is empty (rows per split: {shown})")
        elif n < min_rows:
            problems.append(f"split '{part}' has {n} row(s), fewer than prepare.min_split_rows = {min_rows} in conf/ "
                            f"(rows per split: {shown})")
    return problems


def _top_values(df: DataFrame, column: str, limit: int = 5) -> str:
    rows = df.groupBy(column).count().orderBy(F.desc("count")).limit(limit).collect()
    return ", ".join(f"{'NULL' if r[column] is None else repr(r[column])}={r['count']}" for r in rows)


def hash_column_problems(df: DataFrame, split: Split, entity_key: str) -> list[str]:
    """A hash split on a column sends every row of one value to one part: refuse a column with too few
    distinct values for the fractions to hold (e.g. the dataset's own train/test column)."""
    if split.method != "hash" or not split.column or split.column == entity_key:
        return []
    smallest = min(f for f in split.fractions.values() if f > 0)
    needed = math.ceil(MIN_VALUES_PER_PART / smallest - 1e-9)
    distinct = int(df.agg(F.countDistinct(F.col(split.column))).first()[0])
    if distinct >= needed:
        return []
    return [f"split.column '{split.column}' has {distinct} distinct value(s) ({_top_values(df, split.column)}): a hash "
            f"split sends all rows with one value to one part, so fractions {dict(split.fractions)} need at least "
            f"{needed} distinct values ({MIN_VALUES_PER_PART} per part at the smallest fraction, {smallest}). "
            "To keep the dataset's own split, use split.method: column with values: {train: [...], test: [...]}"]


def unlearnable_classes(assigned: DataFrame, target: str) -> list[str]:
    """Multiclass: a class with rows in validation or test but none in train (a rare class the split
    sent elsewhere) cannot be learned, and scoring it failed after the search. One line per class."""
    counts: dict = {}
    for row in assigned.groupBy(target, SPLIT).count().collect():
        counts.setdefault(row[target], {})[row[SPLIT]] = row["count"]
    return [f"target class {value!r} has {sum(parts.values())} row(s), none in the train split "
            f"({', '.join(f'{p}={parts.get(p, 0)}' for p in PARTS)}): a model cannot learn it. Leave it out "
            f"(an allowed_values expectation on the target quarantines its rows) or merge it into another class"
            for value, parts in sorted(counts.items(), key=lambda kv: str(kv[0])) if not parts.get("train")]


def unlisted_problem(df: DataFrame, split: Split, column_type: str | None) -> str | None:
    """Counts of the rows a column split cannot place, by value (None when there are none)."""
    rejected = df.where(unlisted_rows(split, column_type))
    total = rejected.count()
    if not total:
        return None
    return (f"split.column '{split.column}': {total} row(s) have a value in no list of split.values "
            f"({_top_values(rejected, split.column)}); listed: {dict(split.values or {})}")
