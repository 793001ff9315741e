"""JSON drops as exporters write them: JSON lines, one array of records (pretty-printed or not), one
record over several lines. Records written over several lines one after another, which Spark can read
neither way (every line malformed, or the first record alone), are set aside with what to land instead;
so is a JSON-lines file read with `multiLine: true` (Spark would keep its first record only)."""

from __future__ import annotations

import json

import pytest

from lakeray.ingest.files import ingest_files
from lakeray.ingest.sniff import json_absent, json_spellings, json_values
from lakeray.spec.models import Source

SOURCE = Source.model_validate({
    "format": "json", "path": "tickets", "keys": ["id"], "columns": {"id": "string", "score": "int"},
})
RECORDS = [{"id": "a", "score": 1}, {"id": "b", "score": 2}, {"id": "c", "score": 3}]


def _ingest(spark, tmp_path, files: dict[str, str], source=SOURCE):
    folder = tmp_path / "landing" / "tickets"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    bronze = str(tmp_path / "lake" / "bronze" / "tickets")
    stats = ingest_files(spark, "tickets", source, str(folder), bronze, str(tmp_path / "ckpt"), "run-1")
    rows = sorted(((r["_file"].rsplit("/", 1)[-1], r["id"], r["score"], r["_corrupt_record"])
                   for r in spark.read.format("delta").load(bronze).collect()), key=lambda r: [v or "" for v in r])
    rejected = {}
    if stats.rejected_files:
        rejected = {r["file"].rsplit("/", 1)[-1]: r["detail"] for r in
                    spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).collect()}
    return stats, rows, rejected


def test_arrays_lines_and_a_record_over_several_lines_are_read_as_records(spark, tmp_path):
    stats, rows, rejected = _ingest(spark, tmp_path, {
        "pretty.json": json.dumps(RECORDS[:2], indent=2),               # an array, pretty-printed
        "compact.json": json.dumps(RECORDS[2:]),                        # an array on one line
        "one.json": json.dumps({"id": "d", "score": 4}, indent=2),      # one record over several lines
        "lines.json": '{"id": "e", "score": 5}\n{"id": "f", "score": \n',   # JSON lines, the last malformed
    })
    assert (stats.rows, stats.rejected_files, rejected) == (6, 0, {})
    assert rows == [
        ("compact.json", "c", "3", None),
        ("lines.json", None, None, '{"id": "f", "score": '),
        ("lines.json", "e", "5", None),
        ("one.json", "d", "4", None),
        ("pretty.json", "a", "1", None),
        ("pretty.json", "b", "2", None),
    ]


def test_records_over_several_lines_one_after_another_are_set_aside(spark, tmp_path):
    pretty = "\n".join(json.dumps(r, indent=2) for r in RECORDS)
    stats, rows, rejected = _ingest(spark, tmp_path, {"pretty.json": pretty, "lines.json": '{"id": "e", "score": 5}\n'})
    assert (stats.rows, stats.rejected_files) == (1, 1)
    assert [r[1] for r in rows] == ["e"]
    assert rejected["pretty.json"].startswith("JSON records written over several lines, one after another: land them "
                                              "as JSON lines")


def test_json_lines_read_with_multiline_are_set_aside_not_cut_to_their_first_record(spark, tmp_path):
    source = SOURCE.model_copy(update={"options": {"multiLine": "true"}})
    stats, rows, rejected = _ingest(spark, tmp_path, {
        "lines.json": "".join(json.dumps(r) + "\n" for r in RECORDS), "array.json": json.dumps(RECORDS, indent=2)},
        source)
    assert (stats.rows, stats.rejected_files) == (3, 1)
    assert [r[0] for r in rows] == ["array.json"] * 3
    assert rejected["lines.json"].startswith("3 JSON values one after another")


@pytest.mark.fast
@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1}\n{"a": 2}\n', ([{"a": 1}, {"a": 2}], False)),
    ('{\n "a": 1\n}\n{"a": 2}', ([{"a": 1}, {"a": 2}], True)),
    ('[{"a": 1},\n {"a": 2}]', ([[{"a": 1}, {"a": 2}]], True)),
    ('{"a": 1}\n{"a": ', ([{"a": 1}], False)),        # until one does not parse
    ("not json", ([], False)),
    ("  \n", ([], False)),
])
def test_json_values_reads_the_values_at_the_start(text, expected):
    assert json_values(text) == expected


@pytest.mark.fast
def test_json_spellings_match_keys_as_csv_headers_are_matched():
    values = [{" ID ": "x", "Score": 1, "score2": 3}, [{"NOTE": "n"}]]
    source = SOURCE.model_copy(update={"columns": {"id": "string", "score": "int", "note": "string", "gone": "string"}})
    assert json_spellings(values, source) == (("id", " ID "), ("score", "Score"), ("note", "NOTE"))
    assert json_spellings([{"id": 1, "ID": 2}], source) == ()          # an exact key wins


def test_keys_spelled_in_another_case_land_in_their_columns(spark, tmp_path):
    stats, rows, rejected = _ingest(spark, tmp_path, {
        "upper.json": '{"ID": "a", "Score": 1}\n{"ID": "b", "Score": "two"}\n',
        "exact.json": '{"id": "c", "score": 3}\n',
    })
    assert (stats.rows, rejected) == (3, {})
    assert rows == [("exact.json", "c", "3", None), ("upper.json", "a", "1", None), ("upper.json", "b", "two", None)]


def test_a_declared_key_no_record_has_is_said_not_set_aside(spark, tmp_path, caplog):
    # a renamed key upstream (score -> rating) lands as nulls; a writer that leaves out null fields does
    # the same to a sparse column, so the file goes in, with a warning naming the column
    stats, rows, rejected = _ingest(spark, tmp_path, {"renamed.json": '{"id": "a", "rating": 1}\n{"id": "b"}\n',
                                                      "fine.json": '{"id": "c", "SCORE": 3}\n'})
    assert (stats.rows, rejected) == (3, {})
    assert {r[1]: r[2] for r in rows} == {"a": None, "b": None, "c": "3"}       # bronze keeps JSON values as text
    warned = [m for m in caplog.messages if "has a key for" in m]
    assert len(warned) == 1 and "renamed.json: no record in the file's first 64 KB has a key for score" in warned[0]
    assert json_absent([{"ID": 1}, [{"score": None}]], SOURCE) == [] and json_absent([], SOURCE) == []
