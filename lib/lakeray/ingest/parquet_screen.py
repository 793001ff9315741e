"""The screen of a landed Parquet file: its footer (schema, row-group statistics) says whether the
declared columns are there and which come in a type lakeray reads and converts (sniff.WIDENS); a
narrowing that only the values can allow (int64 to int, doubles to whole numbers, timestamps to
dates) is checked first, from the statistics or with one small Spark job on the file, and a file whose
values do not allow it is set aside naming one."""

from __future__ import annotations

from pyspark.sql import functions as F

from lakeray.ingest.schema import quoted
from lakeray.ingest.screen import SCHEMA_MISMATCH, UNREADABLE, Layout, Rejection
from lakeray.ingest.sniff import WIDENS, glob_escaped, name_key, parquet_type, widen_kind
from lakeray.spark.session import root_cause
from lakeray.spec.models import Source


def screen_parquet(spark, path: str, source: Source) -> Layout | Rejection:
    jvm = spark.sparkContext._jvm
    try:
        hpath = jvm.org.apache.hadoop.fs.Path(path)
        infile = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(hpath, spark.sparkContext._jsc.hadoopConfiguration())
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(infile)
        try:
            footer = reader.getFooter()
            fields = footer.getFileMetaData().getSchema().getFields()
            by_name = {fields.get(i).getName(): fields.get(i) for i in range(fields.size())}
        finally:
            reader.close()
    except Exception as exc:
        return Rejection(path, UNREADABLE, f"not a readable Parquet file: {root_cause(exc)}")
    names = list(by_name)
    present = {name_key(n): n for n in names}
    in_file = {c: present.get(name_key(source.in_silo(c))) for c in source.columns}
    missing = [source.in_silo(c) for c, found in in_file.items() if found is None]
    if missing:
        return Rejection(path, SCHEMA_MISMATCH, f"missing column(s) {', '.join(missing)} (the file has {names})")
    widened = tuple((c, found) for c, declared in source.columns.items()
                    if (found := parquet_type(by_name[in_file[c]])) != "other"
                    and (widen_kind(found), declared) in WIDENS)
    for column, found in widened:
        declared = source.columns[column]
        problem, instead = None, None
        if found == "int64" and declared == "int":
            problem, instead = int64_fits(footer, in_file[column]), "bigint"
        elif found == "double":
            problem, instead = whole_numbers(spark, path, in_file[column], declared), "double"
        elif declared == "date":
            problem, instead = whole_days(spark, path, in_file[column], found), "timestamp"
        if problem:
            return Rejection(path, SCHEMA_MISMATCH, f"column {column} is {IN_WORDS.get(found, found)} in the file and declared {declared}: "
                             f"{problem}; declare it {instead}")
    return Layout(tuple(source.columns), False, widened, spelled=tuple((c, in_file[c]) for c in source.rename.values()))


DAY_MICROS = 86_400_000_000
IN_WORDS = {"nanos": "a timestamp in nanoseconds", "timestamp": "a timestamp"}
INT_RANGE = (-(2**31), 2**31 - 1)
RANGES = {"int": INT_RANGE, "bigint": (-(2**63), 2**63 - 1024)}     # the greatest double below 2**63


def _first_value(spark, path: str, name: str, bad) -> list:
    """The first value of column `name` in the file for which `bad(column)` holds ([] when none: one
    small Spark job on the file)."""
    value = F.col(quoted(name))
    return [r["v"] for r in spark.read.parquet(glob_escaped(path)).select(value.alias("v")).where(bad(value)).limit(1).collect()]


def whole_days(spark, path: str, name: str, found: str) -> str | None:
    """None when every value of timestamp column `name` in the file is a midnight (pandas writes a date
    column as timestamps; nanoseconds come as longs, conf/base); else the first that is not."""
    def off_midnight(value):
        if found == "nanos":      # in longs: exact
            return F.pmod(value, F.lit(DAY_MICROS * 1000)) != 0
        return F.pmod(F.unix_micros(value.cast("timestamp")), F.lit(DAY_MICROS)) != 0

    found_value = _first_value(spark, path, name, off_midnight)
    if not found_value:
        return None
    shown = found_value[0] if found != "nanos" else f"{found_value[0]} ns"
    return f"it holds {shown}, not a whole day"


def whole_numbers(spark, path: str, name: str, declared: str) -> str | None:
    """None when every value of double column `name` in the file is a whole number an `int` or `bigint`
    holds (pandas writes an integer column with a missing value as double); else the first that is not."""
    low, high = RANGES[declared]
    found = _first_value(spark, path, name,
                         lambda value: F.isnan(value) | (value % 1 != 0) | (value < low) | (value > high))
    return f"it holds {found[0]!r}, not a whole number within {declared}'s range" if found else None


def int64_fits(footer, name: str) -> str | None:
    """None when the footer's statistics show every value of int64 column `name` fits an int; else why
    not (values beyond it, or a row group without statistics, which cannot show it)."""
    low, high = None, None
    blocks = footer.getBlocks()
    for b in range(blocks.size()):
        chunks = blocks.get(b).getColumns()
        for c in range(chunks.size()):
            chunk = chunks.get(c)
            if chunk.getPath().toDotString() != name:
                continue
            stats = chunk.getStatistics()
            if stats is None or stats.isEmpty():
                return f"row group {b} has no statistics to show its values fit"
            if not stats.hasNonNullValue():
                continue        # nulls only
            low = int(stats.genericGetMin()) if low is None else min(low, int(stats.genericGetMin()))
            high = int(stats.genericGetMax()) if high is None else max(high, int(stats.genericGetMax()))
    if low is not None and (low < INT_RANGE[0] or high > INT_RANGE[1]):
        return f"its values run from {low} to {high}, beyond an int's {INT_RANGE[0]} to {INT_RANGE[1]}"
    return None
