"""The ingest job: every source of a spec into bronze, then one run-metrics row per source."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from lakeray.config import Settings
from lakeray.console import progress
from lakeray.ingest.files import ingest_files
from lakeray.ingest.jdbc import ingest_jdbc
from lakeray.lakehouse import Lakehouse, latest_version
from lakeray.lakehouse.lock import stage_lock
from lakeray.runs import append_run_metrics, metric_row, new_run_id
from lakeray.spec.models import PipelineSpec

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IngestResult:
    source: str
    format: str
    rows_added: int
    bronze_version: int | None
    detail: dict


def _ingest_one(spark, spec: PipelineSpec, name: str, lake, run_id: str, fetchsize: int) -> IngestResult:
    source = spec.sources[name]
    bronze = lake.bronze(name)
    if source.is_file:
        stats = ingest_files(spark, name, source, lake.landing(source.path, name), bronze, lake.checkpoint(name),
                             run_id, rejected_path=lake.rejected_files, pipeline=spec.file)
        added, detail = stats.rows, dataclasses.asdict(stats)
    else:
        added = ingest_jdbc(spark, name, source, bronze, run_id, fetchsize)
        detail = {"table": source.table}
    result = IngestResult(name, source.format, added, latest_version(spark, bronze), detail)
    log.info("ingest %s (%s): %d new row(s) -> %s @ v%s", name, source.format, added, bronze, result.bronze_version)
    return result


def run_ingest(spark, spec: PipelineSpec, settings: Settings, sources: list[str] | None = None,
               run_id: str | None = None) -> dict[str, IngestResult]:
    lake = Lakehouse.for_pipeline(settings, spec)
    run_id = run_id or new_run_id("ingest")
    fetchsize = int(settings.get("ingest", {}).get("jdbc_fetchsize", 10000))
    workers = int(settings.get("ingest", {}).get("parallel_sources", 1))
    selected = spec.selected_sources(sources, "--sources")
    with stage_lock(lake.checkpoint_root, spec.name, "ingest"), \
            progress(len(selected), f"ingest {spec.name}", "source") as bar, \
            ThreadPoolExecutor(max_workers=max(1, min(workers, len(selected))), thread_name_prefix="ingest") as pool:
        def one(name: str) -> IngestResult:
            result = _ingest_one(spark, spec, name, lake, run_id, fetchsize)
            bar.update(1)
            return result

        # every source runs to its end even when another fails; the first failure (spec order) is raised
        futures = {name: pool.submit(one, name) for name in selected}
        results: dict[str, IngestResult] = {name: future.result() for name, future in futures.items()}
        append_run_metrics(spark, lake.run_metrics, [
            metric_row(run_id, "ingest", f"bronze/{r.source}", rows_in=r.rows_added, clean=r.rows_added,
                       details={**r.detail, "bronze_version": r.bronze_version})
            for r in results.values()
        ], note={"stage": "ingest", "run_id": run_id})
    return results
