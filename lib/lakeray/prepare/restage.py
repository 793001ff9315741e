"""Re-staging the keys an incremental run touches (pure transforms; incremental.py runs them).

Two ways, both giving the rows a full recompute would classify the same way:

  from silver  (sources without `unique` rules or `deletes`): a key's winner after the run is the best
               of the row silver holds for it and its new rows, because the dedupe's order is total and
               only valid rows compete; row-level rules judge each row alone, so no older row's verdict
               moves. No bronze row is read. The one thing silver lacks is the landed record that breaks
               a tie on (latest_by, _ingested_at, _file): `ties` finds a new row equal to its key's
               silver row on those, and then the source is re-staged from bronze.
  from bronze  (the others): every bronze row of R is staged again (the dedupe sees the key's whole
               history, including a delete marker that won and left nothing in silver; `unique` counts
               the silver rows outside R, and R takes in the rows whose clash the change can move).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeray.prepare.dedupe import STATUS, classify
from lakeray.prepare.validate import RAW, VIOLATION_TYPE, VIOLATIONS, key_values, validate_rows
from lakeray.spec.models import Source

OLD = "_old"        # true on a row silver held before the run (from-silver re-staging only)


def unique_rules(source: Source) -> list:
    return [e for e in source.expectations if e.rule == "unique"]


def from_silver_ok(source: Source) -> bool:
    """Whether the source can be re-staged from silver (see the module's docstring)."""
    return not unique_rules(source) and source.deletes is None


def keys_present(keys: list[str]):
    return reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in keys])


def touched_keys(name: str, source: Source, new: DataFrame, silver_old: DataFrame, quarantine_old: DataFrame) -> DataFrame:
    """R: the keys to re-stage (typed key columns, distinct). Without `unique` rules, the keys of the
    new rows; with them, also the silver rows sharing a unique value with a new row, and every row a
    unique rule holds in quarantine (its clash may be gone). Silver's own rows of those keys need no
    search for rows sharing their values: a unique rule quarantines every clean row whose value another
    clean row shares, so no two silver rows share one (a value a changed row frees can only release a
    row the rule holds in quarantine, which R takes in whole)."""
    keys = list(source.keys)
    touched = new.where(keys_present(keys)).select(*keys)
    uniques = unique_rules(source)
    if not uniques:
        return touched.distinct()
    labels = [e.label for e in uniques]
    schema = silver_old.select(*keys).schema
    held = (quarantine_old.where((F.col("source") == name) & F.col("rule").isin(labels))
            .select(F.from_json("key", schema).alias("_k")).select("_k.*"))
    parts = [touched, held]
    # `new` is a small local checkpoint with a broadcast hint, which a projection of it keeps: silver is
    # probed in one pass (a union with other values, as before, lost the hint and shuffled silver)
    valid_new = new.where(F.size(VIOLATIONS) == 0)
    for exp in uniques:
        values = valid_new.select(F.col(exp.column).alias("_v")).where(F.col("_v").isNotNull())
        parts.append(silver_old.join(values, silver_old[exp.column] == values["_v"], "left_semi").select(*keys))
    return reduce(DataFrame.unionByName, parts).distinct()


def rows_of_keys(table: DataFrame, keys_r: DataFrame, keys: list[str]) -> DataFrame:
    """The rows of `table` whose keys are in R. Filtered first on the range of R's keys (one small job
    over R): Delta skips every file whose key statistics fall outside it, so keys that are all new
    (events with increasing ids) read no file at all, where the join alone reads the whole table."""
    bounds = keys_r.agg(*[F.min(k) for k in keys], *[F.max(k) for k in keys]).first()
    if bounds[0] is None:
        return table.limit(0)
    lows, highs = bounds[:len(keys)], bounds[len(keys):]
    within = reduce(lambda a, b: a & b, [F.col(k).between(F.lit(lo), F.lit(hi)) for k, lo, hi in zip(keys, lows, highs, strict=True)])
    return table.where(within).join(keys_r, keys, "left_semi")


def bronze_rows(bronze: DataFrame, new: DataFrame, source: Source, keys_r: DataFrame) -> DataFrame:
    """Every bronze row of R, validated, plus the new rows without a key: what `classify` re-stages.
    Bronze is filtered on its keys as validation types them before the rows are validated (the
    rules, regexes and the raw record of every other row would cost most of the pass)."""
    keys = list(source.keys)
    typed = key_values(source)
    r = keys_r.select(*[F.col(k).alias(f"_r_{k}") for k in keys])
    match = reduce(lambda a, b: a & b, [typed[k] == F.col(f"_r_{k}") for k in keys])
    ours = bronze.join(r, match, "left_semi")      # r keeps keys_r's broadcast hint when it has one
    return validate_rows(ours, source).unionByName(new.where(~keys_present(keys)))


def outside_rows(silver_old: DataFrame, keys_r: DataFrame, rows: DataFrame, source: Source) -> DataFrame | None:
    """For `unique`: the silver rows outside R that share a unique value with one of `rows` (the only
    ones whose count can reach a re-staged row; not a count over all of silver). None without the rule."""
    uniques = unique_rules(source)
    if not uniques:
        return None
    outside = silver_old.join(keys_r, list(source.keys), "left_anti")
    parts = [outside.join(rows.select(e.column).where(F.col(e.column).isNotNull()).distinct(), e.column, "left_semi")
             for e in uniques]
    return reduce(DataFrame.unionByName, parts).distinct() if len(parts) > 1 else parts[0]


def _order_columns(source: Source) -> list[str]:
    return [*([source.latest_by] if source.latest_by else []), "_ingested_at", "_file"]


def ties(new: DataFrame, old: DataFrame, source: Source) -> DataFrame:
    """The valid new rows equal to their key's silver row on every order column but the landed
    record's hash (which silver does not keep)."""
    on = [*source.keys, *_order_columns(source)]
    cond = reduce(lambda a, b: a & b, [new[c].eqNullSafe(old[c]) for c in on])
    return new.where(F.size(VIOLATIONS) == 0).join(old, cond, "left_semi")


def from_silver(new: DataFrame, old: DataFrame, source: Source) -> DataFrame:
    """The new rows (validated) and the silver rows of their keys (`old`), classified: the dedupe picks
    each key's winner among them, as among the key's whole history. Rows carry OLD. The caller checks
    `ties` first."""
    # a silver row is a valid row as it was staged; its landed record is not kept (no tie reaches it)
    silver_rows = old.select(*old.columns, F.array().cast(T.ArrayType(VIOLATION_TYPE)).alias(VIOLATIONS),
                      F.lit(None).cast(new.schema[RAW].dataType).alias(RAW), F.lit(True).alias(OLD))
    rows = new.withColumn(OLD, F.lit(False)).unionByName(silver_rows, allowMissingColumns=True)
    return classify(rows, source)


def changed_clean(staged: DataFrame) -> DataFrame:
    """The clean rows that are not silver's own row (the silver MERGE's source)."""
    clean = staged.where(F.col(STATUS) == "clean")
    return clean.where(~F.col(OLD)) if OLD in staged.columns else clean
