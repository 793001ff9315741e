"""Gold: the silver tables joined into one model-ready row per entity (pure transforms)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.spec.models import Aggregate, Join, PipelineSpec

CUTOFF = "_as_of_cutoff"


def _aggregate(name: str, agg: Aggregate) -> Column:
    cond = None
    for col, value in agg.where.items():
        term = F.col(col) == F.lit(value)
        cond = term if cond is None else cond & term
    target = F.col(agg.column) if agg.column else F.lit(1)
    if cond is not None:
        target = F.when(cond, target)
    if agg.fn == "count":
        expr = F.count(target)
    elif agg.fn == "count_distinct":
        expr = F.count_distinct(target)
    else:
        expr = getattr(F, agg.fn)(target.cast("double") if agg.fn in ("sum", "avg") else target)
    return expr.alias(name)


def matched_column(join: Join) -> str:
    return f"_matched_{join.source}"


def _aggregated(frame: DataFrame, by: list[str], join: Join) -> DataFrame:
    """The join's aggregates per value of `by`, with the `_matched_<source>` flag. With a distinct count,
    Spark would shuffle twice (by `by` and the counted column, then by `by`); rows hashed by `by` once
    satisfy both aggregations (about 10% of the 10M-row churn gold's join, benchmarks/README.md)."""
    aggs = [_aggregate(n, a) for n, a in join.aggregate.items()]
    if any(a.fn == "count_distinct" for a in join.aggregate.values()):
        frame = frame.repartition(*by)
    return frame.groupBy(*by).agg(*aggs, F.lit(True).alias(matched_column(join)))


def _as_of_joinable(base: DataFrame, frame: DataFrame, join: Join) -> DataFrame:
    """Per (key, cutoff) of the base: the aggregates over the joined rows known before the cutoff.
    Joined back on the keys and the cutoff, so a base row without a cutoff matches nothing."""
    as_of = join.as_of
    cutoff, event = F.col(CUTOFF), F.col(as_of.event_time)
    entities = base.select(*join.on, F.col(as_of.cutoff).alias(CUTOFF)).where(cutoff.isNotNull()).distinct()
    known = (event <= cutoff) if as_of.inclusive else (event < cutoff)
    if as_of.lookback_days:
        known = known & (event >= cutoff - F.make_dt_interval(F.lit(as_of.lookback_days)))
    events = frame.join(entities, on=join.on, how="inner").where(event.isNotNull() & known)
    return _aggregated(events, [*join.on, CUTOFF], join).withColumnRenamed(CUTOFF, as_of.cutoff)


def _joinable(frame: DataFrame, join: Join) -> DataFrame:
    if join.aggregate is not None:
        return _aggregated(frame, join.on, join)
    cols = join.select or [c for c in frame.columns if not c.startswith("_") and c not in join.on]
    return frame.select(*join.on, *[c for c in cols if c not in join.on], F.lit(True).alias(matched_column(join)))


def build_dataset(silver: dict[str, DataFrame], spec: PipelineSpec) -> DataFrame:
    """Base source joined with 1:1 sources and per-key aggregates of 1:n sources.

    Joins are left joins that keep a `_matched_<source>` flag: rows an inner join would
    drop are quarantined by the caller (rule no_match:<source>), never lost silently.
    An `as_of` join aggregates only the rows whose event time is before the base row's cutoff
    (point in time: tomorrow's events never reach today's label).
    """
    base_cols = list(spec.sources[spec.dataset.base].columns)
    out = silver[spec.dataset.base].select(*base_cols)
    for join in spec.dataset.joins:
        if join.as_of is not None:
            out = out.join(_as_of_joinable(out, silver[join.source], join), on=[*join.on, join.as_of.cutoff], how="left")
        else:
            out = out.join(_joinable(silver[join.source], join), on=join.on, how="left")
        if join.aggregate:
            fills = {n: a.fill for n, a in join.aggregate.items() if a.fill is not None}
            if fills:
                out = out.fillna(fills)
    return out


def output_columns(df: DataFrame) -> list[str]:
    return [c for c in df.columns if not c.startswith("_matched_")]
