"""Bronze schemas: text formats land as raw strings (typed later, failures quarantined)."""

from __future__ import annotations

from pyspark.sql import types as T

from lakeray.spec.models import Source

CORRUPT = "_corrupt_record"
# what lakeray.ingest.metadata.with_ingest_metadata adds to every bronze row
METADATA_FIELDS = (T.StructField("_source", T.StringType()), T.StructField("_file", T.StringType()),
                   T.StructField("_ingested_at", T.TimestampType()), T.StructField("_batch_id", T.StringType()))

SPARK_TYPES = {
    "string": T.StringType(), "int": T.IntegerType(), "bigint": T.LongType(), "double": T.DoubleType(),
    "boolean": T.BooleanType(), "date": T.DateType(), "timestamp": T.TimestampType(),
}


# CSV as RFC 4180 writes it (pandas, Excel, PostgreSQL's COPY): a quote inside a quoted value is doubled
# (escape '"'; with Spark's own default, a backslash, `""` stays in the value and a value ending in a
# backslash runs into the next field). A quoted value may hold a line break: a file whose start shows
# one (sniff.quoted_line_breaks) is read with multiLine (as one split); the others line by line, which
# Spark splits and which takes \n, \r\n and \r alike. `options: {multiLine: ...}` decides for every file.
FORMAT_DEFAULTS = {
    "csv": {"header": "true", "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT, "escape": '"'},
    "json": {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    "parquet": {},
}


def reader_options(source: Source) -> dict[str, str]:
    """The spec's reader options with lower-case keys (Spark treats them case-insensitively)."""
    return {k.lower(): v for k, v in source.options.items()}


def has_header(source: Source) -> bool:
    """Whether the source's CSV files start with a header line (options.header, true by default)."""
    return reader_options(source).get("header", "true").strip().lower() == "true"


def csv_separator(source: Source) -> str:
    """The delimiter the source's CSV is read with (options.sep or its alias delimiter; ',' by default)."""
    options = reader_options(source)
    return options.get("sep", options.get("delimiter", ","))


def quoted(name: str) -> str:
    """A column name as SQL text (DDL, expressions, JDBC's customSchema): in backticks, doubled inside."""
    return "`" + name.replace("`", "``") + "`"


def keeps_raw_text(source: Source) -> bool:
    """CSV and JSON values land as text, so that a wrong type is quarantined, not nulled."""
    return source.format in ("csv", "json")


def bronze_read_schema(source: Source) -> T.StructType:
    if keeps_raw_text(source):
        fields = [T.StructField(c, T.StringType()) for c in source.columns]
        fields.append(T.StructField(CORRUPT, T.StringType()))
    else:
        fields = [T.StructField(c, SPARK_TYPES[t]) for c, t in source.columns.items()]
    return T.StructType(fields)


def bronze_table_schema(source: Source) -> T.StructType:
    """What a file silo's bronze table holds: the read schema plus ingestion metadata."""
    return T.StructType(bronze_read_schema(source).fields + list(METADATA_FIELDS))
