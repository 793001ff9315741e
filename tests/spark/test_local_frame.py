"""local_frame: bookkeeping rows as a DataFrame of literals, the same rows createDataFrame gives, with no
Python worker in the plan."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from lakeray.runs import RUN_METRICS_SCHEMA, metric_row
from lakeray.spark.local import local_frame

SCHEMA = T.StructType([
    T.StructField("name", T.StringType()), T.StructField("n", T.LongType()), T.StructField("ok", T.BooleanType()),
    T.StructField("x", T.DoubleType()), T.StructField("at", T.TimestampType()),
])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)   # odd unicode, NUL, RTL, emoji
ROW = st.tuples(st.none() | TEXT, st.none() | st.integers(-2**63, 2**63 - 1), st.none() | st.booleans(),
                st.none() | st.floats(allow_nan=True, allow_infinity=True),
                st.none() | st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2099, 12, 31)))


def _same(a, b) -> bool:
    return all((isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
               for x, y in zip(a, b, strict=True))


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, min_size=1, max_size=4))
def test_the_same_rows_as_create_data_frame(spark, rows):
    ours = local_frame(spark, rows, SCHEMA)
    assert ours.schema == SCHEMA
    got, expected = ours.collect(), spark.createDataFrame(rows, SCHEMA).collect()
    assert len(got) == len(expected) == len(rows)
    assert all(_same(tuple(g), tuple(e)) for g, e in zip(got, expected, strict=True)), (got, expected)


def test_run_metrics_rows_need_no_python_worker(spark):
    rows = [metric_row("run-1", "ingest", "bronze/é", rows_in=3, clean=2, quarantined=1, details={"k": "v"})]
    frame = local_frame(spark, rows, RUN_METRICS_SCHEMA)
    assert [tuple(r) for r in frame.collect()] == [tuple(r) for r in spark.createDataFrame(rows, RUN_METRICS_SCHEMA).collect()]
    plan = frame._jdf.queryExecution().executedPlan().toString()
    assert "Scan ExistingRDD" not in plan and "PythonRDD" not in plan, plan
    # createDataFrame's rows come through an RDD of pickled Python rows: what this avoids
    assert "Scan ExistingRDD" in spark.createDataFrame(rows, RUN_METRICS_SCHEMA)._jdf.queryExecution().executedPlan().toString()


def test_no_rows_and_rows_of_the_wrong_width(spark):
    empty = local_frame(spark, [], SCHEMA)
    assert empty.schema == SCHEMA and empty.count() == 0
    with pytest.raises(ValueError, match=r"row 1 has 2 values, the schema 5 fields"):
        local_frame(spark, [("a", 1, True, 1.0, None), ("b", 2)], SCHEMA)


def test_a_table_created_from_rows_without_nulls_takes_nulls_later(spark, tmp_path):
    """Every field stays nullable: a Delta table created from a first append with no nulls would otherwise
    hold NOT NULL columns and refuse the next rows that have one."""
    path = str(tmp_path / "t")
    local_frame(spark, [("a", 1, True, 1.5, dt.datetime(2026, 1, 1))], SCHEMA).write.format("delta").save(path)
    local_frame(spark, [(None, None, None, None, None)], SCHEMA).write.format("delta").mode("append").save(path)
    rows = sorted(spark.read.format("delta").load(path).collect(), key=lambda r: r["name"] is None)
    assert [tuple(r) for r in rows] == [("a", 1, True, 1.5, dt.datetime(2026, 1, 1)), (None,) * 5]
