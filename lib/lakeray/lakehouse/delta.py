"""Delta Lake helpers: versioned reads, writes that record lineage, commit metrics."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

from lakeray.lakehouse import fs

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TableVersion:
    path: str
    version: int

    def as_dict(self) -> dict:
        return {"path": self.path, "version": self.version}


def stats_property(columns: list[str]) -> tuple[str, str]:
    """(delta.dataSkippingStatsColumns, value): a writer option when a table is created, or a table
    property: min/max statistics for these columns only; the row count is always kept."""
    return "delta.dataSkippingStatsColumns", ",".join(f"`{c}`" for c in dict.fromkeys(columns))


_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def latest_version(spark, path: str) -> int | None:
    """The newest committed version, from the commit files' names in _delta_log (a listing, no
    Spark job: a prepare run asks this a dozen times); None when there is no table."""
    names = fs.listdir(fs.join(path, "_delta_log"), spark)
    versions = [int(m.group(1)) for m in map(_COMMIT_FILE.match, names) if m]
    return max(versions) if versions else None


def commit_actions(spark, path: str, version: int) -> list[dict] | None:
    """The actions of one commit file (add, remove, metaData, commitInfo, ...); None once log cleanup
    removed it (or there is no such version)."""
    text = fs.read_text(fs.join(path, "_delta_log", f"{int(version):020d}.json"), spark)
    if text is None:
        return None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _action(actions: list[dict] | None, kind: str) -> dict | None:
    return next((a[kind] for a in actions or [] if kind in a), None)


def table_id(spark, path: str) -> str | None:
    """The table's id (metaData.id of its first commit): a table removed and created again at the same
    path has a new one. None when the first commit file is gone (log cleanup) or there is no table."""
    meta = _action(commit_actions(spark, path, 0), "metaData")
    return meta.get("id") if meta else None


def _snapshot_detail(spark, path: str, field: str, detail: str) -> int:
    """One figure of a table's newest version: from the commit's checksum file when Delta wrote one
    (no Spark job), else DESCRIBE DETAIL."""
    version = latest_version(spark, path)
    text = fs.read_text(fs.join(path, "_delta_log", f"{int(version):020d}.crc"), spark) if version is not None else None
    if text:
        value = json.loads(text).get(field)
        if value is not None:
            return int(value)
    return int(spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()[detail])


def table_bytes(spark, path: str) -> int:
    """The size of a table's live files at its newest version."""
    return _snapshot_detail(spark, path, "tableSizeBytes", "sizeInBytes")


def table_files(spark, path: str) -> int:
    """How many live files a table has at its newest version."""
    return _snapshot_detail(spark, path, "numFiles", "numFiles")


def commit_info(spark, path: str, version: int) -> dict:
    """operation, operationMetrics and userMetadata of one commit."""
    from delta.tables import DeltaTable

    info = _action(commit_actions(spark, path, version), "commitInfo")
    if info is not None:
        meta = info.get("userMetadata")
        return {"version": int(version), "operation": info.get("operation"),
                "metrics": {k: str(v) for k, v in (info.get("operationMetrics") or {}).items()},
                "user_metadata": json.loads(meta) if meta else None}
    row = (
        DeltaTable.forPath(spark, path).history()
        .where(f"version = {int(version)}")
        .select("version", "operation", "operationMetrics", "userMetadata")
        .first()
    )
    if row is None:
        raise ValueError(f"{path} has no version {version}")
    return {
        "version": int(row["version"]),
        "operation": row["operation"],
        "metrics": dict(row["operationMetrics"] or {}),
        "user_metadata": json.loads(row["userMetadata"]) if row["userMetadata"] else None,
    }


def commit_metrics_since(spark, path: str, before: int | None) -> dict | None:
    """operationMetrics of the newest commit if the table moved past `before`, else None (no-op)."""
    version = latest_version(spark, path)
    if version is None or (before is not None and version == before):
        return None
    return commit_info(spark, path, version)["metrics"]


def read_version(spark, path: str, version: int):
    """The table exactly as of `version`: lineage pins what each stage read."""
    return spark.read.format("delta").option("versionAsOf", int(version)).load(path)


def write_table(df, path: str, *, mode: str = "overwrite", lineage: dict | None = None,
                partition_by: list[str] | None = None, overwrite_schema: bool = False,
                stats_columns: list[str] | None = None, deletion_vectors: bool = False) -> TableVersion:
    """Write `df` as a Delta table, recording `lineage` as the commit's userMetadata. `stats_columns`:
    the only columns Delta keeps min/max statistics of (delta.dataSkippingStatsColumns; the row count
    is always kept): the keys a reader filters on, not every wide text column (a quarter of the write).
    `deletion_vectors`: a later MERGE marks the rows it removes instead of rewriting their files (Spark
    reads such tables; delta-rs does not yet, so gold, which training reads with it, never has them)."""
    writer = df.write.format("delta").mode(mode)
    if stats_columns:
        writer = writer.option(*stats_property(stats_columns))
    if deletion_vectors:
        writer = writer.option("delta.enableDeletionVectors", "true")
    if lineage is not None:
        writer = writer.option("userMetadata", json.dumps(lineage, sort_keys=True, default=str))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if overwrite_schema:
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    version = latest_version(df.sparkSession, path)
    log.info("wrote %s (version %s, mode %s)", path, version, mode)
    return TableVersion(path, version)


def raw_read_blockers(table) -> list[str]:
    """What keeps the Parquet files of a delta-rs DeltaTable from being read as they are: deletion
    vectors (a raw read keeps deleted rows) and column mapping (files hold physical column names),
    as reader features or, for column mapping at reader version 2, as the table property."""
    found = set(table.protocol().reader_features or []) & {"deletionVectors", "columnMapping"}
    if table.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
        found.add("columnMapping")
    return sorted(found)
