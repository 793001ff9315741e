"""The prepare job: bronze (pinned versions) -> silver per source -> gold, with an accounting
that must reconcile (rows in = clean + quarantined + duplicates) and lineage on every table.

After a successful run, the next one is incremental (incremental.py): only the keys that the new
bronze rows touch are re-staged and MERGEd. This module is the full recompute, and the dispatch.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from lakeray.config import Settings
from lakeray.console import progress
from lakeray.errors import SourceError
from lakeray.lakehouse import Lakehouse, TableVersion, latest_version, read_version, write_table
from lakeray.lakehouse.lock import stage_lock
from lakeray.lineage import lineage
from lakeray.prepare.dataset import build_dataset
from lakeray.prepare.dedupe import STATUS
from lakeray.prepare.incremental import previous_run, record_run, run_incremental
from lakeray.prepare.limits import check_limits
from lakeray.prepare.split import PARTS, SPLIT, column_type, split_column
from lakeray.prepare.steps import (
    GOLD,
    Accounting,
    PrepareResult,
    Timer,
    account,
    account_rejected,
    bronze_bytes,
    clean_rows,
    complete_accounting,
    each_source,
    empty_gold_problem,
    finish,
    gold_clean_rows,
    gold_stage,
    keeps_every_row,
    observe_statuses,
    parallel_sources,
    rejected_by_validation,
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
    with stage_lock(lake.checkpoint_root, spec.name, "prepare"):
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


@dataclasses.dataclass
class _Staged:
    """A source after the first pass: its accounting so far, its rejected rows (cached), and either
    every staged row (cached: a source with a set-level rule) or its bronze, staged again by the
    silver write, which counts the statuses as it goes (no cache of the whole source; on a small lake
    the write caches them, into every_row, for gold)."""
    bronze: DataFrame
    acct: Accounting
    rejected: DataFrame
    every_row: DataFrame | None


def _stage(bronze: DataFrame, name: str, source: Source) -> _Staged:
    rows_in = bronze.count()
    if keeps_every_row(source):
        frame = stage_source(bronze, source).persist(StorageLevel.MEMORY_AND_DISK)
        acct, _ = account(name, rows_in, frame)
        return _Staged(bronze, acct, frame.where(F.col(STATUS) == "quarantined"), frame)
    rejected = rejected_by_validation(bronze, source).persist(StorageLevel.MEMORY_AND_DISK)
    return _Staged(bronze, account_rejected(name, rows_in, rejected), rejected, None)


def _silver_rows(staged: _Staged, name: str, source: Source, keep: bool) -> tuple[DataFrame, Observation | None]:
    """Silver's rows, and the observation counting the statuses the write sees. `keep`: the staged
    rows are cached as the write computes them (staged.every_row), for gold to join."""
    if staged.every_row is not None:
        return clean_rows(staged.every_row, source), None
    frame = stage_source(staged.bronze, source)
    if keep:
        staged.every_row = frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    frame, observation = observe_statuses(frame, name)
    return clean_rows(frame, source), observation


def gold_from_staged(spark, settings: Settings, lake: Lakehouse, spec: PipelineSpec) -> bool:
    """Whether gold joins the staged rows the silver writes cached (bronze under
    prepare.gold_from_staged_max_mb) instead of reading the silver tables just written. Reading a table
    just written costs Delta a snapshot and a file listing each, Spark jobs planned on the driver (about
    2 of the 10 s a warm 20k-row run took); caching every staged row costs more than that from about a
    million rows (26 MB of bronze; measured in benchmarks/README.md)."""
    max_mb = float(settings.get("prepare", {}).get("gold_from_staged_max_mb", 12))
    return bronze_bytes(spark, lake, spec) < max_mb * 2**20


def _account_unwritten(staged: dict[str, _Staged], spec: PipelineSpec) -> None:
    """A run the limits stop writes no silver: the counts a silver write would have seen, by a pass
    of their own (the failure path only), so its run metrics still reconcile."""
    for name, st in staged.items():
        if st.every_row is None:
            st.acct, _ = account(name, st.acct.rows_in, stage_source(st.bronze, spec.sources[name]))


def _run_full(spark, spec: PipelineSpec, settings: Settings, lake: Lakehouse, run_id: str,
              bronze_versions: dict[str, int]) -> PrepareResult:
    """First a pass that counts what each source quarantines (and keeps those rows), judged against
    the limits before anything is written; then silver straight from bronze, its statuses counted by
    the write itself; gold from the silver just written; one quarantine write."""
    workers = parallel_sources(settings)
    dv = deletion_vectors(settings)
    from_staged = gold_from_staged(spark, settings, lake, spec)
    # a live bar on a terminal: each source staged, each silver written, gold + quarantine
    bar = progress(2 * len(spec.sources) + 1, f"prepare {spec.name}")
    phase = Timer()

    def stage(name: str, source: Source) -> _Staged:
        staged = _stage(read_version(spark, lake.bronze(name), bronze_versions[name]), name, source)
        bar.update(1)
        return staged

    staged: dict[str, _Staged] = each_source(spec, stage, workers)
    phase("stage + account sources")
    accounting: dict[str, Accounting] = {n: st.acct for n, st in staged.items()}
    rejected_of = {n: rejected_rows(st.rejected, n, run_id, spec.sources[n].keys) for n, st in staged.items()}
    quarantined = list(rejected_of.values())
    failures = check_limits(spec, settings, accounting, lake, rejected_of)
    silver: dict[str, TableVersion] = {}
    gold = None
    gold_staged = None
    split_rows: dict[str, int] = {}
    try:
        if failures:
            _account_unwritten(staged, spec)
            accounting = {n: st.acct for n, st in staged.items()}
        else:
            def write_silver(name: str, source: Source) -> TableVersion:
                rows, observation = _silver_rows(staged[name], name, source, keep=from_staged)
                written = write_table(rows, lake.silver(name), overwrite_schema=True,
                                      stats_columns=[*source.keys, *([source.latest_by] if source.latest_by else [])],
                                      deletion_vectors=dv,
                                      lineage=lineage(run_id, spec, {f"bronze/{name}": bronze_versions[name]}))
                if observation is not None:
                    complete_accounting(staged[name].acct, observation.get)
                log.info("prepare %s", staged[name].acct.line())
                bar.update(1)
                return written

            silver = each_source(spec, write_silver, workers)
            phase("silver written")
            # gold from the rows the silver writes cached (a small lake), else from the silver just written
            joined = build_dataset({n: clean_rows(staged[n].every_row, spec.sources[n]) if from_staged
                                    else read_version(spark, t.path, t.version) for n, t in silver.items()}, spec)
            gold_staged = gold_stage(joined, spec).persist(StorageLevel.MEMORY_AND_DISK)
            split_of = split_column(spec.split, spec.entity_key, column_type(gold_staged, spec.split))
            accounting[GOLD], by_split = account(GOLD, accounting[spec.dataset.base].clean, gold_staged, split_of)
            split_rows = {part: by_split.get(part, 0) for part in PARTS}
            log.info("prepare %s", accounting[GOLD].line())
            phase("gold joined + accounted")
            quarantined.append(rejected_rows(gold_staged, GOLD, run_id, [spec.entity_key]))
            failures = check_limits(spec, settings, {GOLD: accounting[GOLD]}, lake, {GOLD: quarantined[-1]})
        if not failures:
            empty = empty_gold_problem(split_rows, accounting, spec, lake.rejected_files)
            failures = [empty] if empty else split_failures(split_rows, gold_staged, spec, settings)
            phase("split checked")
        gold_write = None
        # a small lake's gold and quarantine writes side by side (each mostly driver work and job
        # latency); a big lake's one after the other (both CPU-bound on the executors)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-gold") as pool:
            if not failures:
                gold_write = pool.submit(
                    write_table, gold_clean_rows(gold_staged, joined, spec), lake.gold, partition_by=[SPLIT],
                    overwrite_schema=True, stats_columns=[spec.entity_key],
                    lineage=lineage(run_id, spec, {f"silver/{n}": t.version for n, t in silver.items()}))
                if not from_staged:
                    gold = gold_write.result()
                    phase("gold written")
            rejected = quarantined[0]
            for extra in quarantined[1:]:
                rejected = rejected.unionByName(extra)
            qversion = write_table(rejected, lake.quarantine, partition_by=["source"], overwrite_schema=True,
                                   stats_columns=["key", "run_id", "rule"], deletion_vectors=dv,
                                   lineage=lineage(run_id, spec, {f"bronze/{n}": v for n, v in bronze_versions.items()}))
            gold = gold_write.result() if gold_write is not None else None
        phase("gold and quarantine written" if from_staged else "quarantine written")
        record_run(spark, spec, lake, run_id, "full", accounting, bronze_versions, silver, gold, qversion,
                   split_rows, failures)
        phase("run metrics written")
        bar.update(1)
    finally:
        bar.close()
        for frame in [*(f for st in staged.values() for f in (st.rejected, st.every_row)), gold_staged]:
            if frame is not None:
                frame.unpersist()       # a frame derived from a cached one is not cached itself: a no-op
    return finish(run_id, failures, accounting, bronze_versions, silver, gold, qversion, "full")
