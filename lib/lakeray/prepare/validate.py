"""Row-level cleaning as pure DataFrame transforms.

Each row collects `_violations`: an array of (rule, column, value) for every rule it breaks.
Rules, in the order they are checked:
  malformed_record          the line could not be parsed (value: the raw line)
  repeated_header           a CSV row whose every column holds its own name: the header line again, as files
                            concatenated whole repeat it (value: the row)
  encoding:<col>            the text holds U+FFFD, what a reader puts for a byte not valid in the source's
                            encoding (the ingest screen checks only a file's first 64 KB; value: the text)
  type:<col>                the text does not convert to the declared type (value: the text; empty text
                            and the source's null_values are missing, not a type error; dates and
                            timestamps in options.dateFormat / timestampFormat when set; doubles with
                            the source's decimal_separator). A double is a finite number: infinity, and
                            text beyond the double range (1e400), are type errors in every format; NaN is
                            missing (null), as pandas, Spark ML's Imputer and lakeray's features read it
  missing:<col>             null where the missing-value policy says quarantine
  not_null / range / allowed_values / regex   the spec's expectations (name: rule:column)
Set-level rules (dedupe, unique) come after, in dedupe.py.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeray.ingest.metadata import SNAPSHOT_DELETE
from lakeray.ingest.schema import CORRUPT, SPARK_TYPES, has_header, keeps_raw_text, reader_options
from lakeray.spec.models import Expectation, Source

VIOLATIONS = "_violations"
REPLACEMENT = "\ufffd"      # what Spark's CSV and JSON readers put for each byte not valid in the encoding
RAW = "_raw"
VIOLATION_TYPE = T.StructType([
    T.StructField("rule", T.StringType()), T.StructField("column", T.StringType()), T.StructField("value", T.StringType()),
])


def violation(when: Column, rule: str, column: str | None, value: Column) -> Column:
    return F.when(when, F.struct(F.lit(rule).alias("rule"), F.lit(column).cast("string").alias("column"),
                                 value.cast("string").alias("value")))


def _text(col: str, source: Source) -> Column:
    """A value read as text, trimmed; null where it is empty or one of the source's null_values."""
    trimmed = F.trim(F.col(col))
    missing = trimmed == ""
    if source.null_values:
        missing = missing | trimmed.isin(*source.null_values)
    return F.when(missing, F.lit(None)).otherwise(trimmed)


def datetime_pattern(source: Source, kind: str) -> str | None:
    """A text source's `options.dateFormat` / `options.timestampFormat` (Spark's reader options, keys in
    any case): the datetime pattern its date or timestamp text is parsed with, else Spark's cast."""
    if kind not in ("date", "timestamp"):
        return None
    return reader_options(source).get(f"{kind}format")


def _whole(text: Column, kind: T.DataType, mark: str) -> Column:
    """Integer text, also written with a zero fraction (3.0: pandas writes an integer column holding a
    missing value as floats; 3,0 under a decimal comma). Spark's cast refuses those; 3.5 stays a type error."""
    fraction = "\\." if mark == "." else ","
    zero_fraction = F.when(text.rlike(f"^[+-]?[0-9]+{fraction}0*$"), F.regexp_replace(text, f"{fraction}0*$", ""))
    return F.coalesce(text.try_cast(kind), zero_fraction.try_cast(kind))


def _typed(col: str, kind: str, source: Source) -> Column:
    """A landed column as its declared type (null where the text does not convert; a double's NaN is
    missing, null)."""
    return _missing_nan(_converted(col, kind, source), kind)


def _missing_nan(converted: Column, kind: str) -> Column:
    return F.when(~F.isnan(converted), converted) if kind == "double" else converted


def _type_error(col: str, kind: str, source: Source, converted: Column) -> Column | None:
    """Where the landed value (`converted`: _converted's) is not one of `kind`: text that does not
    convert (text sources), or an infinite double (any format)."""
    bad = converted.isin(float("inf"), float("-inf")) if kind == "double" else None
    if keeps_raw_text(source) and kind != "string":
        unconverted = _text(col, source).isNotNull() & converted.isNull()
        return unconverted if bad is None else unconverted | bad
    return bad


def _converted(col: str, kind: str, source: Source) -> Column:
    if keeps_raw_text(source):
        text = _text(col, source)
        pattern = datetime_pattern(source, kind)
        if kind == "string":
            return text
        if pattern is not None:     # the reader's own option, which a text landing would otherwise ignore
            return F.try_to_date(text, pattern) if kind == "date" else F.try_to_timestamp(text, F.lit(pattern))
        if kind == "double" and source.decimal_separator == ",":    # 3,14; with a "." too: a type error
            text = F.when(~text.contains("."), F.translate(text, ",", "."))
        if kind in ("int", "bigint"):
            return _whole(text, SPARK_TYPES[kind], source.decimal_separator)
        return text.try_cast(SPARK_TYPES[kind])
    value = F.col(col).cast(SPARK_TYPES[kind])
    if kind == "string" and source.null_values:     # a Parquet or JDBC text column: its null texts
        value = F.when(~F.trim(value).isin(*source.null_values), value)
    return value


def repeats_header(source: Source) -> bool:
    """A CSV source with a header line: files concatenated whole (`cat a.csv b.csv`) repeat it as a row."""
    return source.format == "csv" and has_header(source)


def _is_header(source: Source) -> Column:
    """True where every declared column holds its own name (trimmed, in any case): a header line repeated
    inside a file, which the reader takes for a row (for string columns it would pass every check)."""
    return reduce(lambda a, b: a & b, [F.coalesce(F.lower(F.trim(F.col(c))) == c.strip().lower(), F.lit(False))
                                       for c in source.columns])


def coerce_types(df: DataFrame, source: Source) -> DataFrame:
    """Typed columns plus `_raw` (the row as it landed, a struct) and type/malformed violations."""
    raw_cols = [c for c in source.columns] + ([CORRUPT] if CORRUPT in df.columns else [])
    checks = []
    typed = {}
    for col, kind in source.columns.items():
        converted = _converted(col, kind, source)
        value = _missing_nan(converted, kind)
        if keeps_raw_text(source):
            checks.append(violation(F.instr(F.col(col), REPLACEMENT) > 0, f"encoding:{col}", col, F.col(col)))
        bad = _type_error(col, kind, source, converted)
        if bad is not None:
            checks.append(violation(bad, f"type:{col}", col, F.col(col)))
        typed[col] = value
    if repeats_header(source):
        checks.insert(0, violation(_is_header(source), "repeated_header", None,
                                   F.concat_ws(",", *[F.col(c) for c in source.columns])))
    if CORRUPT in df.columns:
        checks.insert(0, violation(F.col(CORRUPT).isNotNull(), "malformed_record", None, F.col(CORRUPT)))
    meta = [c for c in df.columns if c.startswith("_") and c != CORRUPT]
    return df.select(
        *[v.alias(c) for c, v in typed.items()],
        *meta,
        F.struct(*[F.col(c) for c in raw_cols]).alias(RAW),
        F.array(*checks).alias(VIOLATIONS) if checks else F.array().cast(T.ArrayType(VIOLATION_TYPE)).alias(VIOLATIONS),
    )


def _normalized(value: Column, rule) -> Column:
    if rule.case == "lower":
        value = F.lower(value)
    elif rule.case == "upper":
        value = F.upper(value)
    if rule.map:
        folded = {(k.lower() if rule.case == "lower" else k.upper() if rule.case == "upper" else k): v
                  for k, v in rule.map.items()}
        mapping = F.create_map(*[F.lit(x) for kv in folded.items() for x in kv])
        value = F.coalesce(mapping[value], value)
    return value


def normalize_categories(df: DataFrame, source: Source) -> DataFrame:
    """Case folding and spelling maps for the columns the spec lists (after trimming)."""
    out = df
    for col, rule in source.normalize.items():
        out = out.withColumn(col, _normalized(F.col(col), rule))
    return out


def _filled(value: Column, col: str, source: Source) -> Column:
    policy = source.missing.get(col)
    if policy is not None and policy.strategy == "fill":
        return F.coalesce(value, F.lit(policy.value).cast(SPARK_TYPES[source.columns[col]]))
    return value


def key_values(source: Source) -> dict[str, Column]:
    """Each key column of a landed (bronze) row as validate_rows leaves it (typed, normalised,
    filled), computed from that column alone: a filter on keys before the whole row is validated."""
    out = {}
    for key in source.keys:
        value = _typed(key, source.columns[key], source)
        if key in source.normalize:
            value = _normalized(value, source.normalize[key])
        out[key] = _filled(value, key, source)
    return out


def apply_missing_policy(df: DataFrame, source: Source) -> DataFrame:
    out = df
    checks = []
    for col, policy in source.missing.items():
        if policy.strategy == "fill":
            out = out.withColumn(col, _filled(F.col(col), col, source))
        elif policy.strategy == "quarantine":
            checks.append(violation(F.col(col).isNull(), f"missing:{col}", col, F.lit(None)))
    return _add_violations(out, checks)


def expectation_check(exp: Expectation) -> Column | None:
    """The violation for one row-level expectation (unique is set-level: see dedupe.py)."""
    col = F.col(exp.column)
    if exp.rule == "not_null":
        bad = col.isNull()
    elif exp.rule == "range":
        parts = []
        if exp.min is not None:
            parts.append(col < F.lit(exp.min))
        if exp.max is not None:
            parts.append(col > F.lit(exp.max))
        bad = col.isNotNull() & reduce(lambda a, b: a | b, parts)
    elif exp.rule == "allowed_values":
        bad = col.isNotNull() & ~col.isin(exp.values)
    elif exp.rule == "regex":
        bad = col.isNotNull() & ~col.rlike(exp.pattern)
    else:
        return None
    return violation(bad, exp.label, exp.column, col)


def key_expectations(source: Source) -> list[Expectation]:
    declared = {(e.rule, e.column) for e in source.expectations}
    return [Expectation(rule="not_null", column=k) for k in source.keys if ("not_null", k) not in declared]


def check_expectations(df: DataFrame, source: Source) -> DataFrame:
    exps = key_expectations(source) + list(source.expectations)
    return _add_violations(df, [c for c in map(expectation_check, exps) if c is not None])


def _add_violations(df: DataFrame, checks: list[Column]) -> DataFrame:
    if not checks:
        return df
    return df.withColumn(VIOLATIONS, F.concat(F.col(VIOLATIONS), F.array(*checks)))


def is_delete_marker(source: Source) -> Column:
    """True where the row marks its key deleted (sources.<name>.deletes: the soft-delete column, or a
    marker the JDBC snapshot diff landed); never null."""
    if source.deletes is None:
        return F.lit(False)
    markers = []
    if source.deletes.column is not None:
        flag = F.col(source.deletes.column)
        markers.append(F.coalesce(flag, F.lit(False)) if source.columns[source.deletes.column] == "boolean"
                       else flag.isNotNull())
    if source.deletes.snapshot:
        markers.append(F.coalesce(F.col("_file").startswith(SNAPSHOT_DELETE), F.lit(False)))
    return reduce(lambda a, b: a | b, markers)


def _marker_rules(source: Source) -> list[str]:
    """The rules that still apply to a delete marker: those on its key and on the marker column."""
    own = [*source.keys, *([source.deletes.column] if source.deletes.column else [])]
    exps = key_expectations(source) + list(source.expectations)
    return ["malformed_record", *[f"{rule}:{c}" for c in own for rule in ("encoding", "type")],
            *[e.label for e in exps if e.column in own]]


def validate_rows(df: DataFrame, source: Source) -> DataFrame:
    """bronze -> typed, normalised rows with every row-level violation collected (nulls dropped).
    A delete marker is not data: only the rules on its key (and the marker itself) apply to it."""
    out = coerce_types(df, source)
    out = normalize_categories(out, source)
    out = apply_missing_policy(out, source)
    out = check_expectations(out, source)
    present = F.filter(F.col(VIOLATIONS), lambda v: v.isNotNull())
    if source.deletes is not None:
        rules = _marker_rules(source)
        present = F.when(is_delete_marker(source), F.filter(present, lambda v: v["rule"].isin(rules))).otherwise(present)
    return out.withColumn(VIOLATIONS, present)
