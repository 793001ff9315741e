"""The per-key aggregates of a one-to-many join (Spark column expressions)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.spec.models import Aggregate, Join


def aggregate_target(agg: Aggregate) -> Column:
    """The value `agg` aggregates: its column (1 for a count), null where its `where` does not hold."""
    cond = None
    for col, value in agg.where.items():
        term = F.col(col) == F.lit(value)
        cond = term if cond is None else cond & term
    target = F.col(agg.column) if agg.column else F.lit(1)
    if cond is not None:
        target = F.when(cond, target)
    return target.cast("double") if agg.fn in ("sum", "avg") else target


def aggregate(agg: Aggregate, target: Column) -> Column:
    """`agg`'s function of `target` (an aggregate, or a window function with `.over`)."""
    if agg.fn == "count":
        return F.count(target)
    if agg.fn == "count_distinct":
        return F.count_distinct(target)
    return getattr(F, agg.fn)(target)


MATCHED = "_matched"


def matched_column(index: int, join: Join) -> str:
    """The flag gold keeps for `dataset.joins[index]` (true where the join matched a row): one per join,
    so a source joined twice (a 7-day and an all-time count of its events) has two."""
    return f"_matched_{index}_{join.source}"


def aggregated(frame: DataFrame, by: list[str], join: Join) -> DataFrame:
    """The join's aggregates per value of `by`, with the `_matched` flag. With a distinct count,
    Spark would shuffle twice (by `by` and the counted column, then by `by`); rows hashed by `by` once
    satisfy both aggregations (about 10% of the 10M-row churn gold's join, benchmarks/README.md)."""
    aggs = [aggregate(a, aggregate_target(a)).alias(n) for n, a in join.aggregate.items()]
    if any(a.fn == "count_distinct" for a in join.aggregate.values()):
        frame = frame.repartition(*by)
    return frame.groupBy(*by).agg(*aggs, F.lit(True).alias(MATCHED))
