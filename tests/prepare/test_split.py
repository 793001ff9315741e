"""Splits: deterministic per key, stable when data is added, or by time."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from lakeray.prepare.split import assign_split, hash_column_problems, size_problems, unlisted_problem, unlisted_rows
from lakeray.spec.checks import cross_field_problems
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


# -- the dataset's own split column, integer time columns, and the checks on the assigned parts

def _splits_of(df, split):
    return [r["split"] for r in assign_split(df, split, "id").select("split").distinct().collect()]


def _assign(spark, rows, schema, split):
    df = spark.createDataFrame(rows, schema)
    return {r["id"]: r["split"] for r in assign_split(df, split, "id").collect()}


def test_column_split_uses_the_values_listed_for_each_part(spark):
    # the dataset's own column may itself be called `split` (gold's split column replaces it)
    split = Split(method="column", column="split", values={"train": ["train"], "validation": ["dev"], "test": ["test", "holdout"]})
    got = _assign(spark, [("a", "train"), ("b", "dev"), ("c", "test"), ("d", "holdout"), ("e", "other"), ("f", None)],
                  "id string, split string", split)
    assert got == {"a": "train", "b": "validation", "c": "test", "d": "test", "e": None, "f": None}
    df = spark.createDataFrame([("e", "other"), ("f", None), ("a", "train")], "id string, split string")
    assert [r["id"] for r in df.where(unlisted_rows(split)).collect()] == ["e", "f"]
    assert "2 row(s) have a value in no list" in unlisted_problem(df, split, "string")


def test_column_split_carves_validation_from_train_by_a_seeded_hash(spark):
    split = Split(method="column", column="part", values={"train": ["train"], "test": ["test"]}, validation_fraction=0.2, seed=9)
    rows = [(f"k{i}", "train" if i % 4 else "test") for i in range(2000)]
    first = _assign(spark, rows, "id string, part string", split)
    assert first == _assign(spark, rows, "id string, part string", split)        # deterministic
    assert all(first[k] == "test" for k, part in rows if part == "test")
    trained = [first[k] for k, part in rows if part == "train"]
    assert 0.16 < trained.count("validation") / len(trained) < 0.24
    # an integer split column (e.g. a year); values are compared in the column's type
    years = Split(method="column", column="year", values={"train": [2018, 2019], "validation": [2020], "test": [2021]})
    got = _assign(spark, [("a", 2018), ("b", 2020), ("c", 2021), ("d", 2017)], "id string, year int", years)
    assert got == {"a": "train", "b": "validation", "c": "test", "d": None}


def test_time_split_on_an_integer_year(spark):
    split = Split(method="time", column="year", validation_start=2020, test_start=2022)
    got = _assign(spark, [("a", 2015), ("b", 2020), ("c", 2021), ("d", 2023)], "id string, year bigint", split)
    assert got == {"a": "train", "b": "validation", "c": "validation", "d": "test"}


def test_a_hash_split_on_a_column_with_few_values_is_refused(spark):
    # the silent misuse: `split: {method: hash, column: split}` hashed the value, sending every
    # 'train' row to one random part
    df = spark.createDataFrame([(f"k{i}", "train" if i % 4 else "test") for i in range(400)], "id string, split string")
    split = Split(column="split")
    assert len(_splits_of(df, split)) <= 2      # 2 values -> at most 2 parts, whatever the fractions
    problems = hash_column_problems(df, split, "id")
    assert len(problems) == 1
    assert "split.column 'split' has 2 distinct value(s) ('train'=300, 'test'=100)" in problems[0]
    assert "need at least 34 distinct values" in problems[0] and "method: column" in problems[0]
    many = spark.createDataFrame([(f"k{i}", f"h{i % 50}") for i in range(400)], "id string, household string")
    assert hash_column_problems(many, Split(column="household"), "id") == []
    assert hash_column_problems(df, Split(), "id") == []                   # the entity key itself


@pytest.mark.fast
def test_size_problems_name_the_split_and_the_counts():
    assert size_problems({"train": 500, "validation": 90, "test": 90}, 20) == []
    problems = size_problems({"train": 0, "validation": 12, "test": 300}, 20)
    assert problems == ["split 'train' is empty (rows per split: train=0, validation=12, test=300)",
                        "split 'validation' has 12 row(s), fewer than prepare.min_split_rows = 20 in conf/ "
                        "(rows per split: train=0, validation=12, test=300)"]


def _problems(spec, **split):
    return [f"{where}: {msg}" for where, msg in cross_field_problems(spec.model_copy(update={"split": Split(**split)}))]


@pytest.mark.fast
def test_split_spec_rules(churn_spec):
    assert _problems(churn_spec, method="column", column="region", values={"train": ["north"], "test": ["west"]},
                     validation_fraction=0.2) == []
    assert _problems(churn_spec, method="column", column="senior_citizen", values={"train": [0], "test": ["1"]},
                     validation_fraction=0.2) == ["split.values.test[0]: '1' does not fit 'senior_citizen', which is int"]
    assert _problems(churn_spec, method="time", column="tenure_months", validation_start=24, test_start=48) == []
    assert _problems(churn_spec, method="time", column="tenure_months", validation_start=dt.date(2025, 1, 1),
                     test_start=dt.date(2025, 6, 1)) == [
        "split.validation_start: 'tenure_months' is int: validation_start and test_start must be integers (e.g. a year), "
        "not datetime.date(2025, 1, 1)"]
    assert _problems(churn_spec, method="time", column="signup_date", validation_start=2020, test_start=2021)[0].startswith(
        "split.validation_start: 'signup_date' is date: validation_start and test_start must be dates")
    assert _problems(churn_spec, method="time", column="region", validation_start=1, test_start=2) == [
        "split.column: a time split needs a date, timestamp or integer column; 'region' is string"]
    with pytest.raises(ValidationError, match="listed for both train and test"):
        Split(method="column", column="c", values={"train": ["a"], "test": ["a"]}, validation_fraction=0.1)
    with pytest.raises(ValidationError, match="needs values.validation, or validation_fraction"):
        Split(method="column", column="c", values={"train": ["a"], "test": ["b"]})
    with pytest.raises(ValidationError, match="must both be dates or both be integers"):
        Split(method="time", column="c", validation_start=2020, test_start=dt.date(2021, 1, 1))
    with pytest.raises(ValidationError, match="belong to method 'column', not 'hash'"):
        Split(column="c", values={"train": ["a"], "test": ["b"]})
