"""The profiles table: the inference log profiled once per hour by a streaming query, windows merged
from it. Every window read from stored profiles must equal one pass over the raw rows, per segment,
whatever arrived late, whatever was merged in, and after a lost checkpoint or table."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lakeray.monitor.inference_log import append_table, merge_labels
from lakeray.monitor.profile import build_profile, build_segment_profiles
from lakeray.monitor.profiles import profile_new_rows, read_window, split_window
from lakeray.monitor.window import ALL, NULL, OTHER, count_windows, make_plan
from tests.support import said

FEATURES = {"age": "numeric", "plan": "categorical", "active": "boolean"}
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
RUN = "run-a"


def _served(rng, n: int, hours: tuple[int, int], first_id: int, run: str = RUN) -> pa.Table:
    """n logged rows spread over [T0 + hours[0], T0 + hours[1]), with the inference log's columns;
    gender has nulls and a value training never saw."""
    ts = [T0 + dt.timedelta(seconds=int(s)) for s in rng.integers(hours[0] * 3600, hours[1] * 3600, n)]
    age = rng.normal(40, 10, n)
    age[rng.random(n) < 0.03] = np.nan
    age[rng.random(n) < 0.002] = np.inf
    return pa.table({
        "request_id": [f"q{first_id + i}" for i in range(n)], "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "date": [t.date().isoformat() for t in ts], "train_run_id": [run] * n,
        "age": age, "plan": pa.array(rng.choice(["basic", "gold", "new plan", None], n, p=[0.5, 0.3, 0.1, 0.1]).tolist(), pa.string()),
        "active": pa.array((rng.random(n) < 0.6).tolist(), pa.bool_()),
        "gender": pa.array(rng.choice(["F", "M", "X", None], n, p=[0.45, 0.45, 0.05, 0.05]).tolist(), pa.string()),
        "prediction": rng.random(n), "label": pa.array([None] * n, pa.string())})


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    rng = np.random.default_rng(31)
    train = pd.DataFrame({"age": rng.normal(40, 10, 5000), "plan": rng.choice(["basic", "gold"], 5000),
                          "active": rng.random(5000) < 0.5, "gender": rng.choice(["F", "M"], 5000)})
    profiles = build_profile(train, FEATURES)
    segment_profiles = build_segment_profiles(train, FEATURES, profiles, ["gender"], top=5)
    segments = {}
    for column, value in segment_profiles:
        segments.setdefault(column, []).append(value)
    plan = make_plan(profiles, segments=segments, time="ts")
    root = tmp_path_factory.mktemp("profiles")
    paths = {"log": str(root / "inference_log"), "profiles": str(root / "profiles"), "checkpoints": str(root / "ckpt")}
    return {"rng": rng, "plan": plan, "paths": paths, "segments": segments}


def _raw(spark, world, start, end):
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(world["paths"]["log"])
    return count_windows(frame.where((F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end))
                                     & (F.col("train_run_id") == RUN)), world["plan"])


def _stored(spark, world, start, end, log_frame=None):
    """The window from the profiles table, merged on the driver and by Spark: both must agree."""
    log_frame = log_frame if log_frame is not None else spark.read.format("delta").load(world["paths"]["log"])
    here = read_window(spark, log_frame, world["paths"]["profiles"], RUN, world["plan"], start, end)
    _assert_same(here, read_window(spark, log_frame, world["paths"]["profiles"], RUN, world["plan"], start, end, driver_merge_hours=0))
    return here


def _profile(spark, world) -> int:
    p = world["paths"]
    return profile_new_rows(spark, p["log"], p["profiles"], p["checkpoints"], RUN, world["plan"])


def _assert_same(a: dict, b: dict):
    assert set(a) == set(b)
    for key in a:
        x, y = a[key], b[key]
        assert x.rows == y.rows and x.counts == y.counts, key
        for name in x.fine:
            assert np.array_equal(x.fine[name][0], y.fine[name][0]), (key, name)
            assert np.allclose(x.fine[name][1], y.fine[name][1]), (key, name)
        for name in x.moments:
            assert x.moments[name][0] == pytest.approx(y.moments[name][0]), (key, name)
            assert x.moments[name][1:] == y.moments[name][1:], (key, name)


@pytest.mark.fast
def test_a_window_is_split_into_whole_hours_and_raw_edges():
    t = T0 + dt.timedelta(minutes=20)
    assert split_window(t, t + dt.timedelta(hours=3)).hours == (T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=3))
    assert split_window(t, t + dt.timedelta(hours=3)).raw == ((t, T0 + dt.timedelta(hours=1)),
                                                              (T0 + dt.timedelta(hours=3), t + dt.timedelta(hours=3)))
    assert split_window(T0, T0 + dt.timedelta(days=1)).raw == ()                 # aligned: no raw rows at all
    assert split_window(t, t + dt.timedelta(minutes=30)).hours is None           # inside one hour: all raw


def test_stored_windows_equal_the_raw_rows_through_late_rows_labels_and_lost_state(spark, world, caplog):
    from pyspark.sql import functions as F

    rng, paths = world["rng"], world["paths"]
    append_table(paths["log"], _served(rng, 3000, (0, 5), 0))
    append_table(paths["log"], _served(rng, 200, (0, 5), 10_000, run="another-run"))    # another model's rows
    assert _profile(spark, world) == 3000
    start, end = T0 + dt.timedelta(minutes=37), T0 + dt.timedelta(hours=4, minutes=12)
    first = _stored(spark, world, start, end)
    _assert_same(first, _raw(spark, world, start, end))
    whole = first[(ALL, ALL)]
    assert 0 < whole.rows < 3000 and whole.counts["plan"][NULL] > 0 and whole.counts["plan"]["new plan"] > 0
    assert ("gender", "F") in first and ("gender", OTHER) not in first     # X has no training segment: not judged
    assert first[("gender", "F")].rows + first[("gender", "M")].rows < whole.rows             # X and null rows are in no segment

    # nothing new: no streaming query is started at all
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lakeray.monitor.profiles"):
        assert _profile(spark, world) == 0
    assert said(caplog.text, "no query started")
    # late rows land in hours already profiled; only the new rows are profiled
    append_table(paths["log"], _served(rng, 500, (1, 3), 20_000))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lakeray.monitor.profiles"):
        assert _profile(spark, world) == 500
    assert not said(caplog.text, "no query started")
    _assert_same(_stored(spark, world, start, end), _raw(spark, world, start, end))
    # labels merged into the log rewrite its files but add no rows: nothing is profiled twice
    merge_labels(paths["log"], {f"q{i}": "yes" for i in range(0, 3000, 3)})
    assert _profile(spark, world) == 0
    _assert_same(_stored(spark, world, start, end), _raw(spark, world, start, end))

    # an aligned window over profiled hours reads no raw row: a raw read would fail here
    aligned = (T0, T0 + dt.timedelta(hours=5))
    poisoned = spark.read.format("delta").load(paths["log"]).where(F.assert_true(F.lit(False), "a raw row was read").isNull())
    _assert_same(_stored(spark, world, *aligned, log_frame=poisoned), _raw(spark, world, *aligned))

    # a lost checkpoint: the run's stored profiles are replaced, not added to
    from lakeray.lakehouse import fs

    fs.delete(paths["checkpoints"])
    assert _profile(spark, world) == 3500
    _assert_same(_stored(spark, world, *aligned), _raw(spark, world, *aligned))
    # a lost table: its checkpoint goes too, and the log is profiled again whole
    fs.delete(paths["profiles"])
    assert _profile(spark, world) == 3500
    _assert_same(_stored(spark, world, *aligned, log_frame=poisoned), _raw(spark, world, *aligned))


def test_segment_counts_are_the_counts_of_the_segment_rows(spark, world):
    from pyspark.sql import functions as F

    start, end = T0, T0 + dt.timedelta(hours=5)
    windows = _raw(spark, world, start, end)
    frame = spark.read.format("delta").load(world["paths"]["log"]).where(F.col("train_run_id") == RUN).toPandas()
    females = frame[frame["gender"] == "F"]
    f = windows[("gender", "F")]
    assert f.rows == len(females)
    assert f.counts["active"] == {k: int(v) for k, v in females["active"].map(str).value_counts().items()}
    assert f.counts["plan"].get(NULL, 0) == int(females["plan"].isna().sum())
    finite = females["age"][np.isfinite(females["age"])]
    assert f.fine["age"][0].sum() == len(finite) and f.fine["age"][1].sum() == pytest.approx(finite.sum())
    assert f.rows + windows[("gender", "M")].rows == int(frame["gender"].isin(["F", "M"]).sum())
    everyone = frame["age"][np.isfinite(frame["age"])]
    s2, lo, hi = windows[(ALL, ALL)].moments["age"]
    assert (lo, hi) == (everyone.min(), everyone.max()) and s2 == pytest.approx((everyone ** 2).sum())


def test_the_log_is_read_from_its_files_with_pyarrow_unless_delta_must_read_them(spark, world, tmp_path, caplog):
    """The stream's batches are counted from their Parquet files (pyarrow in Spark's Python workers),
    the same counts as Spark's scan, also over files written before a column was logged; a log whose
    files need Delta's reader (deletion vectors) or whose partition column is counted goes through Spark."""
    from deltalake import write_deltalake

    from lakeray.monitor.profiles import direct_read_problem

    rng = world["rng"]
    paths = {"log": str(tmp_path / "log"), "profiles": str(tmp_path / "profiles"), "checkpoints": str(tmp_path / "ckpt")}
    mine = {**world, "paths": paths}
    write_deltalake(paths["log"], _served(rng, 400, (0, 2), 0).drop_columns(["gender"]), mode="append", partition_by=["date"])
    write_deltalake(paths["log"], _served(rng, 600, (0, 2), 1000), mode="append", partition_by=["date"], schema_mode="merge")
    assert direct_read_problem(paths["log"], world["plan"]) is None
    with caplog.at_level(logging.INFO, logger="lakeray.monitor.profiles"):
        assert _profile(spark, mine) == 1000
    assert said(caplog.text, "read with pyarrow") and not said(caplog.text, "go through Spark")
    whole = (T0, T0 + dt.timedelta(hours=2))
    stored = _stored(spark, mine, *whole)
    _assert_same(stored, _raw(spark, mine, *whole))
    assert stored[(ALL, ALL)].rows == 1000 and stored[("gender", "F")].rows < 600     # the old rows: gender null

    dated = make_plan({"age": {"kind": "categorical"}}, segments={"date": [T0.date().isoformat()]})
    assert "partition column(s) ['date'] are read" in direct_read_problem(paths["log"], dated)
    assert direct_read_problem("s3a://bucket/log", world["plan"]) == "not on the local file system"
    spark.sql(f"ALTER TABLE delta.`{paths['log']}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    assert "deletionVectors" in direct_read_problem(paths["log"], world["plan"])
    write_deltalake(paths["log"], _served(rng, 300, (1, 2), 5000), mode="append", partition_by=["date"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lakeray.monitor.profiles"):
        assert _profile(spark, mine) == 300
    assert said(caplog.text, "go through Spark") and not said(caplog.text, "read with pyarrow")
    _assert_same(_stored(spark, mine, *whole), _raw(spark, mine, *whole))
