"""Each newly landed file is checked before its rows go into bronze; a file that fails is set aside whole.

  CSV       the header line is matched to the declared columns by name (trimmed, case-insensitive,
            a UTF-8 BOM dropped): columns in another order are mapped by name; a missing, unknown,
            empty or duplicated column name rejects the file, naming the columns (unknown and empty
            ones are skipped instead under `extra_columns: ignore`); so does a start
            that is not text in the source's encoding. The start also says whether a quoted value
            holds a line break (then the file is read with multiLine).
  JSON      the file's start must be text in the source's encoding (options.encoding, UTF-8); it says
            whether the file is JSON lines or one document (multiLine), or neither (set aside).
  Parquet   the footer is read (parquet_screen.py): an unreadable footer, or a declared column absent
            from the file's schema, rejects the file; a column in a type sniff.WIDENS lists is read in
            it and converted, a narrowing only when the file's values allow it.
  any       a file Spark then fails to read (truncated gzip, a Parquet column of another type)
            is rejected with Spark's reason, and the batch is read again without it.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
from urllib.parse import unquote

from lakeray.ingest.schema import csv_separator, has_header, reader_options
from lakeray.ingest.sniff import (
    HEADER_BYTES,
    NotInEncoding,
    csv_dialect,
    header_line,
    json_absent,
    json_paths,
    json_spellings,
    json_values,
    leading_zeros,
    missing_markers,
    name_key,
    quoted_line_breaks,
    read_head,
)
from lakeray.spark.session import root_cause
from lakeray.spec.models import Source

log = logging.getLogger(__name__)
HEADER_MISMATCH, SCHEMA_MISMATCH, UNREADABLE = "header_mismatch", "schema_mismatch", "unreadable"


@dataclasses.dataclass(frozen=True)
class Rejection:
    file: str
    reason: str      # header_mismatch | schema_mismatch | unreadable
    detail: str


def match_header(names: list[str], declared: list[str], ignore_unknown: bool = False) -> list[str] | str:
    """The declared column name of each header position, or why the header does not fit (pure).
    `ignore_unknown` (sources.<name>.extra_columns: ignore): a position under no declared name gets a
    placeholder the read drops, instead of rejecting the file."""
    keys = [name_key(n) for n in names]
    by_key = {name_key(c): c for c in declared}
    problems = []
    missing = [c for c in declared if name_key(c) not in keys]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    unknown = [n for n, k in zip(names, keys, strict=True) if k not in by_key]
    if unknown and not ignore_unknown:
        problems.append(f"unknown column(s) {', '.join(repr(n) for n in unknown)}{_unnamed_note(unknown)}")
    duplicated = sorted({n.strip() for n, k in zip(names, keys, strict=True) if keys.count(k) > 1 and k in by_key})
    if duplicated:
        problems.append(f"duplicated column(s) {', '.join(duplicated)}")
    if problems:
        return f"{'; '.join(problems)} (header {names!r}, declared {declared})"
    return [by_key[k] if k in by_key else unread_column(i, declared) for i, k in enumerate(keys)]


def unread_column(position: int, declared: list[str]) -> str:
    """The placeholder of a header position no declared column is read from (dropped after the read)."""
    name = f"_unread_{position}"
    while name in declared:
        name = "_" + name
    return name


def _unnamed_note(unknown: list[str]) -> str:
    if not any(not n.strip() for n in unknown):
        return "; set sources.<name>.extra_columns: ignore to read the declared columns only"
    return ("; an unnamed column is the row index pandas' to_csv and R's write.csv write unless told not to "
            "(index=False, row.names=FALSE), or a trailing delimiter; set sources.<name>.extra_columns: ignore "
            "to read the declared columns only")


def parse_header(line: str, source: Source) -> list[str]:
    sep = csv_separator(source)
    quote = reader_options(source).get("quote", '"') or None
    line = line.lstrip("\ufeff").rstrip("\r\n")
    dialect = csv_dialect(source)
    if dialect is None:
        return [part.strip().strip(quote or "") for part in line.split(sep)]
    try:
        return next(csv.reader([line], **dialect))
    except csv.Error:   # not text (NUL bytes...): compared as is, it will not match
        return line.split(sep)


SEPARATORS = (",", ";", "\t", "|")


def other_separator(line: str, source: Source) -> str | None:
    """The delimiter, other than the source's, on which a header line that did not match splits into
    exactly the declared columns (a `;` export from a European Excel, a tab-separated dump), if one does."""
    current = csv_separator(source)
    for sep in SEPARATORS:
        if sep == current:
            continue
        names = parse_header(line, source.model_copy(update={"options": {**source.options, "sep": sep}}))
        if len(names) > 1 and not isinstance(match_header(names, silo_names(source)), str):
            return sep
    return None


@dataclasses.dataclass(frozen=True)
class Layout:
    columns: tuple[str, ...]    # the declared column at each position of the file
    multiline: bool             # read as records that may span lines (a quoted value holds a line break)
    widened: tuple[tuple[str, str], ...] = ()   # Parquet: (column, its type in the file) read then converted
    spelled: tuple[tuple[str, str], ...] = ()   # JSON, Parquet: (column, its name in the file) read then renamed
    paths: tuple[tuple[str, str, str], ...] = ()  # JSON: (column, top-level key, JSON path in it): a nested value


def screen_csv(spark, path: str, source: Source, name: str = "<name>") -> Layout | Rejection:
    """A file without a header (`options.header: false`) is read in the declared order; its start is
    still checked for the encoding and for quoted line breaks. Missing-value markers in its start that
    the source (`name`) does not declare are said in a warning."""
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
        if head is not None:
            say_head(path, name, source, *head, list(source.columns))
        return Layout(tuple(source.columns), head is not None and quoted_line_breaks(*head, source))
    if line is None:
        return Rejection(path, HEADER_MISMATCH, "the file is empty: no header line")
    first = line.rstrip("\r\n").lstrip("\ufeff")
    if EXCEL_SEP.fullmatch(first):
        return Rejection(path, HEADER_MISMATCH, f"the file starts with {first!r}, the separator line Excel "
                         "writes and reads, which Spark's reader would take for the header: land the file without it")
    names, silo = parse_header(line, source), silo_names(source)
    matched = match_header(names, silo, source.extra_columns == "ignore")
    if isinstance(matched, str):
        sep = other_separator(line, source)
        hint = f"; the header matches when split on {sep!r}: set sources.<name>.options.sep: {sep!r}" if sep else ""
        known = {name_key(n) for n in silo}
        if not sep and "missing column(s)" in matched and "unknown column(s)" in matched and any(
                name_key(n) in known for n in names):     # some columns match: the others may be named otherwise
            hint = ("; a declared column the file names otherwise is read with sources.<name>.rename: "
                    "{'<name in the file>': <declared column>}")
        return Rejection(path, HEADER_MISMATCH, matched + hint)
    declared = {source.in_silo(c): c for c in source.columns}
    matched = [declared.get(m, m) for m in matched]       # the placeholder of an ignored column stays
    say_head(path, name, source, *head, matched)
    return Layout(tuple(matched), quoted_line_breaks(*head, source))


EXCEL_SEP = re.compile(r"sep=.", re.IGNORECASE)


def silo_names(source: Source) -> list[str]:
    """The declared columns as the silo names them (`rename`), in the declared order."""
    return [source.in_silo(c) for c in source.columns]


def say_head(path: str, name: str, source: Source, head: str, truncated: bool, columns: list[str]) -> None:
    """The warnings a CSV file's start gives reason for (`columns`: the declared column at each position)."""
    say_markers(path, name, source, missing_markers(head, truncated, source, columns))
    say_leading_zeros(path, name, source, leading_zeros(head, truncated, source, columns))


def say_leading_zeros(path: str, name: str, source: Source, found: dict[str, tuple[str, int, int]]) -> None:
    """A warning naming the number columns a CSV file's start writes with leading zeros (zip codes,
    account numbers): typed, the zeros are lost, and a key's 007 and 7 become one entity."""
    if not found:
        return
    said = "; ".join(f"{c} ({source.columns[c]}{', a key' if c in source.keys else ''}) {v!r} in {n} of {rows} rows"
                     for c, (v, n, rows) in found.items())
    log.warning("%s: the file's first %d KB hold numbers written with leading zeros: %s. Typed as numbers the "
                "zeros are lost (007 and 7 become one value); if they are codes, declare the column string in "
                "sources.%s.columns", path, HEADER_BYTES // 1024, said, name)


def say_markers(path: str, name: str, source: Source, found: dict[str, tuple[str, int, int]]) -> None:
    """A warning naming the missing-value markers a CSV file's start holds in declared columns: unless
    listed in null_values, a number, date or boolean column's rows are quarantined as type errors and a
    text column keeps the marker as a category."""
    if not found:
        return
    said = "; ".join(f"{c} ({source.columns[c]}) {m!r} in {n} of {rows} rows" for c, (m, n, rows) in found.items())
    log.warning("%s: the file's first %d KB hold missing-value markers: %s. If they mean missing, list them in "
                "sources.%s.null_values (otherwise a number, date or boolean is quarantined as a type error "
                "and a text keeps the marker as a value)", path, HEADER_BYTES // 1024, said, name)


def screen_text(spark, path: str, source: Source) -> Layout | Rejection:
    """A JSON file: its start must be text in the source's encoding. JSON lines (one value per line) are
    read line by line; one JSON document (an array of records, or a single record written over several
    lines) with multiLine. Records written over several lines one after another cannot be read either
    way (line by line every line is malformed; multiLine reads the first record alone): set aside."""
    try:
        head = read_head(spark, path, source)
    except NotInEncoding as exc:
        return Rejection(path, UNREADABLE, str(exc))
    except Exception:   # noqa: BLE001 - not readable at all: Spark's read names it (failed_read)
        head = None
    if head is None:
        return Layout(tuple(source.columns), False)
    text, truncated = head[0].lstrip("\ufeff"), head[1]
    forced = reader_options(source).get("multiline", "").strip().lower()
    parsed, spans = json_values(text)
    values = len(parsed)
    layout = Layout(tuple(source.columns), False, spelled=json_spellings(parsed, source),
                    paths=json_paths(parsed, source))
    absent = json_absent(parsed, source, {c for c, _, _ in layout.paths})
    if absent:      # a writer that leaves out null fields does this too: said, not set aside
        log.warning("%s: no record in the file's first %d KB has a key for %s (declared); unless later records "
                    "do, they land as nulls", path, HEADER_BYTES // 1024, ", ".join(absent))
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
