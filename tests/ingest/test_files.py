"""File silos into bronze: malformed records kept, metadata added, each file exactly once."""

from __future__ import annotations

import pandas as pd
import pytest

from lakeray.errors import SourceError
from lakeray.ingest.files import ingest_files
from lakeray.spec.models import Source

CSV_SOURCE = Source.model_validate({
    "format": "csv", "path": "crm", "keys": ["id"],
    "columns": {"id": "string", "age": "int", "joined": "date"},
})
JSON_SOURCE = Source.model_validate({
    "format": "json", "path": "tickets", "keys": ["id"], "columns": {"id": "string", "score": "int"},
})
PARQUET_SOURCE = Source.model_validate({
    "format": "parquet", "path": "usage", "keys": ["id"], "columns": {"id": "string", "minutes": "double"},
})


def _ingest(spark, tmp_path, name, source):
    return ingest_files(spark, name, source, str(tmp_path / "landing" / source.path), str(tmp_path / "bronze" / name),
                        str(tmp_path / "ckpt" / name), "run-1")


def _bronze(spark, tmp_path, name):
    return spark.read.format("delta").load(str(tmp_path / "bronze" / name))


def test_csv_keeps_malformed_lines_and_raw_text(spark, tmp_path):
    folder = tmp_path / "landing" / "crm"
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text("id,age,joined\na,31,2024-01-02\nb,not a number,2024-02-30\nthis line is broken\nc,40,2024-03-01,extra\n")
    stats = _ingest(spark, tmp_path, "crm", CSV_SOURCE)
    assert (stats.batches, stats.rows) == (1, 4)
    rows = {r["id"]: r for r in _bronze(spark, tmp_path, "crm").collect()}
    assert rows["b"]["age"] == "not a number" and rows["b"]["joined"] == "2024-02-30"   # raw text, typed later
    assert rows["this line is broken"]["_corrupt_record"] == "this line is broken"
    assert rows["c"]["_corrupt_record"] == "c,40,2024-03-01,extra"
    assert rows["a"]["_corrupt_record"] is None
    assert rows["a"]["_source"] == "crm" and rows["a"]["_file"].endswith("/crm/export.csv")
    assert rows["a"]["_batch_id"] == "run-1" and rows["a"]["_ingested_at"] is not None
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{tmp_path / 'bronze' / 'crm'}`").first()
    assert detail["properties"]["delta.dataSkippingStatsColumns"] == "`id`,`_ingested_at`,`_batch_id`"


def test_json_keeps_malformed_records(spark, tmp_path):
    folder = tmp_path / "landing" / "tickets"
    folder.mkdir(parents=True)
    (folder / "t.json").write_text('{"id": "t1", "score": 4}\n{"id": "t2", "score": "five"}\n{"id": "t3", "score": \n')
    assert _ingest(spark, tmp_path, "tickets", JSON_SOURCE).rows == 3
    rows = {r["id"]: r for r in _bronze(spark, tmp_path, "tickets").collect()}
    assert rows["t1"]["score"] == "4" and rows["t2"]["score"] == "five"
    corrupt = [r for r in _bronze(spark, tmp_path, "tickets").collect() if r["_corrupt_record"]]
    assert [r["_corrupt_record"] for r in corrupt] == ['{"id": "t3", "score": ']


def test_incremental_arrivals_are_ingested_exactly_once(spark, tmp_path):
    folder = tmp_path / "landing" / "usage"
    folder.mkdir(parents=True)
    pd.DataFrame({"id": ["e1", "e2"], "minutes": [1.0, 2.0]}).to_parquet(folder / "day1.parquet")
    assert _ingest(spark, tmp_path, "usage", PARQUET_SOURCE).rows == 2
    assert _ingest(spark, tmp_path, "usage", PARQUET_SOURCE).rows == 0          # nothing new: nothing added
    pd.DataFrame({"id": ["e3"], "minutes": [3.0]}).to_parquet(folder / "day2.parquet")
    pd.DataFrame({"id": ["e4", "e5"], "minutes": [4.0, 5.0]}).to_parquet(folder / "day3.parquet")
    stats = _ingest(spark, tmp_path, "usage", PARQUET_SOURCE)
    assert stats.rows == 3
    bronze = _bronze(spark, tmp_path, "usage")
    assert sorted(r["id"] for r in bronze.collect()) == ["e1", "e2", "e3", "e4", "e5"]
    assert bronze.schema["minutes"].dataType.simpleString() == "double"


def test_files_of_other_formats_in_the_folder_are_ignored(spark, tmp_path):
    folder = tmp_path / "landing" / "usage"
    folder.mkdir(parents=True)
    pd.DataFrame({"id": ["e1"], "minutes": [1.0]}).to_parquet(folder / "a.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / "README.txt").write_text("not data")
    assert _ingest(spark, tmp_path, "usage", PARQUET_SOURCE).rows == 1


def test_missing_landing_folder_is_a_clear_error(spark, tmp_path):
    with pytest.raises(SourceError, match=r"landing folder .*/landing/crm does not exist \(source path 'crm'\)"):
        _ingest(spark, tmp_path, "crm", CSV_SOURCE)


def test_empty_landing_folder_gives_an_empty_bronze_table(spark, tmp_path):
    (tmp_path / "landing" / "crm").mkdir(parents=True)
    assert _ingest(spark, tmp_path, "crm", CSV_SOURCE).rows == 0
    bronze = _bronze(spark, tmp_path, "crm")
    assert bronze.count() == 0
    assert bronze.columns == ["id", "age", "joined", "_corrupt_record", "_source", "_file", "_ingested_at", "_batch_id"]
    (tmp_path / "landing" / "crm" / "late.csv").write_text("id,age,joined\nz,1,2024-01-01\n")
    assert _ingest(spark, tmp_path, "crm", CSV_SOURCE).rows == 1
    assert _bronze(spark, tmp_path, "crm").count() == 1
