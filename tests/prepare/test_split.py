"""Splits: deterministic per key, stable when data is added, or by time."""

from __future__ import annotations

import datetime as dt

from lakeray.prepare.split import assign_split
from lakeray.spec.models import Split


def _splits(spark, keys, split):
    df = spark.createDataFrame([(k,) for k in keys], "id string")
    return {r["id"]: r["split"] for r in assign_split(df, split, "id").collect()}


def test_hash_split_is_stable_across_reruns_and_added_data(spark):
    split = Split(seed=3)
    first = _splits(spark, [f"k{i}" for i in range(2000)], split)
    again = _splits(spark, [f"k{i}" for i in range(2000)], split)
    grown = _splits(spark, [f"k{i}" for i in range(3000)], split)
    assert first == again
    assert {k: grown[k] for k in first} == first
    share = sum(v == "train" for v in first.values()) / len(first)
    assert 0.66 < share < 0.74
    other_seed = _splits(spark, [f"k{i}" for i in range(2000)], Split(seed=4))
    assert other_seed != first


def test_fractions_are_respected(spark):
    split = Split(fractions={"train": 0.5, "validation": 0.0, "test": 0.5})
    got = _splits(spark, [f"k{i}" for i in range(2000)], split)
    assert "validation" not in got.values()
    assert 0.45 < sum(v == "train" for v in got.values()) / 2000 < 0.55


def test_time_split(spark):
    split = Split(method="time", column="day", validation_start=dt.date(2025, 3, 1), test_start=dt.date(2025, 6, 1))
    df = spark.createDataFrame([("a", dt.date(2025, 1, 5)), ("b", dt.date(2025, 3, 1)), ("c", dt.date(2025, 7, 1))],
                               "id string, day date")
    got = {r["id"]: r["split"] for r in assign_split(df, split, "id").collect()}
    assert got == {"a": "train", "b": "validation", "c": "test"}
