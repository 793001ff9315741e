"""Gold's joins: point-in-time (as-of) aggregates use only the events known before each entity's cutoff."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from lakeray.prepare.dataset import build_dataset
from lakeray.prepare.steps import VIOLATIONS, gold_stage
from lakeray.spec.loader import parse_spec
from lakeray.spec.models import Join

D = dt.date
NAN = float("nan")


def _spec(as_of: dict | None):
    join = {"source": "events", "on": "user_id",
            "aggregate": {"n_events": {"fn": "count", "fill": 0}, "spend": {"fn": "sum", "column": "amount", "fill": 0},
                          "last_event": {"fn": "max", "column": "at"},
                          "amounts": {"fn": "count_distinct", "column": "amount", "fill": 0}}}
    if as_of is not None:
        join["as_of"] = as_of
    return parse_spec({
        "name": "asof", "task": "binary", "entity_key": "user_id", "target": "label",
        "sources": {
            "users": {"format": "csv", "path": "users", "keys": ["user_id"],
                      "columns": {"user_id": "string", "label_date": "date", "label": "boolean"}},
            "events": {"format": "parquet", "path": "events", "keys": ["event_id"],
                       "columns": {"event_id": "string", "user_id": "string", "at": "timestamp", "amount": "double",
                                   "label_date": "date"}},
        },
        "dataset": {"base": "users", "joins": [join]},
        "features": {"n_events": "numeric", "spend": "numeric"},
        "metric": {"primary": "roc_auc"},
        "baseline": {"model": "logistic"},
    }, "inline.yaml")


@pytest.fixture(scope="module")
def silver(spark):
    users = spark.createDataFrame(
        [("u1", D(2024, 3, 1), True), ("u2", D(2024, 1, 1), False), ("u3", None, False), ("u4", D(2024, 3, 1), True)],
        "user_id string, label_date date, label boolean")
    ts = dt.datetime
    events = spark.createDataFrame([
        # u1: two events known before its label date, two after it (the leak), one on the day itself
        ("e1", "u1", ts(2024, 1, 10), 10.0), ("e2", "u1", ts(2024, 2, 28, 23, 59), 5.0),
        ("e3", "u1", ts(2024, 3, 1, 0, 0), 100.0), ("e4", "u1", ts(2024, 3, 2), 1000.0), ("e5", "u1", ts(2025, 1, 1), 1e6),
        # u2: every event is after the cutoff -> no match, filled
        ("e6", "u2", ts(2024, 6, 1), 7.0),
        # u3: no cutoff -> nothing is known to precede it
        ("e7", "u3", ts(2020, 1, 1), 3.0),
        # u4: an event without a time cannot be placed before the cutoff; one long ago
        ("e8", "u4", None, 50.0), ("e9", "u4", ts(2023, 1, 1), 2.0),
    ], "event_id string, user_id string, at timestamp, amount double").withColumn("label_date", F.lit(D(1999, 1, 1)))
    return {"users": users, "events": events}


def _rows(frame):
    return {r["user_id"]: (r["n_events"], r["spend"], r["last_event"]) for r in frame.collect()}


def test_without_as_of_future_events_leak_into_the_aggregate(silver):
    rows = _rows(build_dataset(silver, _spec(None)))
    assert rows["u1"][:2] == (5, 1_001_115.0)       # the leak the as-of join exists to stop


def test_as_of_aggregates_only_events_before_the_cutoff(silver):
    gold = build_dataset(silver, _spec({"event_time": "at", "cutoff": "label_date"}))
    rows = _rows(gold)
    assert rows["u1"] == (2, 15.0, dt.datetime(2024, 2, 28, 23, 59))
    assert rows["u2"] == (0, 0.0, None)               # only future events: fill, and no match
    assert rows["u3"] == (0, 0.0, None)               # no cutoff: nothing counts
    assert rows["u4"] == (1, 2.0, dt.datetime(2023, 1, 1))   # the untimed event is left out
    assert gold.count() == 4                           # one row per entity, none lost
    # the base's own label_date is kept (the source's same-named column never reaches gold)
    assert {r["user_id"]: r["label_date"] for r in gold.collect()}["u1"] == D(2024, 3, 1)
    assert {r["user_id"]: r["_matched_0_events"] for r in gold.collect()} == {"u1": True, "u2": None, "u3": None, "u4": True}


def test_as_of_inclusive_and_lookback(silver):
    rows = _rows(build_dataset(silver, _spec({"event_time": "at", "cutoff": "label_date", "inclusive": True})))
    assert rows["u1"][:2] == (3, 115.0)               # the event at the cutoff itself now counts
    rows = _rows(build_dataset(silver, _spec({"event_time": "at", "cutoff": "label_date", "lookback_days": 30})))
    assert rows["u1"][:2] == (1, 5.0)                 # 2024-01-10 is more than 30 days before 2024-03-01
    assert rows["u4"][:2] == (0, 0.0)
    # two-day lookback windows counted from the epoch start on 2024-02-29: the 28th's event is in the
    # window before the cutoff's, and still counts
    rows = _rows(build_dataset(silver, _spec({"event_time": "at", "cutoff": "label_date", "lookback_days": 2})))
    assert rows["u1"][:2] == (1, 5.0)


def test_a_source_joined_twice_keeps_one_match_flag_per_join(silver):
    """An all-time count and a 7-day count of the same events, the second one required (inner): each join
    has its own flag, and a user with no event in the 7 days is quarantined for it (not a crash on an
    ambiguous column)."""
    spec = _spec({"event_time": "at", "cutoff": "label_date"})
    week = {"source": "events", "on": "user_id", "how": "inner", "aggregate": {"n_7d": {"fn": "count", "fill": 0}},
            "as_of": {"event_time": "at", "cutoff": "label_date", "lookback_days": 7}}
    spec = spec.model_copy(update={"dataset": spec.dataset.model_copy(
        update={"joins": [*spec.dataset.joins, Join.model_validate(week)]})})
    staged = gold_stage(build_dataset(silver, spec), spec)
    rows = {r["user_id"]: (r["n_events"], r["n_7d"], list(r[VIOLATIONS])) for r in staged.collect()}
    assert rows["u1"][:2] == (2, 1) and rows["u1"][2] == []            # e2, two days before, in both
    assert rows["u4"][:2] == (1, 0)
    assert [v["rule"] for v in rows["u4"][2]] == ["no_match:events"]


_DAY = dt.datetime(2024, 1, 1)
_events = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3"]),
                             st.one_of(st.none(), st.integers(0, 24).map(lambda h: _DAY + dt.timedelta(hours=12 * h))),
                             # repeated amounts, -0.0 beside 0.0 and NaN: the distinct count's hard cases
                             st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, -0.0, 2.5, NAN]))),
                      min_size=3, max_size=25)
_TIE = [("u1", _DAY + dt.timedelta(days=2), 5.0), ("u1", _DAY, 1.0), ("u2", _DAY + dt.timedelta(hours=36), 2.0),
        ("u1", _DAY + dt.timedelta(days=1), 5.0), ("u2", _DAY, -0.0), ("u2", _DAY + dt.timedelta(days=2), 0.0)]
_TIE_CUTOFF = {"u1": (_DAY + dt.timedelta(days=2)).date(), "u2": (_DAY + dt.timedelta(days=2)).date(), "u3": None}
_cutoffs = st.fixed_dictionaries({u: st.one_of(st.none(), st.integers(0, 12).map(lambda d: (_DAY + dt.timedelta(days=d)).date()))
                                  for u in ("u1", "u2", "u3")})


def _span(lookback: int | str) -> dt.timedelta:
    """lookback_days N, or a lookback in hours ("30h")."""
    return dt.timedelta(days=lookback) if isinstance(lookback, int) else dt.timedelta(hours=int(lookback[:-1]))


def _reference(events, cutoffs, inclusive, lookback):
    out = {}
    for user, cutoff in cutoffs.items():
        known = []
        for u, at, amount in events:
            if u != user or at is None or cutoff is None:
                continue
            cut = dt.datetime.combine(cutoff, dt.time())
            if (at <= cut if inclusive else at < cut) and (lookback is None or at >= cut - _span(lookback)):
                known.append((at, amount))
        distinct = {"nan" if math.isnan(a) else a for _, a in known}       # 0.0 == -0.0 in a set
        out[user] = (len(known), sum(a for _, a in known), max((t for t, _ in known), default=None), len(distinct))
    return out


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=_events, cutoffs=_cutoffs, inclusive=st.booleans(),
       lookback=st.one_of(st.none(), st.integers(1, 8), st.integers(1, 200).map(lambda h: f"{h}h")),
       shift=st.sampled_from([0, -19_740]))
@example(events=_TIE, cutoffs=_TIE_CUTOFF, inclusive=True, lookback=None, shift=0)     # an event at the cutoff
@example(events=_TIE, cutoffs=_TIE_CUTOFF, inclusive=False, lookback=None, shift=0)
@example(events=_TIE, cutoffs=_TIE_CUTOFF, inclusive=True, lookback=2, shift=-19_740)
@example(events=_TIE, cutoffs=_TIE_CUTOFF, inclusive=True, lookback="36h", shift=-19_740)   # 1.5-day windows
def test_as_of_matches_a_plain_python_reference(spark, events, cutoffs, inclusive, lookback, shift):
    # shift -19,740 days puts the history around 1970-01-01: the lookback windows are counted from the epoch
    days = dt.timedelta(days=shift)
    events = [(u, None if at is None else at + days, amount) for u, at, amount in events]
    cutoffs = {u: None if c is None else c + days for u, c in cutoffs.items()}
    users = spark.createDataFrame([(u, c, True) for u, c in cutoffs.items()], "user_id string, label_date date, label boolean")
    frame = spark.createDataFrame([(f"e{i}", u, at, amount) for i, (u, at, amount) in enumerate(events)],
                                  "event_id string, user_id string, at timestamp, amount double")
    as_of = {"event_time": "at", "cutoff": "label_date", "inclusive": inclusive,
             **({} if lookback is None else {"lookback_days" if isinstance(lookback, int) else "lookback": lookback})}
    gold = build_dataset({"users": users, "events": frame.withColumn("label_date", F.lit(None).cast("date"))},
                         _spec(as_of))
    got = {r["user_id"]: (r["n_events"], r["spend"], r["last_event"], r["amounts"]) for r in gold.collect()}
    want = _reference(events, cutoffs, inclusive, lookback)
    assert got.keys() == want.keys()
    for user, (n, spend, last, distinct) in want.items():
        assert got[user][0] == n and got[user][2] == last
        assert got[user][1] == pytest.approx(spend, rel=1e-9, abs=1e-6, nan_ok=True)
        assert got[user][3] == distinct, (user, got[user], want[user])
