"""Set-level cleaning: latest-record-wins dedupe on keys, then uniqueness expectations.

Output column `_status`: clean | quarantined | duplicate | deleted. Only valid rows compete in
the dedupe, so the latest *valid* version of an entity wins; rows that break a rule are
quarantined, never counted as duplicates. When the winner is a delete marker (sources.<name>.deletes)
the key is deleted: the marker is `deleted`, its older versions `duplicate`, and nothing reaches silver.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeray.prepare.validate import RAW, VIOLATIONS, is_delete_marker, violation
from lakeray.spec.models import Source

STATUS = "_status"


def dedupe_latest(df: DataFrame, source: Source) -> DataFrame:
    valid = F.size(F.col(VIOLATIONS)) == 0
    order = []
    if source.latest_by:
        order.append(F.col(source.latest_by).desc_nulls_last())
    # last tie-break: a hash of the landed row, so reruns pick the same row among equals
    order += [F.col("_ingested_at").desc(), F.col("_file").desc(), F.xxhash64(F.col(RAW)).desc()]
    window = Window.partitionBy(valid.alias("_valid"), *[F.col(k) for k in source.keys]).orderBy(*order)
    ranked = df.withColumn("_rank", F.row_number().over(window))
    status = (F.when(~valid, "quarantined").when(F.col("_rank") > 1, "duplicate")
              .when(is_delete_marker(source), "deleted").otherwise("clean"))
    return ranked.withColumn(STATUS, status).drop("_rank")


def check_unique(df: DataFrame, source: Source, outside: DataFrame | None = None) -> DataFrame:
    """Among surviving rows, every row that shares a value of a `unique` column is quarantined.
    `outside`: surviving rows that are not in `df` (an incremental run re-stages only some keys; the
    rest of silver still holds its values), counted as if they were."""
    out = df
    for exp in source.expectations:
        if exp.rule != "unique":
            continue
        col = F.col(exp.column)
        window = Window.partitionBy(F.col(STATUS), col)
        count = F.count(F.lit(1)).over(window)
        if outside is not None:
            held = (outside.where(F.col(exp.column).isNotNull()).groupBy(F.col(exp.column).alias("_held_value"))
                    .agg(F.count(F.lit(1)).alias("_held")))
            out = out.join(held, col == F.col("_held_value"), "left").drop("_held_value")
            count = count + F.coalesce(F.col("_held"), F.lit(0))
        clash = (F.col(STATUS) == "clean") & col.isNotNull() & (count > 1)
        out = out.withColumn(VIOLATIONS, F.when(clash, F.array_append(F.col(VIOLATIONS), violation(F.lit(True), exp.label, exp.column, col)))
                             .otherwise(F.col(VIOLATIONS)))
        out = out.withColumn(STATUS, F.when(clash, F.lit("quarantined")).otherwise(F.col(STATUS)))
        if outside is not None:
            out = out.drop("_held")
    return out


def classify(df: DataFrame, source: Source, outside: DataFrame | None = None) -> DataFrame:
    return check_unique(dedupe_latest(df, source), source, outside)
