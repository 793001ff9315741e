"""A first run whose only file was set aside at ingest (a new user's export with more columns than
the spec declares): ingest says so and names the reset command with the spec file the user gave, and
prepare's failure says where the rows went instead of three empty splits."""

from __future__ import annotations

import logging

import pytest
import yaml

from lakeray.errors import DataQualityError
from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse
from lakeray.prepare import run_prepare
from lakeray.prepare.steps import Accounting, empty_gold_problem
from lakeray.spec.loader import load_spec, parse_spec
from tests.support import settings_in

SPEC = """
name: houses_demo
task: regression
entity_key: id
target: price
sources:
  houses:
    format: csv
    path: houses
    columns: {id: string, rooms: int, price: double}
    keys: [id]
dataset: {base: houses}
features: {rooms: numeric}
metric: {primary: rmse}
baseline: {model: mean}
"""


def test_a_drop_set_aside_whole_is_named_at_ingest_and_at_prepare(spark, tmp_path, caplog):
    path = tmp_path / "my specs" / "houses.yaml"
    path.parent.mkdir()
    path.write_text(SPEC)
    spec = load_spec(path)
    assert spec.file == str(path)
    settings = settings_in(tmp_path)
    lake = Lakehouse.for_pipeline(settings, spec)
    folder = tmp_path / "landing" / "houses_demo" / "houses"
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text("id,rooms,price,street\nh1,3,100000,Elm\nh2,4,150000,Oak\n")
    caplog.set_level(logging.WARNING, logger="lakeray")
    run_ingest(spark, spec, settings)
    assert f"`lakeray reset --pipeline {path} --stage ingest --source houses`" in caplog.text
    assert "every file in" in caplog.text and "was set aside; bronze is an empty table" in caplog.text
    assert "no files in" not in caplog.text
    with pytest.raises(DataQualityError) as info:
        run_prepare(spark, spec, settings)
    message = str(info.value)
    assert "gold has no rows: bronze/houses holds no rows" in message
    assert lake.rejected_files in message and "is empty" not in message


def test_a_spec_not_read_from_a_file_names_the_conventional_path():
    assert parse_spec(yaml.safe_load(SPEC)).file == "pipelines/houses_demo.yaml"


def test_the_empty_gold_line_names_the_source_that_lost_its_rows():
    spec = parse_spec(yaml.safe_load(SPEC))
    everything_quarantined = {"houses": Accounting("silver/houses", 5, 0, 5, 0, {"range:price": 5}),
                              "dataset": Accounting("gold", 0, 0, 0, 0, {})}
    line = empty_gold_problem({"train": 0, "validation": 0, "test": 0}, everything_quarantined, spec, "/q")
    assert line.startswith("gold has no rows: source 'houses' has no clean row (silver/houses: in 5 = clean 0")
    no_target = {"houses": Accounting("silver/houses", 5, 5, 0, 0, {}),
                 "dataset": Accounting("gold", 5, 0, 5, 0, {"missing_target": 5})}
    line = empty_gold_problem({"train": 0}, no_target, spec, "/q")
    assert "gold: in 5 = clean 0 + quarantined 5" in line and "'missing_target': 5" in line
    assert empty_gold_problem({"train": 3, "validation": 0, "test": 0}, no_target, spec, "/q") is None
