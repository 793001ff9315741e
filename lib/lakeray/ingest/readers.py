"""Reading the accepted files of a batch, each group as its screen found it (ingest.screen.Layout):
CSV columns by header name, RFC 4180 quoting, multiLine where records span lines; JSON keys under the
records' spelling; Parquet columns in the file's type, widened to the declared one."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeray.ingest.metadata import with_ingest_metadata
from lakeray.ingest.schema import CORRUPT, FORMAT_DEFAULTS, bronze_read_schema, quoted
from lakeray.ingest.screen import Layout
from lakeray.ingest.sniff import glob_escaped, widen_kind
from lakeray.spec.models import Source


def _read(spark, source: Source, files: list[str], schema: T.StructType, columns: list[str], multiline: bool):
    options = {**FORMAT_DEFAULTS[source.format], **({"multiLine": "true"} if multiline else {}), **source.options}
    frame = spark.read.format(source.format).schema(schema).options(**options).load([glob_escaped(f) for f in files])
    frame = frame.select(*[named(n) for n in schema.fieldNames()], F.col("_metadata.file_path").alias("_file_path"))
    if source.format == "csv" and _multiline(options):
        frame = without_line_end(split_swallowed(frame, schema, options), [n for n in schema.fieldNames() if n != CORRUPT][-1])
    return frame.select(*[named(c) for c in columns], "_file_path")


def named(name: str):
    """The column called `name`, whatever it holds: a file's name for a renamed column may hold '.'
    (R's Sepal.Length), which F.col reads as a struct path."""
    return F.col(quoted(name))


def without_line_end(frame, last: str):
    """A multiLine reader takes the line end of a file's first line as every line's: a file that starts
    with \n lines and has some \r\n ones (files concatenated, a row edited on Windows) gives those rows'
    last value with the \r. The last column loses one \r at its end (a quoted value ending in \r, in
    the last column, would lose it too)."""
    return frame.withColumn(last, F.regexp_replace(F.col(last), "\\r\\z", ""))


def _multiline(options: dict[str, str]) -> bool:
    return {k.lower(): v for k, v in options.items()}.get("multiline", "false").strip().lower() == "true"


def split_swallowed(frame, schema: T.StructType, options: dict[str, str]):
    """A quote that is never closed makes a multiLine reader run its value on over the next lines, into
    one malformed record. A malformed record spanning lines is therefore parsed again line by line, as
    a reader without multiLine would: the rows after the broken line land as rows of their own (the
    broken line stays malformed, its text kept). One pass: every other row goes through as it was read."""
    text = F.col(CORRUPT)
    spans_lines = F.coalesce(text.rlike("[\\r\\n]"), F.lit(False))
    lines = F.filter(F.split(text, "\\r\\n|\\r|\\n"), lambda line: F.trim(line) != "")
    exploded = frame.select("*", F.explode(F.when(spans_lines, lines).otherwise(F.array(F.lit(None).cast("string"))))
                            .alias("_line"))
    ddl = ", ".join(f"{quoted(name)} STRING" for name in schema.fieldNames())
    line_options = {k: v for k, v in options.items() if k.lower() not in ("multiline", "header")}
    line = F.col("_line")
    parsed = exploded.select("*", F.when(line.isNotNull(), F.from_csv(line, F.lit(ddl), line_options)).alias("_row"))
    return parsed.select(*[F.when(line.isNull(), F.col(c)).otherwise(F.col("_row").getField(c)).alias(c)
                           for c in schema.fieldNames()], "_file_path")


def _as_in_file(schema: T.StructType, widened: dict[str, str], spelled: dict[str, str]) -> T.StructType:
    """The read schema as the file has it: each widened column in its file's type (nanoseconds as a
    long: the session reads them so, spark.sql.legacy.parquet.nanosAsLong in conf/base), each column
    under the key its records use."""
    return T.StructType([T.StructField(spelled.get(f.name, f.name), _file_type(widened.get(f.name)) or f.dataType)
                         for f in schema.fields])


def _with_roots(schema: T.StructType, paths, nested: set[str]) -> tuple[T.StructType, list[str]]:
    """The read schema without the `nested` columns (read from nested JSON values), plus each top-level
    key they are under, as text (Spark gives an object read as a string as its JSON text), and those keys."""
    fields = [f for f in schema.fields if f.name not in nested]
    roots = sorted({root for _, root, _ in paths})
    have = {f.name for f in fields}
    return T.StructType(fields + [T.StructField(r, T.StringType()) for r in roots if r not in have]), roots


def _file_type(found: str | None) -> T.DataType | None:
    """The Spark type a widened column is read in (sniff.parquet_type's name for it)."""
    if found is None:
        return None
    if widen_kind(found) == "decimal":
        precision, scale = found[len("decimal("):-1].split(",")
        return T.DecimalType(int(precision), int(scale))
    return {"int32": T.IntegerType(), "int64": T.LongType(), "float": T.FloatType(), "nanos": T.LongType(),
            "date": T.DateType(), "double": T.DoubleType(), "timestamp": T.TimestampType()}[found]


def widen(frame, schema: T.StructType, widened: dict[str, str]):
    """Each widened column converted to its declared type (sniff.WIDENS)."""
    if not widened:
        return frame
    types = {f.name: f.dataType for f in schema.fields}

    def micros(column: str):      # floor division in longs: a double would round nanoseconds past 2**53
        return F.timestamp_micros(F.expr(f"({quoted(column)} - pmod({quoted(column)}, 1000)) div 1000"))

    return frame.withColumns({c: (micros(c) if found == "nanos" else F.col(c)).cast(types[c]) for c, found in widened.items()})


def read_groups(spark, name: str, source: Source, groups: dict[Layout, list[str]], run_id: str):
    """The accepted files' rows in bronze's shape, CSV columns mapped by header name; None if no file."""
    read_schema = bronze_read_schema(source)
    columns = [f.name for f in read_schema.fields]
    frames = []
    for layout, files in groups.items():
        if not files:
            continue
        spelled = dict(layout.spelled)
        if source.format == "csv":
            schema = T.StructType([T.StructField(c, T.StringType()) for c in layout.columns]
                                  + [T.StructField(CORRUPT, T.StringType())])
        else:
            schema = _as_in_file(read_schema, dict(layout.widened), spelled)
        nested = {c for c, _, _ in layout.paths}
        schema, roots = _with_roots(schema, layout.paths, nested)
        read = [spelled.get(c, c) for c in columns if c not in nested]
        read += [r for r in roots if r not in read]
        frame = _read(spark, source, files, schema, read, layout.multiline)
        frame = frame.withColumnsRenamed({spelling: c for c, spelling in layout.spelled})
        if layout.paths:
            frame = frame.withColumns({c: F.get_json_object(named(root), path) for c, root, path in layout.paths})
            frame = frame.select(*[named(c) for c in columns], "_file_path")
        frames.append(widen(frame, read_schema, dict(layout.widened)))
    if not frames:
        return None
    frame = reduce(lambda a, b: a.unionByName(b), frames)
    return with_ingest_metadata(frame, name, F.col("_file_path"), run_id).drop("_file_path")
