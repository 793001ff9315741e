"""Delta Lake helpers: versioned reads, writes that record lineage, commit metrics."""

from __future__ import annotations

import dataclasses
import json
import logging

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TableVersion:
    path: str
    version: int

    def as_dict(self) -> dict:
        return {"path": self.path, "version": self.version}


def _delta_table(spark, path: str):
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, path) if DeltaTable.isDeltaTable(spark, path) else None


def latest_version(spark, path: str) -> int | None:
    table = _delta_table(spark, path)
    if table is None:
        return None
    return int(table.history(1).select("version").first()[0])


def commit_info(spark, path: str, version: int) -> dict:
    """operation, operationMetrics and userMetadata of one commit."""
    from delta.tables import DeltaTable

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
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).select("version", "operationMetrics").first()
    if before is not None and int(row["version"]) == before:
        return None
    return dict(row["operationMetrics"] or {})


def read_version(spark, path: str, version: int):
    """The table exactly as of `version`: lineage pins what each stage read."""
    return spark.read.format("delta").option("versionAsOf", int(version)).load(path)


def write_table(df, path: str, *, mode: str = "overwrite", lineage: dict | None = None,
                partition_by: list[str] | None = None, overwrite_schema: bool = False) -> TableVersion:
    """Write `df` as a Delta table, recording `lineage` as the commit's userMetadata."""
    writer = df.write.format("delta").mode(mode)
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
