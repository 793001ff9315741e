"""Each newly landed file is checked before its rows go into bronze; a file that fails is set aside whole.

  CSV       the header line is matched to the declared columns by name (trimmed, case-insensitive,
            a UTF-8 BOM dropped): columns in another order are mapped by name; a missing, unknown,
            empty or duplicated column name rejects the file, naming the columns.
  Parquet   the footer is read: an unreadable footer, or a declared column absent from the file's
            schema, rejects the file.
  any       a file Spark then fails to read (truncated gzip, a Parquet column of another type)
            is rejected with Spark's reason, and the batch is read again without it.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
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
    if len(sep) != 1 or (quote is not None and len(quote) != 1):
        return [part.strip().strip(quote or "") for part in line.split(sep)]
    try:
        return next(csv.reader([line], delimiter=sep, quotechar=quote, escapechar=opts.get("escape", "\\")[:1] or None))
    except csv.Error:   # not text (NUL bytes...): compared as is, it will not match
        return line.split(sep)


def _open(spark, path: str):
    """An input stream on `path` (decompressed when its extension names a codec, e.g. .gz)."""
    filesystem, hpath = hadoop_path(path, spark)
    stream = filesystem.open(hpath)
    codec = spark.sparkContext._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()).getCodec(hpath)
    return codec.createInputStream(stream) if codec is not None else stream


def read_header_line(spark, path: str, source: Source) -> str | None:
    """The first line of a text file (at most HEADER_BYTES), None for an empty file."""
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
    text = head.decode(encoding, errors="replace")
    lines = re.split(r"\r\n|\r|\n", text, maxsplit=1)
    if len(lines) > 1:
        return lines[0]
    if len(head) == HEADER_BYTES:
        raise ValueError(f"no line break in the first {HEADER_BYTES} bytes: not a CSV text file")
    return text


def screen_csv(spark, path: str, source: Source) -> list[str] | Rejection:
    try:
        line = read_header_line(spark, path, source)
    except Exception as exc:   # py4j: an unreadable or not-really-compressed file
        return Rejection(path, UNREADABLE, f"cannot read the header line: {root_cause(exc)}")
    if line is None:
        return Rejection(path, HEADER_MISMATCH, "the file is empty: no header line")
    matched = match_header(parse_header(line, source), list(source.columns))
    return Rejection(path, HEADER_MISMATCH, matched) if isinstance(matched, str) else matched


def screen_parquet(spark, path: str, source: Source) -> Rejection | None:
    jvm = spark.sparkContext._jvm
    try:
        hpath = jvm.org.apache.hadoop.fs.Path(path)
        infile = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(hpath, spark.sparkContext._jsc.hadoopConfiguration())
        reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(infile)
        try:
            fields = reader.getFooter().getFileMetaData().getSchema().getFields()
            names = [fields.get(i).getName() for i in range(fields.size())]
        finally:
            reader.close()
    except Exception as exc:
        return Rejection(path, UNREADABLE, f"not a readable Parquet file: {root_cause(exc)}")
    present = {_key(n) for n in names}
    missing = [c for c in source.columns if _key(c) not in present]
    if missing:
        return Rejection(path, SCHEMA_MISMATCH, f"missing column(s) {', '.join(missing)} (the file has {names})")
    return None


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
