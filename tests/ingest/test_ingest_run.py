"""run_ingest ingests its sources side by side (ingest.parallel_sources): three file sources whose
first drops each hold a file that must be set aside create meta/rejected_files together, and every
source's good rows, rejections and run-metrics row are there, as when they run one after another."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse
from lakeray.spec.loader import parse_spec
from tests.support import settings_in

CSV_COLUMNS = {"id": "string", "plan": "string"}
SPEC = parse_spec({
    "name": "side", "task": "binary", "entity_key": "id", "target": "churned",
    "sources": {
        "people": {"format": "csv", "path": "people", "keys": ["id"], "columns": {**CSV_COLUMNS, "churned": "boolean"}},
        "plans": {"format": "csv", "path": "plans", "keys": ["id"], "columns": CSV_COLUMNS},
        "usage": {"format": "parquet", "path": "usage", "keys": ["id"], "columns": {"id": "string", "minutes": "double"}},
    },
    "dataset": {"base": "people", "joins": [{"source": "usage", "on": "id", "aggregate": {
        "minutes": {"fn": "sum", "column": "minutes", "fill": 0}}}]},
    "features": {"plan": "categorical", "minutes": "numeric"},
    "metric": {"primary": "roc_auc"}, "baseline": {"model": "majority"},
    "split": {"method": "hash", "seed": 1, "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}},
})


@pytest.mark.parametrize("workers", [3, 1])
def test_sources_ingested_side_by_side_each_set_a_file_aside(spark, workers):
    folder = Path(tempfile.mkdtemp(prefix="ingest-run-"))
    settings = settings_in(folder)
    settings["ingest"]["parallel_sources"] = workers
    lake = Lakehouse.for_pipeline(settings, SPEC)
    landing = {name: Path(lake.landing(source.path, name)) for name, source in SPEC.sources.items()}
    for path in landing.values():
        path.mkdir(parents=True)
    (landing["people"] / "a.csv").write_text("id,plan,churned\np1,basic,true\np2,pro,false\n")
    (landing["people"] / "bad.csv").write_text("who,what\nx,y\n")                       # header matches nothing
    (landing["plans"] / "a.csv").write_text("plan,id\npro,p1\n")
    (landing["plans"] / "bad.csv").write_text("nope\n1\n")
    pd.DataFrame({"id": ["p1", "p2", "p2"], "minutes": [1.0, 2.0, 0.5]}).to_parquet(landing["usage"] / "day1.parquet")
    (landing["usage"] / "bad.parquet").write_bytes(b"PAR1" + os.urandom(64) + b"\xff\xff\xff\x7fPAR1")

    results = run_ingest(spark, SPEC, settings)

    assert {n: (r.rows_added, r.detail["rejected_files"]) for n, r in results.items()} == {
        "people": (2, 1), "plans": (1, 1), "usage": (3, 1)}
    rejected = spark.read.format("delta").load(lake.rejected_files).collect()
    assert sorted((r["source"], os.path.basename(r["file"])) for r in rejected) == [
        ("people", "bad.csv"), ("plans", "bad.csv"), ("usage", "bad.parquet")]
    for name, rows in {"people": 2, "plans": 1, "usage": 3}.items():
        assert spark.read.format("delta").load(lake.bronze(name)).count() == rows
    metrics = spark.read.format("delta").load(lake.run_metrics).where("stage = 'ingest'").collect()
    assert sorted((r["table"], r["rows_in"]) for r in metrics) == [
        ("bronze/people", 2), ("bronze/plans", 1), ("bronze/usage", 3)]
