"""Out-of-core batch scoring with Dask over the Parquet files of a pinned Delta version.

Only the files of the requested split are read (partition values from the Delta log), a
partition at a time; each partition goes through the bundle's fitted preprocessing and
booster, and only (label, score, sensitive attributes) come back to the driver. On a Ray
cluster the Dask graph runs on Ray (ray.util.dask.ray_dask_get); otherwise on Dask's threads.
"""

from __future__ import annotations

import logging
import posixpath
from urllib.parse import unquote

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.evaluate.metrics import group_labels
from lakeray.lakehouse.delta import raw_read_blockers

log = logging.getLogger(__name__)


def split_files(table_path: str, version: int, split: str) -> list[str]:
    """Absolute Parquet paths of one split at one version (refuses tables a raw read would misread)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    table = DeltaTable(table_path, version=int(version))
    blockers = raw_read_blockers(table)
    if blockers:
        raise LakerayError(f"{table_path}@{version} uses Delta reader feature(s) {blockers}: "
                           "its Parquet files cannot be scored directly")
    actions = pa.table(table.get_add_actions(flatten=True))
    paths, splits = actions.column("path").to_pylist(), actions.column("partition.split").to_pylist()
    files = []
    for path, value in zip(paths, splits, strict=True):
        if value == split:
            path = unquote(path)
            files.append(path if "://" in path or path.startswith("/") else posixpath.join(table_path, path))
    if not files:
        raise LakerayError(f"{table_path}@{version} has no '{split}' rows")
    return files


def _score_partition(frame: pd.DataFrame, scorers: dict, target_encoder, target: str, keep: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({"label": target_encoder.transform(frame[target])}, index=frame.index)
    # multiclass: one column per class, also for the empty frame Dask takes the columns from (a
    # booster's prediction of no rows has no class axis)
    width = len(target_encoder.classes) if target_encoder.task == "multiclass" else 0
    for name, scorer in scorers.items():
        scores = np.asarray(scorer(frame))
        if width:
            scores = scores.reshape(len(frame), width)
        if scores.ndim == 2:
            for k in range(scores.shape[1]):
                out[f"{name}__{k}"] = scores[:, k]
        else:
            out[name] = scores
    for column in keep:   # group names: one "(missing)" for None, NaN and pd.NA alike
        out[column] = group_labels(frame[column])
    return out


def score_files(scorers: dict, files: list[str], *, feature_columns: list[str], target_encoder, target: str,
                keep: list[str], blocksize: str = "64MiB", use_ray: bool = False) -> pd.DataFrame:
    """Score the files with every scorer (name -> frame -> scores) in one out-of-core pass."""
    import dask.dataframe as dd

    columns = sorted(set(feature_columns) | {target} | set(keep))
    ddf = dd.read_parquet(files, columns=columns, blocksize=blocksize)
    meta = _score_partition(ddf._meta, scorers, target_encoder, target, keep)   # the empty frame Dask carries
    scored = ddf.map_partitions(_score_partition, scorers, target_encoder, target, keep, meta=meta)
    scheduler = None
    if use_ray:
        from ray.util.dask import ray_dask_get

        scheduler = ray_dask_get
    log.info("scoring %d file(s) in %d Dask partition(s)%s with %s", len(files), scored.npartitions,
             " on Ray" if use_ray else "", ", ".join(scorers))
    return scored.compute(scheduler=scheduler)


def scores_of(scored: pd.DataFrame, name: str) -> np.ndarray:
    if name in scored:
        return scored[name].to_numpy()
    return scored[[c for c in scored.columns if c.startswith(f"{name}__")]].to_numpy()
