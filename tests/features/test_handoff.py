"""Training reads gold at an explicit Delta version, split by split, without a JVM."""

from __future__ import annotations

import pytest

from lakeray.errors import LakerayError
from lakeray.features.handoff import latest_gold_version, load_splits


def _gold(spark, path, n, mode):
    rows = [(f"c{i}", float(i), ["train", "validation", "test"][i % 3]) for i in range(n)]
    (spark.createDataFrame(rows, "customer_id string, x double, split string")
     .write.format("delta").mode(mode).partitionBy("split").save(path))


def test_reads_the_pinned_version_not_the_latest(spark, tmp_path):
    path = str(tmp_path / "gold")
    _gold(spark, path, 9, "overwrite")
    _gold(spark, path, 30, "overwrite")
    assert latest_gold_version(path) == 1
    old = load_splits(path, 0)
    assert {k: len(v) for k, v in old.frames.items()} == {"train": 3, "validation": 3, "test": 3}
    assert old.lineage() == {"gold_path": path, "gold_version": 0, "rows": {"train": 3, "validation": 3, "test": 3}}
    new = load_splits(path, 1, columns=["customer_id", "x"])
    assert len(new.frames["train"]) == 10 and list(new.frames["train"].columns) == ["customer_id", "x"]


def test_clear_errors(spark, tmp_path):
    with pytest.raises(LakerayError, match="no Delta table at .*run the prepare job first"):
        load_splits(str(tmp_path / "nothing"), 0)
    path = str(tmp_path / "gold")
    _gold(spark, path, 6, "overwrite")
    with pytest.raises(LakerayError, match="explicit gold version"):
        load_splits(path, None)
    with pytest.raises(LakerayError, match="cannot open .* at version 7"):
        load_splits(path, 7)
    flat = str(tmp_path / "flat")
    spark.range(3).write.format("delta").save(flat)
    with pytest.raises(LakerayError, match="is not partitioned by 'split'"):
        load_splits(flat, 0)
