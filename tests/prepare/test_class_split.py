"""Multiclass: a class whose every row the split sends to validation or test cannot be learned; the
search and training ran and evaluation then failed on "target classes not seen in training". Prepare
refuses such a gold before writing it, naming the class, its rows per split and what to do."""

from __future__ import annotations

import pytest

from lakeray.errors import DataQualityError
from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse, latest_version
from lakeray.prepare import run_prepare
from lakeray.spec.loader import parse_spec
from tests.support import settings_in


def _spec(name: str, allowed: list[str] | None = None):
    source = {"format": "csv", "path": "jobs", "keys": ["id"],
              "columns": {"id": "string", "x": "double", "cls": "string", "part": "string"}}
    if allowed:
        source["expectations"] = [{"rule": "allowed_values", "column": "cls", "values": allowed}]
    return parse_spec({
        "name": name, "task": "multiclass", "entity_key": "id", "target": "cls",
        "sources": {"jobs": source}, "dataset": {"base": "jobs"}, "features": {"x": "numeric"},
        "metric": {"primary": "accuracy"}, "baseline": {"model": "majority"},
        "split": {"method": "column", "column": "part",
                  "values": {"train": ["tr"], "validation": ["va"], "test": ["te"]}}})


def _run(spark, tmp_path, spec):
    settings = settings_in(tmp_path)
    settings["prepare"]["min_split_rows"] = 1
    lake = Lakehouse.for_pipeline(settings, spec)
    folder = tmp_path / "landing" / spec.name / "jobs"
    folder.mkdir(parents=True)
    rows = [f"j{i},{i},{'ab'[i % 2]},{('tr', 'tr', 'va', 'te')[i % 4]}" for i in range(40)]
    rows += ["r1,1,rare,va", "r2,2,rare,te", "r3,3,rare,te"]          # a class of three rows, none in train
    (folder / "jobs.csv").write_text("id,x,cls,part\n" + "\n".join(rows) + "\n")
    run_ingest(spark, spec, settings)
    return lake, lambda: run_prepare(spark, spec, settings)


def test_a_class_with_no_training_row_is_refused_before_gold_is_written(spark, tmp_path):
    lake, prepare = _run(spark, tmp_path, _spec("rare_class"))
    with pytest.raises(DataQualityError) as info:
        prepare()
    message = str(info.value)
    assert "target class 'rare' has 3 row(s), none in the train split (train=0, validation=1, test=2)" in message
    assert "allowed_values" in message and "'a'" not in message and "'b'" not in message
    assert latest_version(spark, lake.gold) is None


def test_leaving_the_class_out_as_the_message_says_lets_prepare_through(spark, tmp_path):
    lake, prepare = _run(spark, tmp_path, _spec("rare_class_out", allowed=["a", "b"]))
    result = prepare()
    assert result.accounting["jobs"].quarantined == 3
    classes = {r["cls"] for r in spark.read.format("delta").load(lake.gold).collect()}
    assert classes == {"a", "b"}
