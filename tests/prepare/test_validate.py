"""Row- and set-level cleaning on tiny inline data: every rule kind, dedupe, normalising."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from lakeray.prepare.steps import stage_source
from lakeray.spec.models import Source

TS = dt.datetime(2025, 1, 1)


def bronze(spark, rows, columns, corrupt=None):
    """A bronze-like frame: raw text columns + _corrupt_record + ingestion metadata."""
    corrupt = corrupt or [None] * len(rows)
    data = [(*r, c, "src", f"file:/landing/f{i % 2}.csv", TS, "b1") for i, (r, c) in enumerate(zip(rows, corrupt, strict=True))]
    schema = ", ".join(f"{c} string" for c in columns) + ", _corrupt_record string, _source string, _file string, _ingested_at timestamp, _batch_id string"
    return spark.createDataFrame(data, schema)


def outcome(staged):
    """{key: (status, [rules])} for rows with a key, plus the list for rows without."""
    rows = staged.select("id", "_status", F.col("_violations.rule").alias("rules")).collect()
    return sorted(((r["id"], r["_status"], list(r["rules"])) for r in rows), key=lambda t: (t[0] or "", t[1]))


SOURCE = Source.model_validate({
    "format": "csv", "path": "x", "keys": ["id"], "latest_by": "updated_at",
    "columns": {"id": "string", "age": "int", "plan": "string", "email": "string", "score": "double", "updated_at": "timestamp"},
    "normalize": {"plan": {"map": {"prem": "premium", "std": "standard"}}},
    "missing": {"score": {"strategy": "fill", "value": 0}, "email": {"strategy": "quarantine"}},
    "expectations": [
        {"rule": "range", "column": "age", "min": 0, "max": 120},
        {"rule": "allowed_values", "column": "plan", "values": ["basic", "standard", "premium"]},
        {"rule": "regex", "column": "email", "pattern": "^[^@]+@[^@]+$"},
        {"rule": "unique", "column": "email"},
        {"rule": "not_null", "column": "age", "name": "age_required"},
    ],
})
COLS = list(SOURCE.columns)


def test_each_rule_quarantines_with_its_name(spark):
    rows = [
        ("a", "30", " Prem ", "a@x.io", "1.5", "2025-01-01 00:00:00"),   # clean after normalising
        ("b", "thirty", "basic", "b@x.io", "1", "2025-01-01 00:00:00"),  # type:age
        ("c", "300", "basic", "c@x.io", "1", "2025-01-01 00:00:00"),     # range:age
        ("d", "30", "gold", "d@x.io", "1", "2025-01-01 00:00:00"),       # allowed_values:plan
        ("e", "30", "basic", "nope", "1", "2025-01-01 00:00:00"),        # regex:email
        ("f", "30", "basic", None, "1", "2025-01-01 00:00:00"),          # missing:email
        ("g", None, "basic", "g@x.io", "1", "2025-01-01 00:00:00"),      # age_required (custom name)
        (None, "30", "basic", "h@x.io", "1", "2025-01-01 00:00:00"),     # not_null:id (keys)
        ("i", "30", "STD", "i@x.io", None, "2025-01-01 00:00:00"),       # clean, score filled with 0
    ]
    staged = stage_source(bronze(spark, rows, COLS), SOURCE)
    assert outcome(staged) == [
        (None, "quarantined", ["not_null:id"]),
        ("a", "clean", []), ("b", "quarantined", ["type:age", "age_required"]), ("c", "quarantined", ["range:age"]),
        ("d", "quarantined", ["allowed_values:plan"]), ("e", "quarantined", ["regex:email"]),
        ("f", "quarantined", ["missing:email"]), ("g", "quarantined", ["age_required"]), ("i", "clean", []),
    ]
    clean = {r["id"]: r for r in staged.where("_status = 'clean'").collect()}
    assert clean["a"]["plan"] == "premium" and clean["a"]["age"] == 30 and clean["a"]["score"] == 1.5
    assert clean["i"]["plan"] == "standard" and clean["i"]["score"] == 0.0
    bad = staged.where("id = 'b'").first()["_violations"][0]
    assert (bad["rule"], bad["column"], bad["value"]) == ("type:age", "age", "thirty")


def test_malformed_records_are_quarantined_with_the_raw_line(spark):
    rows = [("a", "1", "basic", "a@x.io", "1", "2025-01-01 00:00:00"), ("garbage", None, None, None, None, None)]
    staged = stage_source(bronze(spark, rows, COLS, corrupt=[None, "garbage"]), SOURCE)
    bad = staged.where("_status = 'quarantined'").first()
    assert bad["_violations"][0]["rule"] == "malformed_record" and bad["_violations"][0]["value"] == "garbage"
    assert bad["_raw"]["_corrupt_record"] == "garbage"


def test_latest_valid_record_wins_and_exact_copies_are_duplicates(spark):
    rows = [
        ("a", "30", "basic", "a@x.io", "1", "2025-01-01 00:00:00"),
        ("a", "31", "premium", "a@x.io", "1", "2025-03-01 00:00:00"),    # newer: wins
        ("a", "31", "premium", "a@x.io", "1", "2025-03-01 00:00:00"),    # exact copy: duplicate
        ("b", "40", "basic", "b@x.io", "1", "2025-01-01 00:00:00"),      # older but valid: wins
        ("b", "999", "basic", "b@x.io", "1", "2025-06-01 00:00:00"),     # newer but invalid: quarantined
    ]
    staged = stage_source(bronze(spark, rows, COLS), SOURCE)
    statuses = sorted((r["id"], r["updated_at"].month, r["_status"]) for r in staged.collect())
    assert statuses == [("a", 1, "duplicate"), ("a", 3, "clean"), ("a", 3, "duplicate"),
                        ("b", 1, "clean"), ("b", 6, "quarantined")]


def test_unique_quarantines_every_row_sharing_a_value(spark):
    rows = [
        ("a", "30", "basic", "same@x.io", "1", "2025-01-01 00:00:00"),
        ("b", "30", "basic", "same@x.io", "1", "2025-01-01 00:00:00"),
        ("c", "30", "basic", "c@x.io", "1", "2025-01-01 00:00:00"),
        ("c", "30", "basic", "c@x.io", "1", "2024-01-01 00:00:00"),     # an older version, not a clash
    ]
    staged = stage_source(bronze(spark, rows, COLS), SOURCE)
    assert outcome(staged) == [("a", "quarantined", ["unique:email"]), ("b", "quarantined", ["unique:email"]),
                               ("c", "clean", []), ("c", "duplicate", [])]


def test_typed_sources_are_cast_without_text_rules(spark):
    source = Source.model_validate({"format": "parquet", "path": "u", "keys": ["id"],
                                    "columns": {"id": "string", "n": "bigint"},
                                    "expectations": [{"rule": "range", "column": "n", "max": 5}]})
    df = spark.createDataFrame([("a", 1, "s", "f", TS, "b"), ("b", 9, "s", "f", TS, "b")],
                               "id string, n int, _source string, _file string, _ingested_at timestamp, _batch_id string")
    staged = stage_source(df, source)
    assert outcome(staged) == [("a", "clean", []), ("b", "quarantined", ["range:n"])]
    assert staged.schema["n"].dataType.simpleString() == "bigint"


NUMBERS = Source.model_validate({"format": "csv", "path": "n", "keys": ["id"], "columns": {"id": "string", "v": "double"},
                                 "missing": {"v": {"strategy": "fill", "value": -1}}})


def test_a_double_is_finite_or_missing_in_text(spark):
    """NaN text (pandas' na_rep, R's NaN, Python's json.dumps) is missing, so a `missing` policy sees
    it; an infinity, or text beyond the double range, is a type error naming the text (Spark's cast
    makes both clean infinite values)."""
    rows = [("a", "NaN"), ("b", " nan "), ("c", "inf"), ("d", "-Infinity"), ("e", "1e400"), ("f", "-2.5e3"),
            ("g", "1e-400"), ("h", "")]
    staged = stage_source(bronze(spark, rows, ["id", "v"]), NUMBERS)
    assert outcome(staged) == [("a", "clean", []), ("b", "clean", []), ("c", "quarantined", ["type:v"]),
                               ("d", "quarantined", ["type:v"]), ("e", "quarantined", ["type:v"]),
                               ("f", "clean", []), ("g", "clean", []), ("h", "clean", [])]
    clean = {r["id"]: r["v"] for r in staged.where("_status = 'clean'").collect()}
    assert clean == {"a": -1.0, "b": -1.0, "f": -2500.0, "g": 0.0, "h": -1.0}     # NaN filled like the empty text
    said = {r["id"]: (r["_violations"][0]["value"]) for r in staged.where("_status = 'quarantined'").collect()}
    assert said == {"c": "inf", "d": "-Infinity", "e": "1e400"}


def test_a_double_is_finite_or_missing_in_typed_sources(spark):
    """A Parquet or JDBC double holding NaN is missing (not_null quarantines it, as a null); an infinity
    is a type error."""
    source = Source.model_validate({"format": "parquet", "path": "u", "keys": ["id"], "columns": {"id": "string", "v": "double"},
                                    "expectations": [{"rule": "not_null", "column": "v"}]})
    df = spark.createDataFrame([("a", 1.5), ("b", float("nan")), ("c", float("inf")), ("d", float("-inf")), ("e", -0.0)],
                               "id string, v double").select(
        "*", F.lit("s").alias("_source"), F.lit("f").alias("_file"), F.lit(TS).alias("_ingested_at"), F.lit("b").alias("_batch_id"))
    staged = stage_source(df, source)
    assert outcome(staged) == [("a", "clean", []), ("b", "quarantined", ["not_null:v"]),
                               ("c", "quarantined", ["type:v"]), ("d", "quarantined", ["type:v"]), ("e", "clean", [])]
    assert staged.where("id = 'b'").first()["v"] is None
    assert staged.where("id = 'c'").first()["_violations"][0]["value"] == "Infinity"
