"""Parquet drops as pandas writes them: whole numbers as int64 (or int32 from numpy), float32, and
timestamps in nanoseconds (Spark's reader refuses all of these against the declared types). lakeray
reads them in the file's type and converts without loss of meaning; timestamps keep microseconds. Also
as pyarrow writes them: decimals (a database numeric, Python Decimals) for a double, dates for a
timestamp, int64 for an int when the footer's statistics show every value fits (else set aside)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from lakeray.ingest.files import ingest_files
from lakeray.spec.models import Source

SOURCE = Source.model_validate({
    "format": "parquet", "path": "usage", "keys": ["id"],
    "columns": {"id": "string", "minutes": "double", "sessions": "bigint", "at": "timestamp", "seen": "timestamp"},
})


def _ingest(spark, tmp_path, frames: dict[str, pd.DataFrame]):
    folder = tmp_path / "landing" / "usage"
    folder.mkdir(parents=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / name)
    bronze = str(tmp_path / "lake" / "bronze" / "usage")
    stats = ingest_files(spark, "usage", SOURCE, str(folder), bronze, str(tmp_path / "ckpt"), "run-1")
    return stats, {r["id"]: r for r in spark.read.format("delta").load(bronze).collect()}


def test_pandas_integers_floats_and_nanosecond_timestamps_land_in_the_declared_types(spark, tmp_path):
    stats, rows = _ingest(spark, tmp_path, {
        "pandas.parquet": pd.DataFrame({
            "id": ["a", "b", "c"],
            "minutes": np.array([3, 2**53 + 1, -7], dtype="int64"),          # whole numbers for a double
            "sessions": np.array([1, 2, 3], dtype="int32"),                  # int32 for a bigint
            "at": pd.to_datetime(["2024-01-01 10:00:00.123456789", "1969-12-31 23:59:59.9999995", None]),
            "seen": pd.to_datetime(["2024-06-01 12:00"] * 3).tz_localize("Europe/Oslo"),  # aware: an instant
        }),
        "float32.parquet": pd.DataFrame({"id": ["d"], "minutes": np.array([0.5], dtype="float32"),
                                         "sessions": [4], "at": [pd.Timestamp("2024-01-02")],
                                         "seen": [pd.Timestamp("2024-01-02", tz="UTC")]}),
    })
    assert (stats.rows, stats.rejected_files) == (4, 0)
    assert {k: (r["minutes"], r["sessions"]) for k, r in rows.items()} == {
        "a": (3.0, 1), "b": (float(2**53), 2), "c": (-7.0, 3), "d": (0.5, 4)}
    # nanoseconds dropped, rounding down (also before 1970); a naive time is read as UTC (the session zone)
    assert rows["a"]["at"] == dt.datetime(2024, 1, 1, 10, 0, 0, 123456)
    assert rows["b"]["at"] == dt.datetime(1969, 12, 31, 23, 59, 59, 999999)
    assert rows["c"]["at"] is None
    assert rows["a"]["seen"] == dt.datetime(2024, 6, 1, 10, 0)                 # 12:00 in Oslo (CEST) = 10:00 UTC
    assert rows["d"]["at"] == dt.datetime(2024, 1, 2)


def test_text_where_a_number_is_declared_is_still_set_aside(spark, tmp_path):
    stats, rows = _ingest(spark, tmp_path, {"text.parquet": pd.DataFrame({
        "id": ["a"], "minutes": ["3"], "sessions": [1], "at": [pd.Timestamp("2024-01-01")],
        "seen": [pd.Timestamp("2024-01-01", tz="UTC")]})})
    assert (stats.rows, stats.rejected_files, rows) == (0, 1, {})


TYPED = Source.model_validate({
    "format": "parquet", "path": "billing", "keys": ["id"],
    "columns": {"id": "string", "amount": "double", "day": "timestamp", "seats": "int"},
})


def _land_tables(spark, tmp_path, tables: dict, row_group_size: int | None = None, statistics: bool = True):
    import pyarrow.parquet as pq

    folder = tmp_path / "landing" / "billing"
    folder.mkdir(parents=True)
    for name, table in tables.items():
        pq.write_table(table, folder / name, row_group_size=row_group_size, write_statistics=statistics)
    bronze = str(tmp_path / "lake" / "bronze" / "billing")
    stats = ingest_files(spark, "billing", TYPED, str(folder), bronze, str(tmp_path / "ckpt"), "run-1")
    rows = {r["id"]: r for r in spark.read.format("delta").load(bronze).collect()} if stats.rows else {}
    rejected = ([r["detail"] for r in spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).collect()]
                if stats.rejected_files else [])
    return stats, rows, rejected


def test_pyarrow_decimals_dates_and_int64_land_in_the_declared_types(spark, tmp_path):
    import decimal

    import pyarrow as pa

    D = decimal.Decimal
    stats, rows, rejected = _land_tables(spark, tmp_path, {
        # a database numeric or Python Decimals for a double, a date for a timestamp, pandas' int64 for an int
        "export.parquet": pa.table({
            "id": ["a", "b", "c"],
            "amount": pa.array([D("12.34"), D("-0.05"), None], pa.decimal128(10, 2)),
            "day": pa.array([dt.date(2024, 3, 15), None, dt.date(1969, 12, 31)], pa.date32()),
            "seats": pa.array([2**31 - 1, -(2**31), None], pa.int64()),
        }),
        "wide.parquet": pa.table({
            "id": ["d"], "amount": pa.array([D("1234567890123456789012.0123456789")], pa.decimal128(38, 10)),
            "day": pa.array([dt.date(2024, 1, 1)], pa.date32()), "seats": pa.array([None], pa.int64()),
        }),
    })
    assert (stats.rows, stats.rejected_files, rejected) == (4, 0, [])
    assert {k: (r["amount"], r["day"], r["seats"]) for k, r in rows.items()} == {
        "a": (12.34, dt.datetime(2024, 3, 15), 2**31 - 1), "b": (-0.05, None, -(2**31)),
        "c": (None, dt.datetime(1969, 12, 31), None), "d": (1.2345678901234568e21, dt.datetime(2024, 1, 1), None)}


def test_an_int64_column_beyond_int_is_set_aside_naming_its_range(spark, tmp_path):
    import pyarrow as pa

    def table(ids, seats):
        return pa.table({"id": ids, "amount": pa.array([1.0] * len(ids)),
                         "day": pa.array([dt.date(2024, 1, 1)] * len(ids), pa.date32()), "seats": pa.array(seats, pa.int64())})

    # the value beyond an int sits in the second row group only: every row group's statistics are read
    stats, rows, rejected = _land_tables(spark, tmp_path, {
        "big.parquet": table(["a", "b", "c", "d"], [1, 2, 3, 2**31]),
        "fine.parquet": table(["e"], [5]),
    }, row_group_size=2)
    assert (stats.rows, stats.rejected_files, sorted(rows)) == (1, 1, ["e"])
    assert rejected == ["column seats is int64 in the file and declared int: its values run from 1 to 2147483648, "
                        "beyond an int's -2147483648 to 2147483647; declare it bigint"]

    # a file without statistics cannot show it: set aside too
    stats, _, rejected = _land_tables(spark, tmp_path / "bare", {"bare.parquet": table(["f"], [1])}, statistics=False)
    assert (stats.rows, rejected) == (0, ["column seats is int64 in the file and declared int: row group 0 has no "
                                          "statistics to show its values fit; declare it bigint"])


def test_pandas_integers_with_a_missing_value_written_as_double_land_as_int_and_bigint(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = Source.model_validate({"format": "parquet", "path": "usage", "keys": ["id"],
                                    "columns": {"id": "string", "seats": "int", "events": "bigint"}})
    folder = tmp_path / "landing" / "usage"
    folder.mkdir(parents=True)
    # pandas turns an integer column with a missing value into float64 (NaN, written as null)
    pd.DataFrame({"id": ["a", "b"], "seats": [3, None], "events": [2.0**53, -7]}).to_parquet(folder / "pandas.parquet")
    assert pd.read_parquet(folder / "pandas.parquet").seats.dtype == "float64"
    bad = {"half.parquet": ([2.5], [1.0]), "big.parquet": ([1.0], [2.0**63]), "nan.parquet": ([1.0], [float("nan")])}
    for name, (seats, events) in bad.items():
        pq.write_table(pa.table({"id": [name], "seats": pa.array(seats), "events": pa.array(events, from_pandas=False)}),
                               folder / name)
    stats, landed, rejected = _ingest_folder(spark, tmp_path, source, folder)
    rows = {k: (r["seats"], r["events"]) for k, r in landed.items()}
    assert (stats.rows, rows) == (2, {"a": (3, 2**53), "b": (None, -7)})
    assert rejected == {
        "half.parquet": "column seats is double in the file and declared int: it holds 2.5, not a whole number "
                        "within int's range; declare it double",
        "big.parquet": "column events is double in the file and declared bigint: it holds 9.223372036854776e+18, not a "
                       "whole number within bigint's range; declare it double",
        "nan.parquet": "column events is double in the file and declared bigint: it holds nan, not a whole number "
                       "within bigint's range; declare it double",
    }


def test_pandas_dates_written_as_midnight_timestamps_land_as_dates(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = Source.model_validate({"format": "parquet", "path": "usage", "keys": ["id"],
                                    "columns": {"id": "string", "day": "date"}})
    folder = tmp_path / "landing" / "usage"
    folder.mkdir(parents=True)
    # pandas has no date type: datetime64[ns] at midnight (nanoseconds), or microseconds through pyarrow
    pd.DataFrame({"id": ["a", "b", "c"], "day": pd.to_datetime(["2024-03-15", None, "1969-12-31"])}).to_parquet(
        folder / "pandas.parquet")
    pq.write_table(pa.table({"id": ["d"], "day": pa.array([dt.datetime(2024, 2, 29)], pa.timestamp("us"))}),
                   folder / "micros.parquet")
    pd.DataFrame({"id": ["e"], "day": pd.to_datetime(["2024-03-15 00:00:00.000000001"])}).to_parquet(folder / "late.parquet")
    pq.write_table(pa.table({"id": ["f"], "day": pa.array([dt.datetime(2024, 2, 29, 12)], pa.timestamp("ms"))}),
                   folder / "noon.parquet")
    stats, landed, rejected = _ingest_folder(spark, tmp_path, source, folder)
    assert (stats.rows, {k: r["day"] for k, r in landed.items()}) == (
        4, {"a": dt.date(2024, 3, 15), "b": None, "c": dt.date(1969, 12, 31), "d": dt.date(2024, 2, 29)})
    assert rejected == {
        "late.parquet": "column day is a timestamp in nanoseconds in the file and declared date: it holds "
                        "1710460800000000001 ns, not a whole day; declare it timestamp",
        "noon.parquet": "column day is a timestamp in the file and declared date: it holds 2024-02-29 12:00:00, not a "
                        "whole day; declare it timestamp",
    }


def _ingest_folder(spark, tmp_path, source: Source, folder):
    """Ingest every file in `folder`: the stats, bronze's rows by id, and the set-aside files' details by name."""
    bronze = str(tmp_path / "lake" / "bronze" / "usage")
    stats = ingest_files(spark, "usage", source, str(folder), bronze, str(tmp_path / "ckpt"), "run-1")
    rows = {r["id"]: r for r in spark.read.format("delta").load(bronze).collect()}
    rejected = {r["file"].rsplit("/", 1)[1]: r["detail"] for r in
                spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).collect()}
    return stats, rows, rejected
