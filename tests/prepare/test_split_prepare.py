"""The prepare job's split checks on the generated churn silos (each run in its own copy of the
churn bronze tables, so the shared churn world's gold is not touched): a gold with an empty or
too small part is refused before it is written; a hash split on a column with a handful of
values is refused; the dataset's own split column places rows by value, the rest quarantined or refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lakeray.errors import DataQualityError
from lakeray.lakehouse import Lakehouse, latest_version
from lakeray.prepare import run_prepare
from lakeray.spec.models import Split
from tests.support import settings_in


@pytest.fixture
def own_lake(churn_world, tmp_path):
    """Settings for a fresh lakehouse holding a copy of the churn bronze tables."""
    settings = settings_in(tmp_path)
    spec = churn_world["spec"]
    target = Lakehouse.for_pipeline(settings, spec)
    shutil.copytree(Path(churn_world["lake"].root) / "bronze", Path(target.root) / "bronze")
    return settings, target


def _with(settings, **prepare):
    return type(settings)({**settings, "prepare": {**settings["prepare"], **prepare}})


def _failed_run(spark, lake) -> dict:
    rows = spark.read.format("delta").load(lake.run_metrics).where("`table` = 'dataset'").collect()
    assert len(rows) == 1 and rows[0]["status"] == "failed"
    return json.loads(rows[0]["details"])


def test_a_gold_without_training_rows_is_refused_before_it_is_written(spark, churn_world, own_lake):
    settings, lake = own_lake
    spec = churn_world["spec"].model_copy(update={"split": Split(fractions={"train": 0.0, "validation": 0.03, "test": 0.97})})
    with pytest.raises(DataQualityError) as info:
        run_prepare(spark, spec, _with(settings, min_split_rows=30))
    msg = str(info.value)
    assert "gold was not updated (silver was)" in msg          # DataQualityError: exit code 2 via the CLI
    details = _failed_run(spark, lake)
    counts = details["split_rows"]
    assert counts["train"] == 0 and 0 < counts["validation"] < 30
    assert sum(counts.values()) == churn_world["prepared"].accounting["dataset"].clean
    shown = f"rows per split: train=0, validation={counts['validation']}, test={counts['test']}"
    assert f"split 'train' is empty ({shown})" in msg
    assert f"split 'validation' has {counts['validation']} row(s), fewer than prepare.min_split_rows = 30 in conf/ ({shown})" in msg
    assert "split 'test'" not in msg
    assert latest_version(spark, lake.gold) is None                 # no gold version at all, not a half-written one
    assert latest_version(spark, lake.quarantine) is not None       # the rejected rows are still kept


def test_a_hash_split_on_a_column_of_few_values_is_refused_at_prepare(spark, churn_world, own_lake):
    settings, lake = own_lake
    spec = churn_world["spec"].model_copy(update={"split": Split(column="region")})
    with pytest.raises(DataQualityError) as info:
        run_prepare(spark, spec, settings)
    msg = str(info.value)
    assert "split.column 'region' has 5 distinct value(s) (" in msg and "'north'=" in msg
    assert "need at least 34 distinct values" in msg
    assert latest_version(spark, lake.gold) is None


def test_the_dataset_own_split_column(spark, churn_world, own_lake):
    settings, lake = own_lake
    split = Split(method="column", column="region", values={"train": ["north", "south", "east"], "test": ["west"]},
                  validation_fraction=0.25, seed=3)
    spec = churn_world["spec"].model_copy(update={"split": split})
    result = run_prepare(spark, spec, _with(settings, max_quarantine_rate=0.5))
    gold = spark.read.format("delta").load(result.gold.path)
    by_part = {(r["split"], r["region"]): r["count"] for r in gold.groupBy("split", "region").count().collect()}
    assert {region for (part, region) in by_part if part == "test"} == {"west"}
    assert {region for (part, region) in by_part if part != "test"} == {"north", "south", "east"}
    train = sum(n for (part, _), n in by_part.items() if part == "train")
    validation = sum(n for (part, _), n in by_part.items() if part == "validation")
    assert 0.15 < validation / (train + validation) < 0.35
    unknown = result.accounting["dataset"].quarantine_by_rule.get("split_value:region", 0)
    q = spark.read.format("delta").load(result.quarantine.path).where("rule = 'split_value:region'")
    assert unknown > 0 and q.count() == unknown and {r["value"] for r in q.collect()} == {"unknown"}

    refusing = spec.model_copy(update={"split": split.model_copy(update={"unlisted": "refuse"})})
    before = latest_version(spark, lake.gold)
    with pytest.raises(DataQualityError, match=r"split.column 'region': (\d+) row\(s\) have a value in no list "
                                               r"of split.values \('unknown'=\1\); listed: .*\(split.unlisted: refuse\)"):
        run_prepare(spark, refusing, _with(settings, max_quarantine_rate=0.5))
    assert latest_version(spark, lake.gold) == before
