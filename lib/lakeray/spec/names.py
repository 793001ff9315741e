"""Names and relative paths from a spec that become folders or table columns: they must stay where
they belong.

A source name becomes a folder under the lakehouse and the checkpoints (bronze/<source>,
silver/<source>, ingest/<source>); a source's `path` is a folder under the pipeline's landing
area. Neither may climb out of its root (`../../etc`), be absolute or be a URI. A declared column
becomes a Delta column and a Spark column reference.
"""

from __future__ import annotations

import re

SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def name_problem(name: str, what: str = "source name") -> str | None:
    """Why `name` cannot name a folder, or None."""
    if isinstance(name, str) and SAFE_NAME.match(name):
        return None
    return (f"{what} {name!r} is not allowed: use lowercase letters, digits and '_', starting with a letter "
            f"(pattern {SAFE_NAME.pattern}); it becomes a folder and table name")


def relative_path_problem(path: str) -> str | None:
    """Why `path` is not a plain folder below the landing area, or None."""
    if not isinstance(path, str) or not path.strip():
        return "must name a folder under the pipeline's landing area, e.g. 'crm'"
    hint = ("must be a folder relative to the pipeline's landing area (<landing>/<pipeline>/): "
            "'/'-separated parts of letters, digits, '_', '-', '.', '=', none of them '.' or '..'")
    if path.startswith("/") or "\\" in path or URI.match(path) or path.startswith("~"):
        return f"{path!r} {hint}"
    bad = [part for part in path.rstrip("/").split("/") if not SAFE_SEGMENT.match(part)]
    if bad:
        return f"{path!r} {hint} (not allowed: {', '.join(repr(b) for b in dict.fromkeys(bad))})"
    return None


DELTA_FORBIDS = " ,;{}()\n\t="


def column_names_problem(columns) -> str | None:
    """Why some of `columns` cannot be declared column names, or None: Delta refuses ' ,;{}()\\n\\t=' in
    a column name (without column mapping), and Spark reads '.' as a struct field and '`' as quoting.
    One message for all of them, with the names to declare instead and the `rename` to add."""
    held, safe = [], {}
    for column in columns:
        bad = sorted({c for c in column if c in DELTA_FORBIDS + ".`"})
        if bad or not column.strip():
            name = re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_") or "column"
            safe[column] = name if name[0].isalpha() else f"c_{name}"
            held.append(f"{column!r} holds {', '.join(repr(c) for c in bad) if bad else 'only spaces'}")
    if not safe:
        return None
    return (f"column {'; '.join(held)} (Delta refuses ' ,;{{}}()=', tabs and line breaks in a column name; Spark "
            f"reads '.' and '`' as a path): declare {', '.join(safe.values())} instead and map the silo's "
            f"names: rename: {{{', '.join(f'{k!r}: {v}' for k, v in safe.items())}}}")
