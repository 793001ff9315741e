"""What the start of a landed file says before Spark reads it (pure, but for the read of the start):
its text in the source's encoding, CSV records spanning lines, whether a JSON file is JSON lines or one
document and how its records spell the keys, and the Parquet column types lakeray widens."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import Counter

from lakeray.ingest.schema import FORMAT_DEFAULTS, csv_separator, has_header, reader_options
from lakeray.lakehouse.fs import hadoop_path
from lakeray.spec.models import NULL_LOOKING, NULL_LOOKING_TEXT, Source

HEADER_BYTES = 64 * 1024


def glob_escaped(path: str) -> str:
    """Readers glob their paths: a file named drop[1].csv must not be read as a pattern."""
    for char in "\\[]{}*?":
        path = path.replace(char, "\\" + char)
    return path


def name_key(name: str) -> str:
    return name.strip().casefold()


def _open(spark, path: str):
    """An input stream on `path` (decompressed when its extension names a codec, e.g. .gz)."""
    filesystem, hpath = hadoop_path(path, spark)
    stream = filesystem.open(hpath)
    codec = spark.sparkContext._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()).getCodec(hpath)
    return codec.createInputStream(stream) if codec is not None else stream


class NotInEncoding(ValueError):
    """The start of a text file is not valid in the encoding it is read with."""


BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32", codecs.BOM_UTF16_LE: "UTF-16",
        codecs.BOM_UTF16_BE: "UTF-16"}


def decode_head(head: bytes, truncated: bool, encoding: str) -> str:
    """`head` decoded strictly (a character cut at the end of a truncated head is left out): Spark's
    reader would put U+FFFD in place of every byte not valid in `encoding`, so the values would be
    damaged without a word. Raises NotInEncoding naming the byte, its line and the setting."""
    try:
        return codecs.getincrementaldecoder(encoding)(errors="strict").decode(head, final=not truncated)
    except UnicodeDecodeError as exc:
        bom = next((name for mark, name in BOMS.items() if head.startswith(mark)), None)
        line = head[:exc.start].count(b"\n") + 1
        found = (f"the file starts with a {bom} byte order mark" if bom else
                 f"byte 0x{head[exc.start]:02x} at offset {exc.start} (line {line}) is not valid {encoding}")
        raise NotInEncoding(f"not {encoding} text: {found}; set the source's options.encoding to the file's "
                            f"encoding (e.g. ISO-8859-1, windows-1252{', ' + bom if bom else ''})") from None


def read_head(spark, path: str, source: Source) -> tuple[str, bool] | None:
    """The start of a text file (at most HEADER_BYTES, decoded) and whether the file goes on after it;
    None for an empty file."""
    stream = _open(spark, path)
    try:
        head = bytes(stream.readNBytes(HEADER_BYTES))
    finally:
        stream.close()
    if not head:
        return None
    options = reader_options(source)
    encoding = options.get("encoding", options.get("charset", "utf-8"))
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    truncated = len(head) == HEADER_BYTES
    return decode_head(head, truncated, encoding), truncated


def header_line(head: str, truncated: bool) -> str:
    lines = re.split(r"\r\n|\r|\n", head, maxsplit=1)
    if len(lines) > 1:
        return lines[0]
    if truncated:
        raise ValueError(f"no line break in the first {HEADER_BYTES} bytes: not a CSV text file")
    return head


def csv_dialect(source: Source) -> dict | None:
    """Python csv's reading of the options Spark reads the source's CSV with (None: options it cannot
    mirror)."""
    opts = {k.lower(): v for k, v in {**FORMAT_DEFAULTS["csv"], **source.options}.items()}
    sep = csv_separator(source)
    quote = opts.get("quote", '"') or None
    escape = opts["escape"][:1] or None
    if len(sep) != 1 or (quote is not None and len(quote) != 1):
        return None
    return {"delimiter": sep, "quotechar": quote, "escapechar": None if escape == quote else escape}


def head_records(head: str, truncated: bool, dialect: dict) -> list[list[str]]:
    """The CSV records of a file's start, as Python's csv reads them with `dialect`; none where it cannot
    (NUL bytes, a quote left open at the cut...). The record `head` may cut short is left out."""
    try:
        records = list(csv.reader(io.StringIO(head.lstrip("\ufeff"), newline=""), **dialect))
    except csv.Error:
        return []
    return records[:-1] if truncated else records


def quoted_line_breaks(head: str, truncated: bool, source: Source) -> bool:
    """Whether a quoted value in `head` holds a line break (RFC 4180 allows it; a reader going line by
    line splits such a record into malformed pieces) and every record in it has the header's number of
    fields (a quote never closed makes one value run on over the next lines, which a reader going line
    by line confines to one line). The record `head` may cut short is not looked at."""
    dialect = csv_dialect(source)
    if dialect is None or dialect["quotechar"] is None or dialect["quotechar"] not in head:
        return False
    records = [r for r in head_records(head, truncated, dialect) if r]         # blank lines out
    if not records or any(len(r) != len(records[0]) for r in records):
        return False
    return any("\n" in value or "\r" in value for record in records for value in record)


def _data_rows(head: str, truncated: bool, source: Source) -> list[list[str]]:
    """The non-blank records of a CSV file's start, its header left out."""
    dialect = csv_dialect(source)
    if dialect is None:
        return []
    return [r for r in head_records(head, truncated, dialect)[1 if has_header(source) else 0:] if r]


_LEADING_ZERO = re.compile(r"[+-]?0[0-9]+([.,][0-9]*)?")


def leading_zeros(head: str, truncated: bool, source: Source, columns: list[str]) -> dict[str, tuple[str, int, int]]:
    """The number columns (int, bigint, double) whose values in `head` are written with leading zeros
    (a zip code 02134, an account 007): typed, the zeros are lost, and 007 and 7 become one value.
    Per column: its first such value, the rows holding one and the rows looked at."""
    rows = _data_rows(head, truncated, source)
    found = {}
    for i, column in enumerate(columns):
        if source.columns.get(column) not in ("int", "bigint", "double"):
            continue
        zeros = [v for v in (r[i].strip() for r in rows if i < len(r)) if _LEADING_ZERO.fullmatch(v)]
        if zeros:
            found[column] = (zeros[0], len(zeros), len(rows))
    return found


def missing_markers(head: str, truncated: bool, source: Source, columns: list[str]) -> dict[str, tuple[str, int, int]]:
    """The declared columns (`columns`: the declared name at each position of the file) whose values in
    `head` hold a missing-value marker the source does not list in `null_values`: per column, its most
    frequent marker, the rows holding it and the rows looked at. A text column counts the unambiguous
    markers only (NA, NULL, #N/A...; not "None" or "-", which may be categories)."""
    rows = _data_rows(head, truncated, source)
    listed = {v.strip() for v in source.null_values}
    found = {}
    for i, column in enumerate(columns):
        kind = source.columns.get(column)
        if kind is None:
            continue
        markers = NULL_LOOKING_TEXT if kind == "string" else NULL_LOOKING
        if kind == "double":
            markers = markers - {"nan"}        # a double's NaN is read as missing already
        counts = Counter(v for v in (r[i].strip() for r in rows if i < len(r)) if v.lower() in markers and v not in listed)
        if counts:
            marker, n = counts.most_common(1)[0]
            found[column] = (marker, n, len(rows))
    return found


def json_values(text: str) -> tuple[list, bool]:
    """The JSON values that follow one another from the start of `text` (until one does not parse) and
    whether the first one spans lines."""
    decoder, at, values, spans = json.JSONDecoder(), 0, [], False
    while True:
        at = len(text) - len(text[at:].lstrip())
        if at >= len(text):
            return values, spans
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return values, spans
        spans = spans or (not values and ("\n" in text[at:end] or "\r" in text[at:end]))
        values.append(value)
        at = end


def _records(values: list) -> list[dict]:
    """The records among parsed JSON values (an array's items, or the values themselves)."""
    return [r for v in values for r in (v if isinstance(v, list) else [v]) if isinstance(r, dict)]


def json_absent(values: list, source: Source, nested: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The declared columns no record among `values` has a key for, in any spelling (empty when there is
    no record to tell), but the `nested` ones read from a path into nested objects (json_paths)."""
    keys = {name_key(k) for r in _records(values) for k in r}
    return [source.in_silo(c) for c in source.columns
            if name_key(source.in_silo(c)) not in keys and c not in nested] if keys else []


def json_paths(values: list, source: Source) -> tuple[tuple[str, str, str], ...]:
    """(declared column, the top-level key, a JSON path under it) for each column whose silo name
    (`rename`) is a dotted path into nested objects ("address.city"): no record among `values` has the
    dotted name as a key, and some record holds an object under its first part."""
    records = _records(values)
    keys = {name_key(k) for r in records for k in r}
    roots: dict[str, str] = {}
    for r in records:
        for k, v in r.items():
            if isinstance(v, dict):
                roots.setdefault(name_key(k), k)
    out = []
    for column in source.columns:
        silo = source.in_silo(column)
        first, _, rest = silo.partition(".")
        if silo != column and rest and name_key(silo) not in keys and name_key(first) in roots:
            out.append((column, roots[name_key(first)], "$." + rest))
    return tuple(out)


def json_spellings(values: list, source: Source) -> tuple[tuple[str, str], ...]:
    """(declared column, the key the records use for it) where the records spell it otherwise (case,
    surrounding spaces: matched as CSV headers are); Spark's JSON reader matches keys exactly."""
    keys = {k for r in _records(values) for k in r}
    by_key: dict[str, str] = {}
    for k in sorted(keys):
        by_key.setdefault(name_key(k), k)
    return tuple((c, by_key[name_key(source.in_silo(c))]) for c in source.columns
                 if c not in keys and name_key(source.in_silo(c)) in by_key)


# a Parquet column of another type that lakeray reads and converts to the declared one without loss
# of meaning (Spark's reader refuses these): pandas writes int64 for whole numbers and timestamps in
# nanoseconds (which Spark keeps to the microsecond: the nanoseconds are dropped); pyarrow writes
# Python Decimals and database numerics as decimals, and dates as dates; an int64 column declared
# `int` is read only when the footer's statistics show every value fits (parquet_screen.int64_fits); pandas
# writes an integer column with a missing value as double, read as an `int` or `bigint` only when every
# value in the file is a whole number in range (parquet_screen.whole_numbers: one small Spark job per file)
# pandas has no date type: a date column is a timestamp at midnight, read as a `date` only when every
# value in the file is a whole day (parquet_screen.whole_days, a job likewise)
WIDENS = {("int32", "bigint"), ("int32", "double"), ("int64", "double"), ("float", "double"), ("nanos", "timestamp"),
          ("decimal", "double"), ("date", "timestamp"), ("int64", "int"), ("double", "int"), ("double", "bigint"),
          ("nanos", "date"), ("timestamp", "date")}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)")


def parquet_type(field) -> str:
    """A Parquet footer field as the names in WIDENS (`other` for the rest); a decimal as
    `decimal(<precision>,<scale>)`, which widen_kind reduces to `decimal`."""
    if not field.isPrimitive():
        return "other"
    physical = str(field.asPrimitiveType().getPrimitiveTypeName())
    annotation = field.getLogicalTypeAnnotation()
    text = str(annotation) if annotation is not None else ""
    if physical == "INT64" and text.startswith("TIMESTAMP(NANOS"):
        return "nanos"
    if physical == "INT32" and text == "DATE":
        return "date"
    if physical == "INT64" and text.startswith(("TIMESTAMP(MILLIS", "TIMESTAMP(MICROS")):
        return "timestamp"
    decimal = _DECIMAL.match(text)
    if decimal:
        return f"decimal({decimal.group(1)},{decimal.group(2)})"
    if annotation is not None and not (text.startswith("INTEGER(") and text.endswith(",true)")):
        return "other"          # unsigned integers, times, intervals...: Spark's own reading
    return {"INT32": "int32", "INT64": "int64", "FLOAT": "float", "DOUBLE": "double"}.get(physical, "other")


def widen_kind(found: str) -> str:
    """The WIDENS name of a parquet_type (a decimal without its precision and scale)."""
    return found.split("(", 1)[0]
