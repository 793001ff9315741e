"""CSV as RFC 4180 writes it (pandas, Python's csv module, Excel, PostgreSQL's COPY): quoted values
holding line breaks, doubled quotes, delimiters; a quote never closed does not swallow the rows after
it; `options: {multiLine: "false"}` reads line by line. Text that is not in the source's encoding is
set aside naming the byte and the setting, instead of landing with U+FFFD in its values."""

from __future__ import annotations

import csv
import io
import logging

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeray.ingest.files import ingest_files, screen
from lakeray.ingest.readers import read_groups
from lakeray.ingest.sniff import NotInEncoding, decode_head
from lakeray.spec.models import Source

COLUMNS = ["id", "note", "city"]
SOURCE = Source.model_validate({
    "format": "csv", "path": "crm", "keys": ["id"], "columns": {c: "string" for c in COLUMNS},
})


def _land(tmp_path, name: str, content: bytes):
    folder = tmp_path / "landing" / "crm"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder


def _ingest(spark, tmp_path, source=SOURCE):
    bronze = str(tmp_path / "lake" / "bronze" / "crm")     # set-aside files: lake/meta/rejected_files
    stats = ingest_files(spark, "crm", source, str(tmp_path / "landing" / "crm"), bronze, str(tmp_path / "ckpt"), "run-1")
    rows = spark.read.format("delta").load(bronze).collect()
    return stats, sorted(rows, key=lambda r: r["id"])


def test_quoted_line_breaks_doubled_quotes_and_delimiters_are_values(spark, tmp_path):
    _land(tmp_path, "export.csv", (
        'id,note,city\n'
        'a,"first line\nsecond line",Oslo\n'
        'b,"say ""hi"", then go",Lima\n'
        'c,"C:\\dir\\",Kyiv\n'                      # a backslash before the closing quote is a character
        'd,"a, b; c",Rome\n'                       # a delimiter inside quotes
        'e,"",\n'                                  # empty, quoted or not: null (Spark's nullValue, as pandas)
    ).encode())
    _land(tmp_path, "windows.csv", b'id,note,city\r\nf,"one\r\ntwo",Baku\r\ng,plain,Doha\r\n')
    stats, rows = _ingest(spark, tmp_path)
    assert (stats.rows, stats.rejected_files) == (7, 0)
    assert [(r["id"], r["note"], r["city"], r["_corrupt_record"]) for r in rows] == [
        ("a", "first line\nsecond line", "Oslo", None),
        ("b", 'say "hi", then go', "Lima", None),
        ("c", "C:\\dir\\", "Kyiv", None),
        ("d", "a, b; c", "Rome", None),
        ("e", None, None, None),
        ("f", "one\ntwo", "Baku", None),          # the parser gives a line break inside quotes as \n
        ("g", "plain", "Doha", None),
    ]


def test_a_file_without_quoted_line_breaks_is_read_line_by_line_whatever_its_line_ends(spark, tmp_path):
    # no quoted value spans lines: read line by line (split by Spark), which takes \n, \r\n and \r alike
    _land(tmp_path, "mixed.csv", b'id,note,city\r\na,"x",Oslo\nb,y,Lima\r\nc,z,Kyiv\rd,w,Rome\n')
    stats, rows = _ingest(spark, tmp_path)
    assert [(r["id"], r["note"], r["city"], r["_corrupt_record"]) for r in rows] == [
        ("a", "x", "Oslo", None), ("b", "y", "Lima", None), ("c", "z", "Kyiv", None), ("d", "w", "Rome", None)]


def test_a_multiline_file_with_mixed_line_ends_keeps_no_carriage_return(spark, tmp_path):
    # the reader takes the first line's end (\n) for every line: the \r\n rows' last value kept the \r
    _land(tmp_path, "joined.csv", b'id,note,city\na,"one\ntwo",Oslo\nb,x,Lima\r\nc,y,Kyiv\nd,"p\r\nq",Rome\r\n')
    _land(tmp_path, "windows-first.csv", b'id,note,city\r\ne,"one\r\ntwo",Baku\r\nf,x,Doha\ng,y,Lund\r\n')
    stats, rows = _ingest(spark, tmp_path)
    assert [(r["id"], r["note"], r["city"], r["_corrupt_record"]) for r in rows] == [
        ("a", "one\ntwo", "Oslo", None), ("b", "x", "Lima", None), ("c", "y", "Kyiv", None),
        ("d", "p\r\nq", "Rome", None), ("e", "one\ntwo", "Baku", None), ("f", "x", "Doha", None),
        ("g", "y", "Lund", None)]


@pytest.mark.parametrize("multiline", [None, "true"])
def test_a_quote_never_closed_does_not_swallow_the_rows_after_it(spark, tmp_path, multiline):
    source = SOURCE if multiline is None else SOURCE.model_copy(update={"options": {"multiLine": multiline}})
    _land(tmp_path, "export.csv", b'id,note,city\na,fine,Oslo\nb,"never closed,Lima\nc,ok,Kyiv\n\nd,"two\nlines",Rome\n')
    stats, rows = _ingest(spark, tmp_path, source)
    by_id = {r["id"]: r for r in rows}
    # the broken line is one malformed row, its text kept; the lines after it are read one by one
    assert by_id["b"]["_corrupt_record"] == 'b,"never closed,Lima'
    assert (by_id["a"]["note"], by_id["c"]["note"], by_id["c"]["city"]) == ("fine", "ok", "Kyiv")
    assert by_id["a"]["_corrupt_record"] is None and by_id["c"]["_corrupt_record"] is None
    # after a broken quote a value spanning lines cannot be told from another broken line: malformed, kept
    assert by_id["d"]["_corrupt_record"] == 'd,"two'
    assert by_id['lines"']["_corrupt_record"] == 'lines",Rome'
    assert stats.rows == len(rows) == 5


def test_multiline_off_reads_line_by_line(spark, tmp_path):
    source = SOURCE.model_copy(update={"options": {"header": "true", "multiLine": "false"}})
    _land(tmp_path, "export.csv", b'id,note,city\na,"first\nsecond",Oslo\nb,ok,Lima\n')
    stats, rows = _ingest(spark, tmp_path, source)
    assert stats.rows == 3
    assert [r["_corrupt_record"] for r in rows] == ['a,"first', None, 'second",Oslo']


TEXT = st.text(st.sampled_from(list('ab ,;"\'\\\n\té€🙂\u00a0')), max_size=12)


def _written(frame: pd.DataFrame, writer: str) -> bytes:
    if writer == "pandas":
        return frame.to_csv(index=False).encode()
    out = io.StringIO(newline="")
    w = csv.writer(out, quoting=csv.QUOTE_ALL if writer == "csv_all" else csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(frame.columns)
    w.writerows(frame.itertuples(index=False))
    return out.getvalue().encode()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notes=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=8),
       writer=st.sampled_from(["pandas", "csv_minimal", "csv_all"]), order=st.permutations(COLUMNS))
def test_what_a_csv_writer_wrote_is_what_bronze_holds(spark, tmp_path_factory, notes, writer, order):
    frame = pd.DataFrame({"id": [f"k{i}" for i in range(len(notes))], "note": [n for n, _ in notes],
                          "city": [c for _, c in notes]})[list(order)]
    folder = tmp_path_factory.mktemp("drop")
    path = folder / "export.csv"
    path.write_bytes(_written(frame, writer))
    groups, rejected = screen(spark, SOURCE, [str(path)])
    assert not rejected and [layout.columns for layout in groups] == [tuple(order)]
    bronze = read_groups(spark, "crm", SOURCE, groups, "run-1")
    rows = {r["id"]: r for r in bronze.collect()}
    # an empty value, quoted ("", Python's QUOTE_ALL) or not, reads as null (Spark's nullValue; pandas alike)
    expected = {k: (n or None, c or None)
                for k, n, c in zip(frame["id"], frame["note"], frame["city"], strict=True)}
    assert {k: (r["note"], r["city"]) for k, r in rows.items()} == expected
    assert all(r["_corrupt_record"] is None for r in rows.values())


def test_a_file_not_in_the_sources_encoding_is_set_aside_naming_the_byte_and_the_setting(spark, tmp_path):
    _land(tmp_path, "latin1.csv", "id,note,city\na,plain,Oslo\nb,fémale,Zürich\n".encode("latin-1"))
    _land(tmp_path, "utf16.csv", "id,note,city\nc,x,Lima\n".encode("utf-16"))
    _land(tmp_path, "good.csv", "id,note,city\nd,crème,Genève\n".encode())
    stats, rows = _ingest(spark, tmp_path)
    assert (stats.rows, stats.rejected_files) == (1, 2)
    assert [(r["id"], r["note"], r["city"]) for r in rows] == [("d", "crème", "Genève")]
    rejected = {r["file"].rsplit("/", 1)[-1]: r for r in
                spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).collect()}
    assert rejected["latin1.csv"]["reason"] == "unreadable"
    assert rejected["latin1.csv"]["detail"].startswith(
        "not utf-8 text: byte 0xe9 at offset 29 (line 3) is not valid utf-8; set the source's options.encoding")
    assert "UTF-16 byte order mark" in rejected["utf16.csv"]["detail"]


def test_the_encoding_option_reads_such_a_file(spark, tmp_path):
    source = SOURCE.model_copy(update={"options": {"encoding": "ISO-8859-1"}})
    _land(tmp_path, "latin1.csv", "id,note,city\nb,fémale,Zürich\n".encode("latin-1"))
    stats, rows = _ingest(spark, tmp_path, source)
    assert [(r["id"], r["note"], r["city"]) for r in rows] == [("b", "fémale", "Zürich")]


@pytest.mark.fast
def test_a_character_cut_at_the_end_of_the_head_is_not_an_error():
    text = "id,note\na,€€€"
    head = text.encode()[:-1]               # the last € cut after two of its three bytes
    assert decode_head(head, True, "utf-8") == "id,note\na,€€"
    with pytest.raises(NotInEncoding, match="byte 0xe2 at offset 16 \\(line 2\\)"):
        decode_head(head, False, "utf-8")   # the whole file: a cut character is an error


def test_a_json_file_not_in_the_sources_encoding_is_set_aside(spark, tmp_path):
    source = Source.model_validate({"format": "json", "path": "tickets", "keys": ["id"], "columns": {"id": "string", "note": "string"}})
    folder = tmp_path / "landing" / "tickets"
    folder.mkdir(parents=True)
    (folder / "latin1.json").write_bytes('{"id": "t1", "note": "résumé"}\n'.encode("latin-1"))
    (folder / "good.json").write_bytes('{"id": "t2", "note": "résumé"}\n'.encode())
    bronze = str(tmp_path / "lake" / "bronze" / "tickets")
    stats = ingest_files(spark, "tickets", source, str(folder), bronze, str(tmp_path / "ckpt"), "run-1")
    assert (stats.rows, stats.rejected_files) == (1, 1)
    assert [(r["id"], r["note"]) for r in spark.read.format("delta").load(bronze).collect()] == [("t2", "résumé")]
    detail = spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).first()["detail"]
    assert detail.startswith("not utf-8 text: byte 0xe9 at offset 23 (line 1)")


def test_a_file_without_header_is_checked_too(spark, tmp_path):
    source = SOURCE.model_copy(update={"options": {"header": "false"}})
    _land(tmp_path, "plain.csv", b'a,"first\nsecond",Oslo\nb,ok,Lima\n')
    _land(tmp_path, "latin1.csv", "c,fémale,Zürich\n".encode("latin-1"))
    stats, rows = _ingest(spark, tmp_path, source)
    assert (stats.rows, stats.rejected_files) == (2, 1)
    assert [(r["id"], r["note"], r["city"], r["_corrupt_record"]) for r in rows] == [
        ("a", "first\nsecond", "Oslo", None), ("b", "ok", "Lima", None)]


def test_extra_columns_ignore_reads_the_declared_columns_of_a_pandas_default_export(spark, tmp_path):
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "id": ["a", "b"], "region": ["N", "S"], "note": ["x, y", None]})
    _land(tmp_path, "export.csv", frame.to_csv().encode())     # index=True: an unnamed first column
    source = SOURCE.model_copy(update={"extra_columns": "ignore"})
    stats, rows = _ingest(spark, tmp_path, source)
    assert (stats.rows, stats.rejected_files) == (2, 0)
    assert [(r["id"], r["note"], r["city"], r["_corrupt_record"]) for r in rows] == [
        ("a", "x, y", "Oslo", None), ("b", None, "Lima", None)]
    assert not [c for c in rows[0].asDict() if c.startswith("_unread")]


def test_a_semicolon_export_read_as_commas_is_set_aside_naming_the_delimiter(spark, tmp_path):
    _land(tmp_path, "export.csv", b"id;note;city\na;x;Oslo\n")
    stats, rows = _ingest(spark, tmp_path)
    assert (stats.rows, stats.rejected_files, rows) == (0, 1, [])
    detail = spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).first()["detail"]
    assert detail.endswith("the header matches when split on ';': set sources.crm.options.sep: ';'")


def test_leading_zeros_in_a_number_column_are_warned_naming_the_key(spark, tmp_path, caplog):
    """Account 007 and account 7 are two customers in the file and one key once typed bigint: the
    ingest says so (the dedupe would keep one of them), naming the column and the fix."""
    _land(tmp_path, "accounts.csv", b"id,note,city\n007,first,Oslo\n7,second,Lima\n")
    source = Source.model_validate({"format": "csv", "path": "crm", "keys": ["id"],
                                    "columns": {"id": "bigint", "note": "string", "city": "string"}})
    with caplog.at_level(logging.WARNING, logger="lakeray.ingest.screen"):
        stats, rows = _ingest(spark, tmp_path, source)
    assert stats.rows == 2 and [r["id"] for r in rows] == ["007", "7"]        # bronze keeps the text
    said = [r.getMessage() for r in caplog.records if "leading zeros" in r.getMessage()]
    assert len(said) == 1 and "id (bigint, a key) '007' in 1 of 2 rows" in said[0]
    assert "declare the column string in sources.crm.columns" in said[0]


@pytest.mark.parametrize("first", [b"sep=;", b"SEP=,", b"\xef\xbb\xbfsep=\t"])
def test_excels_separator_line_is_set_aside_saying_so(spark, tmp_path, first):
    """Excel writes and reads a first line 'sep=;'; Spark would take it for the header (every column
    missing). The file is set aside saying what the line is, not suggesting a rename."""
    _land(tmp_path, "excel.csv", first + b"\r\nid;note;city\r\na;x;Oslo\r\n")
    stats, _ = _ingest(spark, tmp_path)
    assert (stats.rows, stats.rejected_files) == (0, 1)
    detail = spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).first()["detail"]
    assert "the separator line Excel writes and reads" in detail and "land the file without it" in detail


def test_a_file_of_other_columns_gets_no_rename_hint(spark, tmp_path):
    _land(tmp_path, "other.csv", b"order,total\n1,2\n")
    stats, _ = _ingest(spark, tmp_path)
    detail = spark.read.format("delta").load(str(tmp_path / "lake" / "meta" / "rejected_files")).first()["detail"]
    assert stats.rejected_files == 1 and "missing column(s) id, note, city" in detail and "rename" not in detail
