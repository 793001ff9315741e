"""Gold: the silver tables joined into one model-ready row per entity (pure transforms)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeray.prepare.aggregates import MATCHED, aggregated, matched_column
from lakeray.prepare.as_of import as_of_joinable
from lakeray.spec.models import Join, PipelineSpec

__all__ = ["build_dataset", "matched_column", "output_columns"]


def _joinable(frame: DataFrame, join: Join) -> DataFrame:
    if join.aggregate is not None:
        return aggregated(frame, join.on, join)
    cols = join.select or [c for c in frame.columns if not c.startswith("_") and c not in join.on]
    return frame.select(*join.on, *[c for c in cols if c not in join.on], F.lit(True).alias(MATCHED))


def build_dataset(silver: dict[str, DataFrame], spec: PipelineSpec) -> DataFrame:
    """Base source joined with 1:1 sources and per-key aggregates of 1:n sources.

    Joins are left joins that keep a `_matched_<i>_<source>` flag: rows an inner join would
    drop are quarantined by the caller (rule no_match:<source>), never lost silently.
    An `as_of` join aggregates only the rows whose event time is before the base row's cutoff
    (point in time: tomorrow's events never reach today's label).
    """
    base_cols = list(spec.sources[spec.dataset.base].columns)
    out = silver[spec.dataset.base].select(*base_cols)
    for i, join in enumerate(spec.dataset.joins):
        if join.as_of is not None:
            right, on = as_of_joinable(out, silver[join.source], join), [*join.on, join.as_of.cutoff]
        else:
            right, on = _joinable(silver[join.source], join), join.on
        out = out.join(right.withColumnRenamed(MATCHED, matched_column(i, join)), on=on, how="left")
        if join.aggregate:
            out = _filled(out, {n: a.fill for n, a in join.aggregate.items() if a.fill is not None})
    return out


def _filled(out: DataFrame, fills: dict[str, float]) -> DataFrame:
    """An aggregate's `fill` where it is null (no row matched), in the column's type. Not `fillna`, which
    fills NaN too: a sum over rows holding a NaN is not 0."""
    numeric = {n: v for n, v in fills.items() if isinstance(out.schema[n].dataType, T.NumericType)}
    return out.withColumns({n: F.coalesce(F.col(n), F.lit(v).cast(out.schema[n].dataType)) for n, v in numeric.items()})


def output_columns(df: DataFrame) -> list[str]:
    return [c for c in df.columns if not c.startswith("_matched_")]
