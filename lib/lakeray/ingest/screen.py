"""Each newly landed file is checked before its rows go into bronze; a file that fails is set aside whole.

  CSV       the header line is matched to the declared columns by name (trimmed, case-insensitive,
            a UTF-8 BOM dropped): columns in another order are mapped by name; a missing, unknown,
            empty or duplicated column name rejects the file, naming the columns; so does a start
            that is not text in the source's encoding. The start also says whether a quoted value
            holds a line break (then the file is read with multiLine).
  JSON      the file's start must be text in the source's encoding (options.encoding, UTF-8); it says
            whether the file is JSON lines or one document (multiLine), or neither (set aside).
  Parquet   the footer is read: an unreadable footer, or a declared column absent from the file's
            schema, rejects the file; a column in a type WIDENS lists is read in it and converted.
  any       a file Spark then fails to read (truncated gzip, a Parquet column of another type)
            is rejected with Spark's reason, and the batch is read again without it.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
import re
from urllib.parse import unquote

from lakeray.lakehouse.fs import hadoop_path
from lakeray.spark.session import root_cause
from lakeray.spec.models import Source

HEADER_BYTES = 64 * 1024
HEADER_MISMATCH, SCHEMA_MISMATCH, UNREADABLE = "header_mismatch", "schema_mismatch", "unreadable"


@dataclasses.dataclass(frozen=True)
class Rejection:
    file: str
    reason: str      # header_mismatch | schema_mismatch | unreadable
    detail: str


def _options(source: Source) -> dict[str, str]:
    """The spec's reader options with lower-case keys (Spark treats them case-insensitively)."""
    return {k.lower(): v for k, v in source.options.items()}


def has_header(source: Source) -> bool:
    return _options(source).get("header", "true").strip().lower() == "true"


def _key(name: str) -> str:
    return name.strip().casefold()


def match_header(names: list[str], declared: list[str]) -> list[str] | str:
    """The declared column name of each header position, or why the header does not fit (pure)."""
    keys = [_key(n) for n in names]
    by_key = {_key(c): c for c in declared}
    problems = []
    missing = [c for c in declared if _key(c) not in keys]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    unknown = [n for n, k in zip(names, keys, strict=True) if k not in by_key]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(n) for n in unknown)}")
    duplicated = sorted({n.strip() for n, k in zip(names, keys, strict=True) if keys.count(k) > 1 and k in by_key})
    if duplicated:
        problems.append(f"duplicated column(s) {', '.join(duplicated)}")
    if problems:
        return f"{'; '.join(problems)} (header {names!r}, declared {declared})"
    return [by_key[k] for k in keys]


def parse_header(line: str, source: Source) -> list[str]:
    opts = _options(source)
    sep = opts.get("sep", opts.get("delimiter", ","))
    quote = opts.get("quote", '"') or None
    line = line.lstrip("\ufeff").rstrip("\r\n")
    dialect = _dialect(source)
    if dialect is None:
        return [part.strip().strip(quote or "") for part in line.split(sep)]
    try:
        return next(csv.reader([line], **dialect))
    except csv.Error:   # not text (NUL bytes...): compared as is, it will not match
        return line.split(sep)


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
    encoding = _options(source).get("encoding", _options(source).get("charset", "utf-8"))
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


def _dialect(source: Source) -> dict | None:
    """Python csv's reading of the source's options (None: options it cannot mirror)."""
    opts = _options(source)
    sep = opts.get("sep", opts.get("delimiter", ","))
    quote = opts.get("quote", '"') or None
    escape = opts.get("escape", '"')[:1] or None      # the reader's default (ingest/files.py): RFC 4180's `""`
    if len(sep) != 1 or (quote is not None and len(quote) != 1):
        return None
    return {"delimiter": sep, "quotechar": quote, "escapechar": None if escape == quote else escape}


def quoted_line_breaks(head: str, truncated: bool, source: Source) -> bool:
    """Whether a quoted value in `head` holds a line break (RFC 4180 allows it; a reader going line by
    line splits such a record into malformed pieces) and every record in it has the header's number of
    fields (a quote never closed makes one value run on over the next lines, which a reader going line
    by line confines to one line). The record `head` may cut short is not looked at."""
    dialect = _dialect(source)
    if dialect is None or dialect["quotechar"] is None or dialect["quotechar"] not in head:
        return False
    records = []
    try:
        records = list(csv.reader(io.StringIO(head, newline=""), **dialect))
    except csv.Error:           # NUL bytes, a quote left open at the cut...: what parsed before it counts
        pass
    if truncated:
        records = records[:-1]
    records = [r for r in records if r]         # blank lines
    if not records or any(len(r) != len(records[0]) for r in records):
        return False
    return any("\n" in value or "\r" in value for record in records for value in record)


@dataclasses.dataclass(frozen=True)
class Layout:
    columns: tuple[str, ...]    # the declared column at each position of the file
    multiline: bool             # read as records that may span lines (a quoted value holds a line break)
    widened: tuple[tuple[str, str], ...] = ()   # Parquet: (column, its type in the file) read then converted
    spelled: tuple[tuple[str, str], ...] = ()   # JSON: (column, the key its records use) read then renamed


def screen_csv(spark, path: str, source: Source) -> Layout | Rejection:
    """A file without a header (`options.header: false`) is read in the declared order; its start is
    still checked for the encoding and for quoted line breaks."""
    header = has_header(source)
    try:
        head = read_head(spark, path, source)
        line = header_line(*head) if head is not None and header else None
    except NotInEncoding as exc:
        return Rejection(path, UNREADABLE, str(exc))
    except Exception as exc:   # py4j: an unreadable or not-really-compressed file
        if not header:         # Spark's read names it (failed_read)
            return Layout(tuple(source.columns), False)
        return Rejection(path, UNREADABLE, f"cannot read the header line: {root_cause(exc)}")
    if not header:
        return Layout(tuple(source.columns), head is not None and quoted_line_breaks(*head, source))
    if line is None:
        return Rejection(path, HEADER_MISMATCH, "the file is empty: no header line")
    matched = match_header(parse_header(line, source), list(source.columns))
    if isinstance(matched, str):
        return Rejection(path, HEADER_MISMATCH, matched)
    return Layout(tuple(matched), quoted_line_breaks(*head, source))


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


def json_spellings(values: list, source: Source) -> tuple[tuple[str, str], ...]:
    """(declared column, the key the records use for it) where the records spell it otherwise (case,
    surrounding spaces: matched as CSV headers are); Spark's JSON reader matches keys exactly."""
    records = [r for v in values for r in (v if isinstance(v, list) else [v]) if isinstance(r, dict)]
    keys = {k for r in records for k in r}
    by_key: dict[str, str] = {}
    for k in sorted(keys):
        by_key.setdefault(_key(k), k)
    return tuple((c, by_key[_key(c)]) for c in source.columns if c not in keys and _key(c) in by_key)


def screen_text(spark, path: str, source: Source) -> Layout | Rejection:
    """A JSON file: its start must be text in the source's encoding. JSON lines (one value per line) are
    read line by line; one JSON document (an array of records, or a single record written over several
    lines) with multiLine. Records written over several lines one after another cannot be read either
    way (line by line every line is malformed; multiLine reads the first record alone): set aside."""
    layout = Layout(tuple(source.columns), False)
    try:
        head = read_head(spark, path, source)
    except NotInEncoding as exc:
        return Rejection(path, UNREADABLE, str(exc))
    except Exception:   # noqa: BLE001 - not readable at all: Spark's read names it (failed_read)
        return layout
    if head is None:
        return layout
    text, truncated = head[0].lstrip("\ufeff"), head[1]
    forced = _options(source).get("multiline", "").strip().lower()
    parsed, spans = json_values(text)
    values = len(parsed)
    layout = Layout(layout.columns, False, spelled=json_spellings(parsed, source))
    if forced == "true" and values > 1:
        return Rejection(path, UNREADABLE, f"{values} JSON values one after another in the file's start, read with "
                         "options.multiLine: true, which reads only the first: drop the option (JSON lines) or "
                         "land one JSON array")
    if forced:
        return layout
    if text.lstrip().startswith("[") or (spans and not truncated and values == 1):
        return dataclasses.replace(layout, multiline=True)     # an array, or one record over several lines
    if spans and values > 1:
        return Rejection(path, UNREADABLE, "JSON records written over several lines, one after another: land them as "
                         "JSON lines (one record per line) or as one JSON array")
    return layout


# a Parquet column of another type that lakeray reads and converts to the declared one without loss
# of meaning (Spark's reader refuses these): pandas writes int64 for whole numbers and timestamps in
# nanoseconds (which Spark keeps to the microsecond: the nanoseconds are dropped)
WIDENS = {("int32", "bigint"), ("int32", "double"), ("int64", "double"), ("float", "double"), ("nanos", "timestamp")}


def parquet_type(field) -> str:
    """A Parquet footer field as the names in WIDENS (`other` for the rest)."""
    if not field.isPrimitive():
        return "other"
    physical = str(field.asPrimitiveType().getPrimitiveTypeName())
    annotation = field.getLogicalTypeAnnotation()
    text = str(annotation) if annotation is not None else ""
    if physical == "INT64" and text.startswith("TIMESTAMP(NANOS"):
        return "nanos"
    if annotation is not None and not (text.startswith("INTEGER(") and text.endswith(",true)")):
        return "other"          # unsigned integers, decimals, dates...: Spark's own reading
    return {"INT32": "int32", "INT64": "int64", "FLOAT": "float"}.get(physical, "other")


def screen_parquet(spark, path: str, source: Source) -> Layout | Rejection:
    jvm = spark.sparkContext._jvm
    try:
        hpath = jvm.org.apache.hadoop.fs.Path(path)
        infile = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(hpath, spark.sparkContext._jsc.hadoopConfiguration())
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(infile)
        try:
            fields = reader.getFooter().getFileMetaData().getSchema().getFields()
            by_name = {fields.get(i).getName(): fields.get(i) for i in range(fields.size())}
        finally:
            reader.close()
    except Exception as exc:
        return Rejection(path, UNREADABLE, f"not a readable Parquet file: {root_cause(exc)}")
    names = list(by_name)
    present = {_key(n): n for n in names}
    missing = [c for c in source.columns if _key(c) not in present]
    if missing:
        return Rejection(path, SCHEMA_MISMATCH, f"missing column(s) {', '.join(missing)} (the file has {names})")
    widened = tuple((c, found) for c, declared in source.columns.items()
                    if (found := parquet_type(by_name[present[_key(c)]])) != "other" and (found, declared) in WIDENS)
    return Layout(tuple(source.columns), False, widened)


def same_file(a: str, b: str) -> bool:
    """Spark names a file file:/x, file:///x or URL-encoded (e%5B1%5D.csv); compare what they point at."""
    def norm(p: str) -> str:
        return re.sub(r"^file:/+", "file:/", unquote(p))
    return norm(a) == norm(b)


def failed_read(exc: BaseException, candidates: list[str]) -> Rejection | None:
    """The file (one of `candidates`) a failed Spark read names, with Spark's reason; None if none."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    found = None
    while java is not None and found is None:
        try:
            condition = java.getCondition()
        except Exception:
            condition = None
        if condition and str(condition).startswith("FAILED_READ_FILE"):
            found = (str(condition), str(dict(java.getMessageParameters()).get("path", "")),
                     str(java.getMessage() or "").split(". ", 1)[-1].split("SQLSTATE")[0].strip())
        java = java.getCause()
    if found is None:
        match = re.search(r"\[(FAILED_READ_FILE[A-Z_.]*)\] Encountered error while reading file (\S+?)\.(\s|$)", str(exc))
        found = (match.group(1), match.group(2), "") if match else None
    if found is None:
        return None
    condition, named, message = found
    file = next((c for c in candidates if same_file(c, named)), None)
    if file is None:
        return None
    reason = SCHEMA_MISMATCH if "DATA_TYPE_MISMATCH" in condition or "SCHEMA_MISMATCH" in condition else UNREADABLE
    cause = root_cause(exc)
    detail = f"Spark cannot read it ({condition}): " + "; ".join(dict.fromkeys(m for m in (message, cause) if m))
    return Rejection(file, reason, detail[:2000])
