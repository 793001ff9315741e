"""The training-time baseline profile that drift is measured against.

Per feature (raw values, before preprocessing) and for the model's prediction:
  numeric      fixed bin edges (training deciles; the outer bins are open-ended), counts per
               bin, quantiles, mean, std, null rate, and a seeded sample of values (for KS and
               Wasserstein, which need values rather than bins)
  categorical  counts per category (the top 1000; the rest under __other__), null rate
Bins are left-closed, [a, b), like Spark's Bucketizer, so the drift job's counts line up.
Stored in a Delta table (<lakehouse>/<pipeline>/monitor/baseline_profiles), one row per
column, keyed by the train run id (which the registered model version points at).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pandas as pd

from lakeray.features.preprocess import OTHER
from lakeray.features.values import category_keys, missing_mask

log = logging.getLogger(__name__)
PREDICTION = "__prediction__"
NULL_KEY = "__null__"          # a segment of the rows whose segment column is missing
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin of each value for interior `edges` (k edges -> k + 1 bins, [a, b) like Bucketizer)."""
    return np.searchsorted(np.asarray(edges, float), values, side="right")


def numeric_profile(values, bins: int = 10, sample_size: int = 5000, seed: int = 0, edges: list[float] | None = None) -> dict:
    """`edges`: the bins to count in (a segment's profile uses the whole column's, so one pass over
    a window counts every segment); by default the deciles of these values."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if edges is None:
        edges = sorted(set(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]).tolist())) if len(finite) else []
    counts = np.bincount(bin_index(finite, edges), minlength=len(edges) + 1)
    rng = np.random.default_rng(seed)
    sample = finite if len(finite) <= sample_size else rng.choice(finite, sample_size, replace=False)
    return {"kind": "numeric", "count": int(len(values)), "null_rate": float(1 - len(finite) / max(len(values), 1)),
            "edges": edges, "counts": counts.tolist(),
            "quantiles": {str(q): float(np.quantile(finite, q)) for q in QUANTILES} if len(finite) else {},
            "mean": float(finite.mean()) if len(finite) else None, "std": float(finite.std()) if len(finite) else None,
            "sample": sorted(float(v) for v in sample)}


def categorical_profile(values, top: int = 1000) -> dict:
    """Counts per category key: the model's canonical keys (1, 1.0 and Int64 1 are all "1"), the
    ones the drift job's Spark counts use too. The `top` most frequent are kept, the rest summed
    under __other__ (the drift job then counts unknown categories there: it cannot tell a new one
    from one of the tail)."""
    series = pd.Series(values)
    keys = category_keys(series)
    present = pd.Series(keys[~missing_mask(keys)], dtype=object)
    counts = present.value_counts()
    kept = counts.iloc[:top]
    return {"kind": "categorical", "count": int(len(series)), "null_rate": float(1 - len(present) / max(len(series), 1)),
            "frequencies": {str(k): int(v) for k, v in kept.items()}, OTHER: int(counts.iloc[top:].sum())}


def build_profile(frame: pd.DataFrame, features: dict[str, str], predictions: np.ndarray | None = None,
                  bins: int = 10, sample_size: int = 5000, seed: int = 0) -> dict[str, dict]:
    """Profiles of the raw feature columns (booleans as categories) and of the prediction."""
    out = {}
    for name, kind in features.items():
        if kind == "numeric":
            out[name] = numeric_profile(frame[name], bins, sample_size, seed)
        else:
            out[name] = categorical_profile(frame[name])
    if predictions is not None:
        scores = np.asarray(predictions)
        out[PREDICTION] = numeric_profile(scores if scores.ndim == 1 else scores.argmax(axis=1), bins, sample_size, seed)
    return out


def segment_keys(values, top: int) -> tuple[np.ndarray, list[str]]:
    """(each row's segment: its category key, __null__ or __other__; the segments in order of size).
    The `top` most frequent keys are segments of their own, the rest one __other__ segment."""
    keys = category_keys(pd.Series(values))
    keys = np.where(missing_mask(keys), NULL_KEY, keys).astype(object)
    counts = pd.Series(keys).value_counts()
    kept = [str(k) for k in counts.index[:top]]
    keys = np.where(np.isin(keys, kept), keys, OTHER).astype(object)
    return keys, kept + ([OTHER] if len(counts) > top else [])


def build_segment_profiles(frame: pd.DataFrame, features: dict[str, str], overall: dict[str, dict], segments: list[str],
                           predictions: np.ndarray | None = None, top: int = 20, sample_size: int = 5000,
                           seed: int = 0) -> dict[tuple[str, str], dict[str, dict]]:
    """{(segment column, value): profiles of that value's training rows}; numeric columns counted in
    the whole column's bins (`overall`'s edges)."""
    out = {}
    for column in segments:
        keys, values = segment_keys(frame[column], top)
        for value in values:
            rows = keys == value
            sub = {}
            for name, kind in features.items():
                sub[name] = (numeric_profile(frame[name][rows], sample_size=sample_size, seed=seed, edges=overall[name]["edges"])
                             if kind == "numeric" else categorical_profile(frame[name][rows]))
            if predictions is not None and PREDICTION in overall:
                scores = np.asarray(predictions)
                scores = scores if scores.ndim == 1 else scores.argmax(axis=1)
                sub[PREDICTION] = numeric_profile(scores[rows], sample_size=sample_size, seed=seed, edges=overall[PREDICTION]["edges"])
            out[(column, value)] = sub
    return out


def write_profile(path: str, profile: dict[str, dict], *, train_run_id: str, model_sha256: str, pipeline: str,
                  segments: dict[tuple[str, str], dict[str, dict]] | None = None) -> int:
    """Append the profile (one row per column; and per segment value, `segments`) to the Delta table
    at `path`; returns its version. segment_column and segment_value are null for the whole set."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    created = dt.datetime.now(dt.timezone.utc)
    rows = [{"pipeline": pipeline, "train_run_id": train_run_id, "model_sha256": model_sha256, "column": column,
             "kind": p["kind"], "profile": json.dumps(p, sort_keys=True), "created_at": created,
             "segment_column": segment[0] if segment else None, "segment_value": segment[1] if segment else None}
            for segment, profiles in [(None, profile), *(segments or {}).items()] for column, p in profiles.items()]
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("pipeline", pa.string()), ("train_run_id", pa.string()), ("model_sha256", pa.string()),
        ("column", pa.string()), ("kind", pa.string()), ("profile", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")), ("segment_column", pa.string()), ("segment_value", pa.string())]))
    write_deltalake(path, table, mode="append", schema_mode="merge")
    version = DeltaTable(path).version()
    log.info("baseline profile of %d column(s) for train run %s -> %s @ v%d", len(rows), train_run_id, path, version)
    return version


def _profile_rows(path: str, train_run_id: str) -> pd.DataFrame:
    from deltalake import DeltaTable

    from lakeray.errors import LakerayError

    try:
        frame = DeltaTable(path).to_pandas(filters=[("train_run_id", "=", train_run_id)])
    except Exception as exc:
        raise LakerayError(f"no baseline profile table at {path}: train a model first ({exc})") from None
    if frame.empty:
        raise LakerayError(f"{path} has no baseline profile for train run {train_run_id}")
    if "segment_column" not in frame:                  # written before profiles had segments
        frame["segment_column"] = frame["segment_value"] = None
    return frame


def read_profile(path: str, train_run_id: str) -> dict[str, dict]:
    frame = _profile_rows(path, train_run_id)
    return {row.column: json.loads(row.profile) for row in frame[frame["segment_column"].isna()].itertuples()}


def read_segment_profiles(path: str, train_run_id: str) -> dict[tuple[str, str], dict[str, dict]]:
    """{(segment column, value): {column: profile}}; empty for a model trained before segments."""
    frame = _profile_rows(path, train_run_id)
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for row in frame[frame["segment_column"].notna()].itertuples():
        out.setdefault((row.segment_column, row.segment_value), {})[row.column] = json.loads(row.profile)
    return out
