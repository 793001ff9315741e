"""The prepare job: bronze (pinned versions) -> silver per source -> gold, with an accounting
that must reconcile (rows in = clean + quarantined + duplicates) and lineage on every table.

After a successful run, the next one is incremental (incremental.py): only the keys that the new
bronze rows touch are re-staged and MERGEd. This module is the full recompute, and the dispatch.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from lakeray.config import Settings
from lakeray.console import progress
from lakeray.errors import SourceError
from lakeray.lakehouse import Lakehouse, TableVersion, latest_version, read_version, write_table
from lakeray.lineage import lineage
from lakeray.prepare.dataset import build_dataset
from lakeray.prepare.incremental import previous_run, record_run, run_incremental
from lakeray.prepare.split import PARTS, SPLIT, column_type, split_column
from lakeray.prepare.steps import (
    GOLD,
    Accounting,
    PrepareResult,
    Timer,
    account,
    check_limits,
    clean_rows,
    each_source,
    finish,
    gold_clean_rows,
    gold_stage,
    parallel_sources,
    rejected_rows,
    split_failures,
    stage_source,
)
from lakeray.runs import new_run_id
from lakeray.spec.models import PipelineSpec, Source

log = logging.getLogger(__name__)


def bronze_versions_now(spark, lake: Lakehouse, spec: PipelineSpec) -> dict[str, int]:
    versions = {}
    for name in spec.sources:
        version = latest_version(spark, lake.bronze(name))
        if version is None:
            raise SourceError(f"source '{name}': no bronze table at {lake.bronze(name)}; run the ingest job first")
        versions[name] = version
    return versions


def deletion_vectors(settings: Settings) -> bool:
    """prepare.deletion_vectors: silver and quarantine mark MERGEd-away rows instead of rewriting files."""
    return bool(settings.get("prepare", {}).get("deletion_vectors", True))


def run_prepare(spark, spec: PipelineSpec, settings: Settings, run_id: str | None = None,
                full: bool = False) -> PrepareResult:
    """Incremental when the last run left a state this one can continue from (and `full` is not
    asked for, nor prepare.incremental: false in conf); otherwise the full recompute."""
    lake = Lakehouse.for_pipeline(settings, spec)
    run_id = run_id or new_run_id("prepare")
    bronze_versions = bronze_versions_now(spark, lake, spec)
    if full:
        why = "a full recompute was asked for"
    elif not settings.get("prepare", {}).get("incremental", True):
        why = "prepare.incremental is off in conf/"
    else:
        previous, why = previous_run(spark, lake, spec, bronze_versions)
        if previous is not None:
            return run_incremental(spark, spec, settings, lake, run_id, bronze_versions, previous)
    log.info("prepare %s: full recompute (%s)", run_id, why)
    return _run_full(spark, spec, settings, lake, run_id, bronze_versions)


def _run_full(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, run_id: str,
              bronze_versions: dict[str, int]) -> PrepareResult:
    workers = parallel_sources(settings)
    dv = deletion_vectors(settings)
    # a live bar on a terminal: each source staged, each silver written, gold + quarantine
    bar = progress(2 * len(spec.sources) + 1, f"prepare {spec.name}")
    phase = Timer()

    def stage(name: str, source: Source) -> tuple[DataFrame, Accounting]:
        bronze = read_version(spark, lake.bronze(name), bronze_versions[name])
        frame = stage_source(bronze, source).persist(StorageLevel.MEMORY_AND_DISK)
        acct, _ = account(name, bronze.count(), frame)
        log.info("prepare %s", acct.line())
        bar.update(1)
        return frame, acct

    outcomes = each_source(spec, stage, workers)
    phase("stage + account sources")
    staged: dict[str, DataFrame] = {n: o[0] for n, o in outcomes.items()}
    accounting: dict[str, Accounting] = {n: o[1] for n, o in outcomes.items()}

    quarantined = [rejected_rows(f, n, run_id, spec.sources[n].keys) for n, f in staged.items()]
    failures = check_limits(spec, settings, accounting, lake)
    silver: dict[str, TableVersion] = {}
    gold = None
    split_rows: dict[str, int] = {}
    try:
        if not failures:
            def write_silver(name: str, source: Source) -> TableVersion:
                written = write_table(clean_rows(staged[name], source), lake.silver(name), overwrite_schema=True,
                                      stats_columns=[*source.keys, *([source.latest_by] if source.latest_by else [])],
                                      deletion_vectors=dv,
                                      lineage=lineage(run_id, spec, {f"bronze/{name}": bronze_versions[name]}))
                bar.update(1)
                return written

            silver = each_source(spec, write_silver, workers)
            phase("silver written")
            # gold from the cached staged rows (the rows just written to silver), not a re-read of silver
            joined = build_dataset({n: clean_rows(staged[n], spec.sources[n]) for n in spec.sources}, spec)
            gold_staged = gold_stage(joined, spec).persist(StorageLevel.MEMORY_AND_DISK)
            staged[GOLD] = gold_staged
            split_of = split_column(spec.split, spec.entity_key, column_type(gold_staged, spec.split))
            accounting[GOLD], by_split = account(GOLD, accounting[spec.dataset.base].clean, gold_staged, split_of)
            split_rows = {part: by_split.get(part, 0) for part in PARTS}
            log.info("prepare %s", accounting[GOLD].line())
            phase("gold joined + accounted")
            quarantined.append(rejected_rows(gold_staged, GOLD, run_id, [spec.entity_key]))
            failures = check_limits(spec, settings, {GOLD: accounting[GOLD]}, lake)
        if not failures:
            failures = split_failures(split_rows, gold_staged, spec, settings)
            phase("split checked")
        if not failures:
            gold = write_table(gold_clean_rows(gold_staged, joined, spec), lake.gold, partition_by=[SPLIT], overwrite_schema=True, stats_columns=[spec.entity_key],
                               lineage=lineage(run_id, spec, {f"silver/{n}": t.version for n, t in silver.items()}))
            phase("gold written")
        rejected = quarantined[0]
        for extra in quarantined[1:]:
            rejected = rejected.unionByName(extra)
        qversion = write_table(rejected, lake.quarantine, partition_by=["source"], overwrite_schema=True,
                               stats_columns=["key", "run_id", "rule"], deletion_vectors=dv,
                               lineage=lineage(run_id, spec, {f"bronze/{n}": v for n, v in bronze_versions.items()}))
        phase("quarantine written")
        record_run(spark, spec, lake, run_id, "full", accounting, bronze_versions, silver, gold, qversion,
                   split_rows, failures)
        phase("run metrics written")
        bar.update(1)
    finally:
        bar.close()
        for frame in staged.values():
            frame.unpersist()
    return finish(run_id, failures, accounting, bronze_versions, silver, gold, qversion, "full")
