"""Bad files in a drop: CSV columns go in by header name, a file that cannot go in whole is set
aside in meta/rejected_files (file, reason, columns or Spark's error) while the others are ingested."""

from __future__ import annotations

import gzip
import os

import pandas as pd

from lakeray.ingest.files import ingest_files
from lakeray.spec.models import Source

CSV = Source.model_validate({
    "format": "csv", "path": "crm", "keys": ["id"],
    "columns": {"id": "string", "gender": "string", "plan": "string"},
})
PARQUET = Source.model_validate({
    "format": "parquet", "path": "usage", "keys": ["id"], "columns": {"id": "string", "minutes": "double"},
})


def _land(tmp_path, source, files: dict[str, bytes | str]):
    folder = tmp_path / "landing" / source.path
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def _ingest(spark, tmp_path, name, source):
    return ingest_files(spark, name, source, str(tmp_path / "landing" / source.path), str(tmp_path / "lake" / "bronze" / name),
                        str(tmp_path / "ckpt" / name), "run-1")


def _bronze(spark, tmp_path, name):
    return {r["id"]: r for r in spark.read.format("delta").load(str(tmp_path / "lake" / "bronze" / name)).collect()}


def _rejected(spark, tmp_path):
    rows = spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).collect()
    return {os.path.basename(r["file"]): r for r in rows}


def test_csv_columns_are_matched_by_header_name(spark, tmp_path):
    _land(tmp_path, CSV, {
        "a.csv": "id,gender,plan\nc1,male,premium\n",
        "b.csv": "id,plan,gender\nc2,premium,male\n",                         # reordered
        "c.csv": "\ufeff Plan ,ID,Gender\r\nbasic,c3,female\r\n",             # BOM, case, spaces, CRLF
    })
    stats = _ingest(spark, tmp_path, "crm", CSV)
    assert (stats.rows, stats.files, stats.rejected_files) == (3, 3, 0)
    rows = _bronze(spark, tmp_path, "crm")
    assert {k: (r["gender"], r["plan"]) for k, r in rows.items()} == {
        "c1": ("male", "premium"), "c2": ("male", "premium"), "c3": ("female", "basic")}
    assert all(r["_corrupt_record"] is None for r in rows.values())
    assert rows["c2"]["_file"].endswith("/crm/b.csv")


def test_csv_files_whose_header_does_not_match_are_set_aside_naming_the_columns(spark, tmp_path):
    _land(tmp_path, CSV, {
        "good.csv": "id,gender,plan\nc1,male,premium\n",
        "missing.csv": "id,gender\nc2,male\n",
        "unknown.csv": "id,gender,plan,region\nc3,male,basic,north\n",
        "twice.csv": "id,gender,plan,Plan\nc4,male,basic,basic\n",
        "empty.csv": "",                                                    # no rows, nothing to lose: skipped
    })
    stats = _ingest(spark, tmp_path, "crm", CSV)
    assert (stats.rows, stats.files, stats.rejected_files) == (1, 1, 3)
    assert list(_bronze(spark, tmp_path, "crm")) == ["c1"]
    rejected = _rejected(spark, tmp_path)
    assert {n: r["reason"] for n, r in rejected.items()} == {
        n: "header_mismatch" for n in ("missing.csv", "unknown.csv", "twice.csv")}
    assert "missing column(s) plan" in rejected["missing.csv"]["detail"]
    assert "unknown column(s) 'region'" in rejected["unknown.csv"]["detail"]
    assert "duplicated column(s) Plan, plan" in rejected["twice.csv"]["detail"]
    assert {r["source"] for r in rejected.values()} == {"crm"} and {r["run_id"] for r in rejected.values()} == {"run-1"}
    # a rerun neither reads nor records them again
    assert _ingest(spark, tmp_path, "crm", CSV).rejected_files == 0
    assert len(_rejected(spark, tmp_path)) == 3


def test_a_corrupt_parquet_file_is_set_aside_and_the_others_ingested(spark, tmp_path):
    folder = _land(tmp_path, PARQUET, {"bad.parquet": b"PAR1" + os.urandom(64) + b"\xff\xff\xff\x7fPAR1"})
    pd.DataFrame({"id": ["e1", "e2"], "minutes": [1.0, 2.0]}).to_parquet(folder / "day1.parquet")
    stats = _ingest(spark, tmp_path, "usage", PARQUET)
    assert (stats.rows, stats.rejected_files) == (2, 1)
    rejected = _rejected(spark, tmp_path)
    assert rejected["bad.parquet"]["reason"] == "unreadable"
    assert "not a readable Parquet file" in rejected["bad.parquet"]["detail"]
    pd.DataFrame({"id": ["e3"], "minutes": [3.0]}).to_parquet(folder / "day2.parquet")
    again = _ingest(spark, tmp_path, "usage", PARQUET)                     # the source is not blocked
    assert (again.rows, again.rejected_files) == (1, 0)
    assert sorted(_bronze(spark, tmp_path, "usage")) == ["e1", "e2", "e3"]


def test_a_first_drop_whose_only_file_spark_cannot_read_leaves_an_empty_bronze_not_a_blocked_source(spark, tmp_path):
    # the failed write leaves a _delta_log folder without a commit; bronze must still be created
    folder = _land(tmp_path, PARQUET, {})
    pd.DataFrame({"id": ["e1"], "minutes": ["one"]}).to_parquet(folder / "typed.parquet")   # text, not double
    stats = _ingest(spark, tmp_path, "usage", PARQUET)
    assert (stats.rows, stats.rejected_files) == (0, 1)
    assert _rejected(spark, tmp_path)["typed.parquet"]["reason"] == "schema_mismatch"
    assert _bronze(spark, tmp_path, "usage") == {}
    pd.DataFrame({"id": ["e2"], "minutes": [2.0]}).to_parquet(folder / "day2.parquet")
    again = _ingest(spark, tmp_path, "usage", PARQUET)
    assert (again.rows, again.rejected_files) == (1, 0)
    assert sorted(_bronze(spark, tmp_path, "usage")) == ["e2"]


def test_parquet_files_with_a_missing_or_mistyped_column_are_set_aside(spark, tmp_path):
    folder = _land(tmp_path, PARQUET, {})
    pd.DataFrame({"id": ["e1"], "minutes": [1.0]}).to_parquet(folder / "ok.parquet")
    pd.DataFrame({"id": ["e2"], "mins": [2.0]}).to_parquet(folder / "renamed.parquet")
    pd.DataFrame({"id": ["e3"], "minutes": ["three"]}).to_parquet(folder / "typed.parquet")
    stats = _ingest(spark, tmp_path, "usage", PARQUET)
    assert (stats.rows, stats.rejected_files) == (1, 2)
    rejected = _rejected(spark, tmp_path)
    assert rejected["renamed.parquet"]["reason"] == "schema_mismatch"
    assert "missing column(s) minutes" in rejected["renamed.parquet"]["detail"]
    assert rejected["typed.parquet"]["reason"] == "schema_mismatch"
    assert "PARQUET_COLUMN_DATA_TYPE_MISMATCH" in rejected["typed.parquet"]["detail"]
    assert "[minutes]" in rejected["typed.parquet"]["detail"]


def test_unreadable_compressed_and_binary_files_in_a_csv_drop_are_set_aside(spark, tmp_path):
    big = gzip.compress(b"id,gender,plan\n" + b"".join(b"t%d,male,basic\n" % i for i in range(20000)))
    _land(tmp_path, CSV, {
        "good.csv.gz": gzip.compress(b"id,gender,plan\nc1,male,premium\n"),
        "not_gzip.csv.gz": "id,gender,plan\nc2,male,basic\n",
        "truncated.csv.gz": big[: len(big) // 2],                          # header fine, body cut off
        "binary.csv": os.urandom(3000),
        "notes.txt": "ignored: not a CSV file name",
    })
    stats = _ingest(spark, tmp_path, "crm", CSV)
    assert (stats.rows, stats.rejected_files) == (1, 3)
    assert list(_bronze(spark, tmp_path, "crm")) == ["c1"]
    rejected = _rejected(spark, tmp_path)
    assert {n: r["reason"] for n, r in rejected.items()} == {
        "not_gzip.csv.gz": "unreadable", "truncated.csv.gz": "unreadable", "binary.csv": "unreadable"}
    assert "FAILED_READ_FILE" in rejected["truncated.csv.gz"]["detail"]
    assert rejected["binary.csv"]["detail"].startswith("not utf-8 text: ")


def test_a_file_named_like_a_glob_pattern_is_ingested_once(spark, tmp_path):
    _land(tmp_path, CSV, {"drop[1].csv": "id,gender,plan\nc1,male,basic\n", "other.csv": "id,gender,plan\nc2,male,basic\n"})
    stats = _ingest(spark, tmp_path, "crm", CSV)
    assert stats.rows == 2
    assert spark.read.format("delta").load(str(tmp_path / "lake" / "bronze" / "crm")).count() == 2
