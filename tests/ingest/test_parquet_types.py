"""Parquet drops as pandas writes them: whole numbers as int64 (or int32 from numpy), float32, and
timestamps in nanoseconds (Spark's reader refuses all of these against the declared types). lakeray
reads them in the file's type and converts without loss of meaning; timestamps keep microseconds."""

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
