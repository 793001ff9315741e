"""The prepare job: bronze (pinned versions) -> silver per source -> gold, with an accounting
that must reconcile (rows in = clean + quarantined + duplicates) and lineage on every table."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeray.config import Settings
from lakeray.console import progress
from lakeray.errors import DataQualityError, SourceError
from lakeray.lakehouse import Lakehouse, TableVersion, latest_version, read_version, write_table
from lakeray.lineage import lineage
from lakeray.prepare.dataset import build_dataset, matched_column, output_columns
from lakeray.prepare.dedupe import STATUS, classify
from lakeray.prepare.quarantine import quarantine_rows
from lakeray.prepare.split import (
    PARTS,
    SPLIT,
    assign_split,
    column_type,
    hash_column_problems,
    size_problems,
    split_column,
    unlisted_problem,
    unlisted_rows,
)
from lakeray.prepare.validate import RAW, VIOLATIONS, validate_rows, violation
from lakeray.runs import append_run_metrics, metric_row, new_run_id
from lakeray.spec.models import PipelineSpec, Source

log = logging.getLogger(__name__)
GOLD = "dataset"
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

    @property
    def reconciled(self) -> bool:
        return self.rows_in == self.clean + self.quarantined + self.duplicates + self.deleted

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    def line(self) -> str:
        deleted = f" + deleted {self.deleted}" if self.deleted else ""
        return (f"{self.table}: in {self.rows_in} = clean {self.clean} + quarantined {self.quarantined} "
                f"+ duplicates {self.duplicates}{deleted} [{'reconciled' if self.reconciled else 'MISMATCH'}]")


@dataclasses.dataclass
class PrepareResult:
    run_id: str
    accounting: dict[str, Accounting]
    bronze_versions: dict[str, int]
    silver: dict[str, TableVersion]
    gold: TableVersion | None
    quarantine: TableVersion | None


def stage_source(bronze: DataFrame, source: Source) -> DataFrame:
    """bronze -> every row tagged clean | quarantined | duplicate (pure)."""
    return classify(validate_rows(bronze, source), source)


def _account(table: str, rows_in: int, staged: DataFrame, by: Column | None = None) -> tuple[Accounting, dict]:
    """Rows per status and first rule (one Spark job); with `by`, also the clean rows per value of `by`."""
    rule = F.when(F.col(STATUS) == "quarantined", F.col(VIOLATIONS)[0]["rule"])
    extra = F.when(F.col(STATUS) == "clean", by) if by is not None else F.lit(None)
    counts = (staged.groupBy(F.col(STATUS).alias("status"), rule.alias("rule"), extra.alias("by"))
              .agg(F.count(F.lit(1)).alias("n")).collect())
    by_status: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    by_value: dict = {}
    for r in counts:
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        if r["rule"] is not None:
            by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + r["n"]
        if r["status"] == "clean":
            by_value[r["by"]] = by_value.get(r["by"], 0) + r["n"]
    acct = Accounting(table, rows_in, by_status.get("clean", 0), by_status.get("quarantined", 0),
                      by_status.get("duplicate", 0), by_rule, by_status.get("deleted", 0))
    if not acct.reconciled:
        raise RuntimeError(f"accounting does not reconcile for {table}: {acct.line()}")
    return acct, by_value


def _silver_columns(source: Source) -> list[str]:
    return [*source.columns, "_file", "_batch_id", "_ingested_at"]


def _clean(staged: DataFrame, source: Source) -> DataFrame:
    return staged.where(F.col(STATUS) == "clean").select(*_silver_columns(source))


def _split_failures(counts: dict, gold_staged: DataFrame, spec: PipelineSpec, settings: Settings) -> list[str]:
    """Checked before gold is written: every part big enough (on the assigned rows), a hash column with
    enough distinct values (on the rows before assignment, whose own `split` column it may replace),
    and (split.unlisted: refuse) no row a column split cannot place."""
    min_rows = int(settings.get("prepare", {}).get("min_split_rows", DEFAULT_MIN_SPLIT_ROWS))
    log.info("prepare gold rows per split: %s", counts)
    clean = gold_staged.where(F.col(STATUS) == "clean")
    failures = [*size_problems(counts, min_rows), *hash_column_problems(clean, spec.split, spec.entity_key)]
    if spec.split.method == "column" and spec.split.unlisted == "refuse":
        problem = unlisted_problem(gold_staged, spec.split, column_type(gold_staged, spec.split))
        if problem:
            failures.append(f"{problem} (split.unlisted: refuse)")
    return failures


def _gold_stage(joined: DataFrame, spec: PipelineSpec) -> DataFrame:
    checks = [violation(F.col(matched_column(j)).isNull(), f"no_match:{j.source}", ",".join(j.on), F.lit(None))
              for j in spec.dataset.joins if j.how == "inner"]
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


def _check_limits(spec: PipelineSpec, settings: Settings, accounting: dict[str, Accounting], lake: Lakehouse) -> list[str]:
    default = float(settings.get("prepare", {}).get("max_quarantine_rate", 0.1))
    failures = []
    for name, acct in accounting.items():
        limit = spec.sources[name].max_quarantine_rate if name in spec.sources else None
        setting = f"sources.{name}.max_quarantine_rate" if limit is not None else "prepare.max_quarantine_rate in conf/"
        limit = default if limit is None else limit
        if acct.quarantine_rate > limit:
            top = ", ".join(f"{r}={n}" for r, n in sorted(acct.quarantine_by_rule.items(), key=lambda kv: -kv[1])[:5])
            failures.append(
                f"source '{name}': {acct.quarantined} of {acct.rows_in} rows quarantined "
                f"({acct.quarantine_rate:.1%}) > limit {limit:.1%} ({setting}); "
                f"top rules: {top}; rows are in {lake.quarantine}"
            )
    return failures


def _each_source(spec: PipelineSpec, fn, workers: int) -> dict:
    """fn(name, source) for every source; in threads when workers > 1 (Spark runs their jobs
    concurrently, which hides the fixed cost of each small job). Results in spec order."""
    if workers <= 1:
        return {name: fn(name, source) for name, source in spec.sources.items()}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
        futures = {name: pool.submit(fn, name, source) for name, source in spec.sources.items()}
        return {name: future.result() for name, future in futures.items()}


def run_prepare(spark, spec: PipelineSpec, settings: Settings, run_id: str | None = None) -> PrepareResult:
    lake = Lakehouse.for_pipeline(settings, spec)
    run_id = run_id or new_run_id("prepare")
    bronze_versions = {}
    for name in spec.sources:
        version = latest_version(spark, lake.bronze(name))
        if version is None:
            raise SourceError(f"source '{name}': no bronze table at {lake.bronze(name)}; run the ingest job first")
        bronze_versions[name] = version

    workers = int(settings.get("prepare", {}).get("parallel_sources", 1))
    # a live bar on a terminal: each source staged, each silver written, gold + quarantine
    bar = progress(2 * len(spec.sources) + 1, f"prepare {spec.name}")

    started = time.perf_counter()

    def phase(label: str) -> None:      # where the time goes, in the log file
        log.info("prepare timing: %s done at %.2fs", label, time.perf_counter() - started)

    def stage(name: str, source: Source) -> tuple[DataFrame, Accounting]:
        bronze = read_version(spark, lake.bronze(name), bronze_versions[name])
        frame = stage_source(bronze, source).persist(StorageLevel.MEMORY_AND_DISK)
        acct, _ = _account(name, bronze.count(), frame)
        log.info("prepare %s", acct.line())
        bar.update(1)
        return frame, acct

    outcomes = _each_source(spec, stage, workers)
    phase("stage + account sources")
    staged: dict[str, DataFrame] = {n: o[0] for n, o in outcomes.items()}
    accounting: dict[str, Accounting] = {n: o[1] for n, o in outcomes.items()}

    quarantined = [quarantine_rows(f.where(F.col(STATUS) == "quarantined"), n, run_id) for n, f in staged.items()]
    failures = _check_limits(spec, settings, accounting, lake)
    silver: dict[str, TableVersion] = {}
    gold = None
    split_rows: dict[str, int] = {}
    try:
        if not failures:
            def write_silver(name: str, source: Source) -> TableVersion:
                written = write_table(_clean(staged[name], source), lake.silver(name), overwrite_schema=True,
                                      stats_columns=[*source.keys, *([source.latest_by] if source.latest_by else [])],
                                      lineage=lineage(run_id, spec, {f"bronze/{name}": bronze_versions[name]}))
                bar.update(1)
                return written

            silver = _each_source(spec, write_silver, workers)
            phase("silver written")
            # gold from the cached staged rows (the rows just written to silver), not a re-read of silver
            joined = build_dataset({n: _clean(staged[n], spec.sources[n]) for n in spec.sources}, spec)
            gold_staged = _gold_stage(joined, spec).persist(StorageLevel.MEMORY_AND_DISK)
            staged[GOLD] = gold_staged
            split_of = split_column(spec.split, spec.entity_key, column_type(gold_staged, spec.split))
            accounting[GOLD], by_split = _account(GOLD, accounting[spec.dataset.base].clean, gold_staged, split_of)
            split_rows = {part: by_split.get(part, 0) for part in PARTS}
            log.info("prepare %s", accounting[GOLD].line())
            phase("gold joined + accounted")
            quarantined.append(quarantine_rows(gold_staged.where(F.col(STATUS) == "quarantined"), GOLD, run_id))
            failures = _check_limits(spec, settings, {GOLD: accounting[GOLD]}, lake)
        if not failures:
            failures = _split_failures(split_rows, gold_staged, spec, settings)
            phase("split checked")
        if not failures:
            clean = gold_staged.where(F.col(STATUS) == "clean").select(*output_columns(joined))
            gold_rows = assign_split(clean, spec.split, spec.entity_key)
            gold = write_table(gold_rows, lake.gold, partition_by=[SPLIT], overwrite_schema=True, stats_columns=[spec.entity_key],
                               lineage=lineage(run_id, spec, {f"silver/{n}": t.version for n, t in silver.items()}))
            phase("gold written")
        rejected = quarantined[0]
        for extra in quarantined[1:]:
            rejected = rejected.unionByName(extra)
        qversion = write_table(rejected, lake.quarantine, partition_by=["source"], overwrite_schema=True,
                               stats_columns=["run_id", "rule"],
                               lineage=lineage(run_id, spec, {f"bronze/{n}": v for n, v in bronze_versions.items()}))
        phase("quarantine written")
        status = "failed" if failures else "ok"
        append_run_metrics(spark, lake.run_metrics, [
            metric_row(run_id, "prepare", a.table, rows_in=a.rows_in, clean=a.clean, quarantined=a.quarantined,
                       duplicates=a.duplicates, deleted=a.deleted, status=status,
                       details={"quarantine_by_rule": a.quarantine_by_rule, "bronze_version": bronze_versions.get(n),
                                **({"split_rows": split_rows} if n == GOLD and split_rows else {}),
                                "output_version": (silver[n].version if n in silver else gold.version if n == GOLD and gold else None)})
            for n, a in accounting.items()
        ])
        phase("run metrics written")
        bar.update(1)
    finally:
        bar.close()
        for frame in staged.values():
            frame.unpersist()
    if failures:
        kept = "gold was not updated (silver was)" if silver else "silver and gold were not updated"
        raise DataQualityError(f"prepare stopped; {kept}:\n  - " + "\n  - ".join(failures))
    result = PrepareResult(run_id, accounting, bronze_versions, silver, gold, qversion)
    log.info("prepare %s done: gold %s @ v%s; quarantine @ v%s; lineage %s", run_id, gold.path, gold.version,
             qversion.version, json.dumps({n: t.version for n, t in silver.items()}))
    return result
