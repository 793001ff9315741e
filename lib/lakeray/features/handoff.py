"""The hand-off from Spark to training: gold splits read at an explicit Delta version.

Training never reads "latest" implicitly: the caller names the version (from the prepare run's
result or lineage, or `latest_gold_version` called on purpose) and it is recorded with the model.
The reader is delta-rs (`deltalake`), so no JVM is needed on Ray workers.
"""

from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from lakeray.errors import LakerayError

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class GoldSnapshot:
    path: str
    version: int
    frames: dict[str, pd.DataFrame]

    def lineage(self) -> dict:
        return {"gold_path": self.path, "gold_version": self.version,
                "rows": {name: len(frame) for name, frame in self.frames.items()}}


def _table(path: str, version: int | None = None):
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path) if version is None else DeltaTable(path, version=version)
    except TableNotFoundError:
        raise LakerayError(f"no Delta table at {path}: run the prepare job first") from None
    except Exception as exc:  # deltalake raises a generic error for a missing version
        raise LakerayError(f"cannot open {path} at version {version}: {exc}") from None


def latest_gold_version(path: str) -> int:
    """The newest version, for a caller that decides to pin it (and records it)."""
    return int(_table(path).version())


def load_splits(path: str, version: int, columns: list[str] | None = None,
                splits: tuple[str, ...] = SPLITS) -> GoldSnapshot:
    """Each split of the gold table at `version`, as pandas frames (partition-pruned reads)."""
    if version is None:
        raise LakerayError("load_splits needs an explicit gold version (training never reads 'latest' implicitly)")
    table = _table(path, int(version))
    if "split" not in table.metadata().partition_columns:
        raise LakerayError(f"{path} is not partitioned by 'split': is it a lakeray gold table?")
    frames = {}
    for name in splits:
        arrow = table.to_pyarrow_table(partitions=[("split", "=", name)], columns=columns)
        frames[name] = arrow.to_pandas()
    if frames.get("train") is not None and frames["train"].empty:
        raise LakerayError(f"{path}@{version} has no training rows")
    log.info("gold %s @ v%d: %s", path, version, {n: len(f) for n, f in frames.items()})
    return GoldSnapshot(path, int(version), frames)
