"""Point-in-time (as-of) aggregates: per base row, the joined rows known before its cutoff."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakeray.prepare.aggregates import MATCHED, aggregate, aggregate_target, aggregated
from lakeray.spec.models import Join

CUTOFF = "_as_of_cutoff"
WINDOW = "_as_of_window"
AT, TIE = "_as_of_at", "_as_of_tie"


def as_of_joinable(base: DataFrame, frame: DataFrame, join: Join) -> DataFrame:
    """Per (key, cutoff) of the base: the aggregates over the joined rows known before the cutoff, to
    be joined back on the keys and the cutoff (a base row without a cutoff matches nothing).

    With a lookback, events meet cutoffs on the key and the lookback window (`_windowed`). Without
    one, every earlier event counts, and a key with a long history (an airport's hourly weather)
    would meet each of its cutoffs with all of it: the aggregates are then running ones over the
    key's events and cutoffs in time order (`_running`), one sort instead of a join that grows with
    the square of a key's rows."""
    as_of = join.as_of
    keyed = F.lit(True)
    for column in join.on:
        keyed = keyed & F.col(column).isNotNull()
    entities = (base.select(*join.on, F.col(as_of.cutoff).alias(CUTOFF))
                .where(F.col(CUTOFF).isNotNull() & keyed).distinct())
    frame = frame.where(F.col(as_of.event_time).isNotNull() & keyed)
    if as_of.lookback_micros:
        out = _windowed(entities, frame, join)
    else:
        out = _running(entities, frame, join)
    return out.withColumnRenamed(CUTOFF, as_of.cutoff)


def known_before(event: Column, cutoff: Column, join: Join) -> Column:
    """Whether an event at `event` counts for a base row whose cutoff is `cutoff`."""
    as_of = join.as_of
    known = (event <= cutoff) if as_of.inclusive else (event < cutoff)
    if as_of.lookback_micros:
        earliest = F.timestamp_micros(F.unix_micros(cutoff.cast("timestamp")) - F.lit(as_of.lookback_micros))
        known = known & (event.cast("timestamp") >= earliest)
    return known


def _window(column: Column, micros: int) -> Column:
    """The lookback window `column` falls in, counted from the epoch (a floor, before 1970 too)."""
    at = F.unix_micros(column.cast("timestamp"))
    return ((at - F.pmod(at, F.lit(micros))).cast("decimal(38,0)") / F.lit(micros)).cast("long")


def _windowed(entities: DataFrame, frame: DataFrame, join: Join) -> DataFrame:
    """Events joined to the cutoffs they precede. With a lookback, on the key and the lookback window
    too: an event counts for a cutoff only in the cutoff's window or the one before it, so each cutoff
    meets about two windows of its key's rows instead of all of them."""
    on, micros = list(join.on), join.as_of.lookback_micros
    event = F.col(join.as_of.event_time)
    if micros:
        window = _window(F.col(CUTOFF), micros)
        entities = entities.withColumn(WINDOW, F.explode(F.array(window - 1, window)))
        frame = frame.withColumn(WINDOW, _window(event, micros))
        on.append(WINDOW)
    events = frame.join(entities, on=on, how="inner").where(known_before(event, F.col(CUTOFF), join))
    return aggregated(events, [*join.on, CUTOFF], join)


def _running(entities: DataFrame, frame: DataFrame, join: Join) -> DataFrame:
    """Each key's events and cutoffs in one time order, the aggregates running over it, read at the
    cutoffs. At equal times an event comes first when it counts (`inclusive`), after the cutoff when not.
    A distinct count, which no running window computes, is the running count of its values' first
    occurrences in the key's history (`_first_seen`)."""
    event_tie, cutoff_tie = (0, 1) if join.as_of.inclusive else (1, 0)
    events = frame.select(*join.on, F.col(join.as_of.event_time).cast("timestamp").alias(AT), F.lit(event_tie).alias(TIE),
                          F.lit(None).cast(entities.schema[CUTOFF].dataType).alias(CUTOFF),
                          *[aggregate_target(a).alias(n) for n, a in join.aggregate.items()])
    for name, agg in join.aggregate.items():
        if agg.fn == "count_distinct":
            events = events.withColumn(name, _first_seen(F.col(name), join))
    cutoffs = entities.select(*join.on, F.col(CUTOFF).cast("timestamp").alias(AT), F.lit(cutoff_tie).alias(TIE),
                              F.col(CUTOFF), *[F.lit(None).alias(n) for n in join.aggregate])
    before = Window.partitionBy(*join.on).orderBy(AT, TIE).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    is_event = F.col(CUTOFF).isNull()
    seen = F.count(F.when(is_event, 1)).over(before) > 0
    aggs = [F.when(seen, (F.sum(n) if a.fn == "count_distinct" else aggregate(a, F.col(n))).over(before)).alias(n)
            for n, a in join.aggregate.items()]
    return (events.unionByName(cutoffs)
            .select(*join.on, CUTOFF, *aggs, F.when(seen, True).alias(MATCHED))
            .where(~is_event))


def _first_seen(value: Column, join: Join) -> Column:
    """1 on the earliest event of each of a key's distinct non-null values, else 0: their running sum
    is the running distinct count (Spark's window partitioning normalises -0.0 and NaN as its
    count_distinct does)."""
    first = Window.partitionBy(*join.on, value).orderBy(AT)
    return F.when(value.isNotNull() & (F.row_number().over(first) == 1), 1).otherwise(0)


def entities_reached(join: Join, old: DataFrame, new: DataFrame, base: DataFrame, key: str) -> DataFrame:
    """The entities (`key`) of the base rows that an as-of join's changed rows count for, in their old
    or new version: an incremental run rebuilds those, not every base row sharing a join value (the
    day's weather at an airport reaches that day's flights, not the year's)."""
    event, cutoff = "_changed_event_time", "_base_cutoff"
    changed = (old.select(*join.on, F.col(join.as_of.event_time).alias(event))
               .unionByName(new.select(*join.on, F.col(join.as_of.event_time).alias(event)))
               .where(F.col(event).isNotNull()).distinct())
    cutoffs = base.select(key, *[c for c in join.on if c != key], F.col(join.as_of.cutoff).alias(cutoff))
    return (cutoffs.join(changed, list(join.on), "inner")
            .where(known_before(F.col(event), F.col(cutoff), join)).select(key))
