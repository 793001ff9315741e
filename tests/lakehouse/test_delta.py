"""Delta helpers: the latest version and a commit's metrics read from _delta_log agree with Delta's history."""

from __future__ import annotations

import json
import os

from delta.tables import DeltaTable

from lakeray.lakehouse import commit_info, commit_metrics_since, latest_version, table_bytes, table_id, write_table


def test_latest_version_and_commit_info_match_delta_history(spark, tmp_path):
    path = str(tmp_path / "t")
    assert latest_version(spark, path) is None                     # no folder
    os.makedirs(tmp_path / "plain")
    (tmp_path / "plain" / "part.parquet").write_bytes(b"")
    assert latest_version(spark, str(tmp_path / "plain")) is None  # a folder that is not a Delta table

    first = write_table(spark.range(5), path, lineage={"run_id": "r1"})
    assert first.version == 0 and commit_metrics_since(spark, path, 0) is None
    second = write_table(spark.range(7), path, mode="append", lineage={"run_id": "r2"})
    assert second.version == latest_version(spark, path) == 1
    history = {r["version"]: r for r in DeltaTable.forPath(spark, path).history().collect()}
    assert max(history) == 1
    info = commit_info(spark, path, 1)
    assert info["operation"] == history[1]["operation"] == "WRITE"
    assert info["metrics"] == dict(history[1]["operationMetrics"])
    assert info["metrics"]["numOutputRows"] == "7"
    assert info["user_metadata"] == {"run_id": "r2"}
    assert commit_metrics_since(spark, path, 0) == info["metrics"]
    assert commit_metrics_since(spark, path, None)["numOutputRows"] == "7"

    # log cleanup removes old commit files: the latest version still comes from the newest one
    os.remove(tmp_path / "t" / "_delta_log" / f"{0:020d}.json")
    assert latest_version(spark, path) == 1


def test_stats_columns_limit_the_statistics_not_the_row_count(spark, tmp_path):
    path = str(tmp_path / "s")
    frame = spark.createDataFrame([("k1", "long text " * 20, 1.0), ("k2", None, 2.0)], "the_key string, note string, x double")
    write_table(frame, path, stats_columns=["the_key"])
    adds = [json.loads(line)["add"] for line in (tmp_path / "s" / "_delta_log" / f"{0:020d}.json").read_text().splitlines()
            if '"add"' in line]
    stats = [json.loads(a["stats"]) for a in adds]
    assert sum(s["numRecords"] for s in stats) == 2
    assert all(set(s["minValues"]) <= {"the_key"} for s in stats) and any(s["minValues"] for s in stats)
    assert spark.read.format("delta").load(path).count() == 2


def test_table_id_changes_when_a_table_is_made_again_and_size_matches_delta(spark, tmp_path):
    """What the incremental prepare checks before it trusts a recorded bronze version."""
    import shutil

    path = str(tmp_path / "t")
    assert table_id(spark, path) is None
    write_table(spark.range(100).toDF("k"), path)
    first = table_id(spark, path)
    write_table(spark.range(5).toDF("k"), path, mode="append")
    assert table_id(spark, path) == first and len(first) == 36
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert table_bytes(spark, path) == detail["sizeInBytes"] > 0
    shutil.rmtree(path)
    write_table(spark.range(100).toDF("k"), path)
    assert table_id(spark, path) not in (None, first)


def test_raw_read_blockers_name_what_a_plain_parquet_read_would_misread(spark, tmp_path):
    """Deletion vectors and column mapping (feature or table property) keep a table's files from being
    read raw: the drift job then reads through Spark, and scoring refuses the table by name."""
    import pytest
    from deltalake import DeltaTable as RsTable

    from lakeray.errors import LakerayError
    from lakeray.evaluate.scoring import split_files
    from lakeray.lakehouse.delta import raw_read_blockers

    path = str(tmp_path / "t")
    spark.range(5).selectExpr("id", "'train' AS split").write.format("delta").partitionBy("split").save(path)
    assert raw_read_blockers(RsTable(path)) == [] and split_files(path, 0, "train")
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.minReaderVersion' = '2', "
              "'delta.minWriterVersion' = '5', 'delta.columnMapping.mode' = 'name')")
    assert raw_read_blockers(RsTable(path)) == ["columnMapping"]
    with pytest.raises(LakerayError, match=r"@1 uses Delta reader feature\(s\) \['columnMapping'\]"):
        split_files(path, 1, "train")
