"""A file source's state is its bronze table plus its streaming checkpoint; they must agree.

The checkpoint records every file read, by absolute path, and the landing folder it was
written for. A moved landing folder, a bronze table deleted without its checkpoint (files
never read again) or a checkpoint deleted without its bronze table (every file read twice)
stops the job with what to do instead of a raw Spark error or silent loss or duplicates.
"""

from __future__ import annotations

import uuid

from lakeray.errors import SourceError
from lakeray.lakehouse import fs, latest_version

APP_ID_FILE = "lakeray_txn_app_id"
LANDING_FILE = "lakeray_landing"


def reset_hint(pipeline: str | None, source: str) -> str:
    """`pipeline`: the spec's file (PipelineSpec.file), as the user gave it to the command."""
    return f"`lakeray reset --pipeline {pipeline or '<spec>'} --stage ingest --source {source}`"


def moved_landing_error(pipeline: str | None, source: str, checkpoint: str, old: str | None, new: str) -> SourceError:
    was = f"landing folder {old}" if old else "another landing folder"
    return SourceError(
        f"source '{source}': its checkpoint {checkpoint} was written for {was}, but the landing folder is now {new} "
        f"(the file source records absolute paths). Move the data back (or set paths.landing / LAKERAY_LANDING back), "
        f"or start the source over with {reset_hint(pipeline, source)}, which re-ingests every file in {new}")


def app_id(checkpoint: str, spark=None) -> str:
    """A stable id for this checkpoint's Delta writes; a new checkpoint gets a new id."""
    marker = fs.join(checkpoint, APP_ID_FILE)
    existing = fs.read_text(marker, spark)
    if existing and existing.strip():
        return existing.strip()
    new = f"lakeray-{uuid.uuid4()}"
    fs.write_text(marker, new, spark)
    return new


def _has_rows(spark, bronze: str) -> bool:
    return spark.read.format("delta").load(bronze).limit(1).count() > 0


def check_source_state(spark, source: str, landing: str, bronze: str, checkpoint: str,
                       pipeline: str | None = None) -> None:
    """Raise SourceError when bronze, checkpoint and landing folder no longer belong together."""
    recorded = fs.read_text(fs.join(checkpoint, LANDING_FILE), spark)
    if recorded is not None and recorded.strip() != landing:
        raise moved_landing_error(pipeline, source, checkpoint, recorded.strip(), landing)
    committed = [n for n in fs.listdir(fs.join(checkpoint, "commits"), spark) if n.isdigit()]
    has_bronze = latest_version(spark, bronze) is not None
    if committed and not has_bronze:
        raise SourceError(
            f"source '{source}': bronze table {bronze} is missing, but checkpoint {checkpoint} records "
            f"{len(committed)} ingested batch(es): those files would never be read again. Restore the table, "
            f"or re-ingest every landed file with {reset_hint(pipeline, source)}")
    if has_bronze and not fs.exists(fs.join(checkpoint, APP_ID_FILE), spark) and _has_rows(spark, bronze):
        raise SourceError(
            f"source '{source}': bronze table {bronze} holds rows but its checkpoint {checkpoint} is missing: "
            f"ingesting now would land every file a second time. Restore the checkpoint, or start the source "
            f"over with {reset_hint(pipeline, source)}")


def record_landing(spark, checkpoint: str, landing: str) -> None:
    """After a run that read `landing` through this checkpoint: remember the folder (once)."""
    marker = fs.join(checkpoint, LANDING_FILE)
    if fs.read_text(marker, spark) is None:
        fs.write_text(marker, landing, spark)
