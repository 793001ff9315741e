"""The steps both prepare paths share (the full recompute in run.py, the incremental one in
incremental.py): staging a source, the accounting, the gold staging and the checks before a write."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from lakeray.config import Settings
from lakeray.errors import DataQualityError
from lakeray.lakehouse import Lakehouse, TableVersion, table_bytes
from lakeray.prepare.dataset import matched_column, output_columns
from lakeray.prepare.dedupe import STATUS, classify
from lakeray.prepare.quarantine import quarantine_rows
from lakeray.prepare.split import (
    assign_split,
    column_type,
    hash_column_problems,
    size_problems,
    unlearnable_classes,
    unlisted_problem,
    unlisted_rows,
)
from lakeray.prepare.validate import RAW, VIOLATIONS, validate_rows, violation
from lakeray.spec.models import PipelineSpec, Source

log = logging.getLogger(__name__)
GOLD = "dataset"
STATUSES = ("clean", "quarantined", "duplicate", "deleted")
DEFAULT_MIN_SPLIT_ROWS = 20      # conf prepare.min_split_rows


@dataclasses.dataclass
class Accounting:
    table: str
    rows_in: int
    clean: int
    quarantined: int
    duplicates: int
    quarantine_by_rule: dict
    deleted: int = 0            # keys whose latest version is a delete marker (sources.<name>.deletes)
    # an incremental run re-stages whole keys; the rows new in the run are what its quarantine limit judges
    new_rows: int | None = None
    new_quarantined: int = 0
    new_by_rule: dict = dataclasses.field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.rows_in == self.clean + self.quarantined + self.duplicates + self.deleted

    @property
    def quarantine_rate(self) -> float:
        if self.new_rows is not None:
            return self.new_quarantined / self.new_rows if self.new_rows else 0.0
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def line(self) -> str:
        deleted = f" + deleted {self.deleted}" if self.deleted else ""
        return (f"{self.table}: in {self.rows_in} = clean {self.clean} + quarantined {self.quarantined} "
                f"+ duplicates {self.duplicates}{deleted} [{'reconciled' if self.reconciled else 'MISMATCH'}]")


def stage_source(bronze: DataFrame, source: Source) -> DataFrame:
    """bronze -> every row tagged clean | quarantined | duplicate (pure)."""
    return classify(validate_rows(bronze, source), source)


def keeps_every_row(source: Source) -> bool:
    """A `unique` rule is judged among the rows that survive the dedupe, so such a source's staged
    rows are cached whole; for any other source validation alone decides what is quarantined."""
    return any(e.rule == "unique" for e in source.expectations)


def rejected_by_validation(bronze: DataFrame, source: Source) -> DataFrame:
    """The rows stage_source tags `quarantined` for a source without a set-level rule: those that
    break a row-level rule (only valid rows compete in the dedupe), as stage_source leaves them."""
    return validate_rows(bronze, source).where(F.size(VIOLATIONS) > 0).withColumn(STATUS, F.lit("quarantined"))


def account_rejected(table: str, rows_in: int, rejected: DataFrame) -> Accounting:
    """What the quarantine limit needs before anything is written, from the rejected rows alone (one
    small job); the clean, duplicate and deleted counts come from the silver write (observe_statuses)."""
    acct, _ = account(table, None, rejected)        # every row quarantined: it reconciles on its own
    return dataclasses.replace(acct, rows_in=rows_in)


def observe_statuses(staged: DataFrame, table: str) -> tuple[DataFrame, Observation]:
    """The staged rows, counted per status by the job that consumes them (no pass of its own)."""
    observation = Observation(f"prepare {table}")
    return staged.observe(observation, *[F.count_if(F.col(STATUS) == s).alias(s) for s in STATUSES]), observation


def complete_accounting(acct: Accounting, counts: dict) -> Accounting:
    """account_rejected's numbers completed with the statuses a silver write saw; the quarantined rows
    it saw must be those counted before the write."""
    if counts["quarantined"] != acct.quarantined:
        raise RuntimeError(f"accounting does not reconcile for {acct.table}: {acct.quarantined} rows rejected "
                           f"before the silver write, {counts['quarantined']} seen by it")
    acct.clean, acct.duplicates, acct.deleted = counts["clean"], counts["duplicate"], counts["deleted"]
    if not acct.reconciled:
        raise RuntimeError(f"accounting does not reconcile for {acct.table}: {acct.line()}")
    return acct


def account(table: str, rows_in: int | None, staged: DataFrame, by: Column | None = None,
            new: Column | None = None) -> tuple[Accounting, dict]:
    """Rows per status and first rule (one Spark job); with `by`, also the clean rows per value of `by`.
    rows_in None: the staged rows are the input (staging tags rows, it never drops one). `new`: true
    for the rows that arrived in this run (an incremental run), counted apart for the limit."""
    rule = F.when(F.col(STATUS) == "quarantined", F.col(VIOLATIONS)[0]["rule"])
    extra = F.when(F.col(STATUS) == "clean", by) if by is not None else F.lit(None)
    fresh = F.coalesce(new, F.lit(False)) if new is not None else F.lit(False)
    counts = (staged.groupBy(F.col(STATUS).alias("status"), rule.alias("rule"), extra.alias("by"), fresh.alias("new"))
              .agg(F.count(F.lit(1)).alias("n")).collect())
    by_status: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    by_value: dict = {}
    new_rows, new_by_rule = 0, {}
    for r in counts:
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        if r["rule"] is not None:
            by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + r["n"]
        if r["status"] == "clean":
            by_value[r["by"]] = by_value.get(r["by"], 0) + r["n"]
        if r["new"]:
            new_rows += r["n"]
            if r["rule"] is not None:
                new_by_rule[r["rule"]] = new_by_rule.get(r["rule"], 0) + r["n"]
    if rows_in is None:
        rows_in = sum(by_status.values())
    acct = Accounting(table, rows_in, by_status.get("clean", 0), by_status.get("quarantined", 0),
                      by_status.get("duplicate", 0), by_rule, by_status.get("deleted", 0))
    if new is not None:
        acct.new_rows, acct.new_quarantined, acct.new_by_rule = new_rows, sum(new_by_rule.values()), new_by_rule
    if not acct.reconciled:
        raise RuntimeError(f"accounting does not reconcile for {table}: {acct.line()}")
    return acct, by_value


def rejected_rows(staged: DataFrame, name: str, run_id: str, keys: list[str]) -> DataFrame:
    """The quarantine rows of a staged source (or of gold, name `dataset`)."""
    return quarantine_rows(staged.where(F.col(STATUS) == "quarantined"), name, run_id, keys)


def gold_clean_rows(gold_staged: DataFrame, joined: DataFrame, spec: PipelineSpec) -> DataFrame:
    """The gold rows a run writes: the clean ones, the dataset's columns and the split."""
    clean = gold_staged.where(F.col(STATUS) == "clean").select(*output_columns(joined))
    return assign_split(clean, spec.split, spec.entity_key)


def silver_columns(source: Source) -> list[str]:
    return [*source.columns, "_file", "_batch_id", "_ingested_at"]


def clean_rows(staged: DataFrame, source: Source) -> DataFrame:
    return staged.where(F.col(STATUS) == "clean").select(*silver_columns(source))


def split_failures(counts: dict, gold_staged: DataFrame, spec: PipelineSpec, settings: Settings,
                   clean: DataFrame | None = None) -> list[str]:
    """Checked before gold is written: every part big enough (on the assigned rows), a hash column with
    enough distinct values (on the rows before assignment, whose own `split` column it may replace),
    and (split.unlisted: refuse) no row a column split cannot place."""
    min_rows = int(settings.get("prepare", {}).get("min_split_rows", DEFAULT_MIN_SPLIT_ROWS))
    log.info("prepare gold rows per split: %s", counts)
    if clean is None:     # an incremental run passes the gold rows the table will hold after its MERGE
        clean = gold_staged.where(F.col(STATUS) == "clean")
    failures = [*size_problems(counts, min_rows), *hash_column_problems(clean, spec.split, spec.entity_key)]
    if spec.task == "multiclass" and not failures:
        failures += unlearnable_classes(assign_split(clean, spec.split, spec.entity_key), spec.target)
    if spec.split.method == "column" and spec.split.unlisted == "refuse":
        problem = unlisted_problem(gold_staged, spec.split, column_type(gold_staged, spec.split))
        if problem:
            failures.append(f"{problem} (split.unlisted: refuse)")
    return failures


def empty_gold_problem(counts: dict, accounting: dict[str, Accounting], spec: PipelineSpec, rejected_files: str) -> str | None:
    """When gold has no row at all, one line saying where the rows went (in place of three empty splits):
    a source with an empty bronze (nothing landed, or every file set aside at ingest), one whose every
    row was quarantined, or the joins and the dataset's own checks."""
    if sum(counts.values()):
        return None
    why = []
    for name in spec.sources:
        acct = accounting.get(name)
        if acct is None:
            continue
        if acct.rows_in == 0:
            why.append(f"bronze/{name} holds no rows (nothing landed, or every file was set aside at ingest: "
                       f"see {rejected_files})")
        elif acct.clean == 0:
            why.append(f"source '{name}' has no clean row ({acct.line()}; the rows are in the quarantine table)")
    gold = accounting.get(GOLD)
    if not why and gold is not None:
        why.append(f"{gold.line()}, quarantined by rule: {gold.quarantine_by_rule}")
    return "gold has no rows: " + ("; ".join(why) or "the dataset's joins matched nothing")


def gold_stage(joined: DataFrame, spec: PipelineSpec) -> DataFrame:
    checks = [violation(F.col(matched_column(i, j)).isNull(), f"no_match:{j.source}", ",".join(j.on), F.lit(None))
              for i, j in enumerate(spec.dataset.joins) if j.how == "inner"]
    checks.append(violation(F.col(spec.target).isNull(), "missing_target", spec.target, F.lit(None)))
    if spec.split.method == "time":
        checks.append(violation(F.col(spec.split.column).isNull(), f"missing:{spec.split.column}",
                                 spec.split.column, F.lit(None)))
    elif spec.split.method == "column":       # the dataset's own split: a value in no list cannot be placed
        checks.append(violation(unlisted_rows(spec.split, column_type(joined, spec.split)),
                                f"split_value:{spec.split.column}", spec.split.column, F.col(spec.split.column)))
    cols = output_columns(joined)
    staged = joined.select(
        *cols,
        F.lit(None).cast("string").alias("_file"), F.lit(None).cast("string").alias("_batch_id"),
        F.current_timestamp().alias("_ingested_at"),
        F.filter(F.array(*checks), lambda v: v.isNotNull()).alias(VIOLATIONS),
    )
    rejected = F.size(VIOLATIONS) > 0          # the record is kept for the quarantined rows only
    return staged.select("*", F.when(rejected, F.struct(*[F.col(c) for c in cols])).alias(RAW),
                         F.when(rejected, "quarantined").otherwise("clean").alias(STATUS))


def bronze_bytes(spark, lake: Lakehouse, spec: PipelineSpec) -> int:
    """The size of every source's bronze at its newest version (from the checksum files: no Spark job)."""
    return sum(table_bytes(spark, lake.bronze(n)) for n in spec.sources)


def parallel_sources(settings: Settings) -> int:
    """How many sources prepare works on at once (conf prepare.parallel_sources)."""
    return max(1, int(settings.get("prepare", {}).get("parallel_sources", 1)))


def each_source(spec: PipelineSpec, fn, workers: int) -> dict:
    """fn(name, source) for every source; in threads when workers > 1 (Spark runs their jobs
    concurrently, which hides the fixed cost of each small job). Results in spec order."""
    if workers <= 1:
        return {name: fn(name, source) for name, source in spec.sources.items()}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
        futures = {name: pool.submit(fn, name, source) for name, source in spec.sources.items()}
        return {name: future.result() for name, future in futures.items()}


@dataclasses.dataclass
class PrepareResult:
    run_id: str
    accounting: dict[str, Accounting]
    bronze_versions: dict[str, int]
    silver: dict[str, TableVersion]
    gold: TableVersion | None
    quarantine: TableVersion | None
    mode: str = "full"          # full | incremental


class Timer:
    """Where a run's time goes, as `prepare timing:` lines in the log file."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, label: str) -> None:
        log.info("prepare timing: %s done at %.2fs", label, time.perf_counter() - self.started)


def finish(run_id: str, failures: list[str], accounting: dict, bronze_versions: dict, silver: dict,
           gold: TableVersion | None, qversion: TableVersion, mode: str) -> PrepareResult:
    if failures:
        kept = "gold was not updated (silver was)" if silver else "silver and gold were not updated"
        raise DataQualityError(f"prepare stopped; {kept}:\n  - " + "\n  - ".join(failures))
    log.info("prepare %s done (%s): gold %s @ v%s; quarantine @ v%s; lineage %s", run_id, mode, gold.path,
             gold.version, qversion.version, json.dumps({n: t.version for n, t in silver.items()}))
    return PrepareResult(run_id, accounting, bronze_versions, silver, gold, qversion, mode)
