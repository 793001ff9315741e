"""Drift of a window of served traffic against the training baseline profile (Spark).

One pass over the window counts, per column, the rows in each of the baseline's fixed bins
(numeric; same [a, b) convention as the profile) or per category, plus nulls; a seeded sample
of the window gives KS and Wasserstein. Each statistic is compared with its threshold from
conf (`drift.thresholds.<kind>.<statistic>`); a column drifts when any of its configured tests
(`drift.tests.<kind>`) passes its threshold.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from lakeray.features.preprocess import OTHER
from lakeray.monitor import stats
from lakeray.monitor.profile import PREDICTION

log = logging.getLogger(__name__)
NULL = "__null__"


@dataclasses.dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    statistics: dict[str, float]
    thresholds: dict[str, float]
    drifted_by: tuple[str, ...]
    current_rows: int
    current_null_rate: float

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_by)


def _key(frame, name: str, profile: dict):
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DecimalType, DoubleType, FloatType, NumericType

    col = F.col(f"`{name}`")
    dtype = frame.schema[name].dataType
    if profile["kind"] == "numeric":
        if not isinstance(dtype, NumericType):
            col = col.cast("double")
        missing = col.isNull() | F.isnan(col.cast("double"))
        bin_expr = sum((F.when(col >= F.lit(float(edge)), 1).otherwise(0) for edge in profile["edges"]), F.lit(0))
        return F.when(missing, F.lit(NULL)).otherwise(bin_expr.cast("string"))
    if isinstance(dtype, BooleanType):   # the profile saw pandas' "True"/"False"
        return F.when(col.isNull(), F.lit(NULL)).when(col, F.lit("True")).otherwise(F.lit("False"))
    if isinstance(dtype, (DoubleType, FloatType, DecimalType)):   # the model's keys: an integral 1.0 is "1"
        integral = (col == F.floor(col)) & (F.abs(col) < F.lit(2.0 ** 53))
        text = F.when(integral, col.cast("bigint").cast("string")).otherwise(col.cast("string"))
        return F.when(col.isNull() | F.isnan(col.cast("double")), F.lit(NULL)).otherwise(text)
    return F.coalesce(col.cast("string"), F.lit(NULL))


def window_counts(frame, profiles: dict[str, dict], columns: dict[str, str]) -> dict[str, dict[str, int]]:
    """{profile column: {bin index or category or __null__: rows}} in one Spark job.
    `columns` maps a profile column to the window's column (e.g. __prediction__ -> prediction)."""
    from pyspark.sql import functions as F

    pairs = [F.struct(F.lit(name).alias("c"), _key(frame, columns.get(name, name), profiles[name]).alias("k"))
             for name in profiles]
    rows = frame.select(F.explode(F.array(*pairs)).alias("p")).groupBy("p.c", "p.k").count().collect()
    out: dict[str, dict[str, int]] = {name: {} for name in profiles}
    for row in rows:
        out[row["c"]][row["k"]] = int(row["count"])
    return out


def window_sample(frame, columns: list[str], size: int, seed: int = 0, total: int | None = None):
    """Up to about `size` rows of the numeric columns, as pandas (for KS and Wasserstein);
    `total`: the window's row count when the caller has it (saves a pass)."""
    total = frame.count() if total is None else total
    fraction = 1.0 if total <= size else size / total
    picked = frame if fraction >= 1 else frame.sample(withReplacement=False, fraction=fraction, seed=seed)
    return picked.select(*[f"`{c}`" for c in columns]).toPandas(), total


def category_keys(profile: dict, counts: dict[str, int]) -> list[str]:
    """The categories compared for a categorical column: the baseline's, __other__ and any new
    ones in the window (nulls apart), in the order aligned_counts and the report's plots use."""
    return sorted(set(profile["frequencies"]) | {OTHER} | {key for key in counts if key != NULL})


def aligned_counts(profile: dict, counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    if profile["kind"] == "numeric":
        k = len(profile["edges"]) + 1
        return np.asarray(profile["counts"], float), np.array([counts.get(str(i), 0) for i in range(k)], float)
    base = dict(profile["frequencies"])
    base[OTHER] = profile.get(OTHER, 0)
    keys = category_keys(profile, counts)
    return np.array([base.get(key, 0) for key in keys], float), np.array([counts.get(key, 0) for key in keys], float)


def column_drift(name: str, profile: dict, counts: dict[str, int], sample: np.ndarray | None, conf: dict) -> ColumnDrift:
    kind = "prediction" if name == PREDICTION else profile["kind"]
    expected, actual = aligned_counts(profile, counts)
    values = {"psi": stats.psi(expected, actual), "js": stats.js_distance(expected, actual)}
    if profile["kind"] == "numeric":
        base_sample = np.asarray(profile["sample"], float)
        current = sample[np.isfinite(sample)] if sample is not None else np.array([])
        values["ks"] = stats.ks(base_sample, current)
        scale = profile.get("std") or 1.0
        values["wasserstein"] = stats.wasserstein(base_sample, current) / scale   # in training standard deviations
    else:
        statistic, p_value = stats.chi_squared(expected, actual)
        values["chi2"], values["chi2_p"] = statistic, p_value
    thresholds = dict((conf.get("thresholds") or {}).get(kind, {}))
    tests = tuple((conf.get("tests") or {}).get(kind, ()))
    drifted = tuple(t for t in tests if t in values and t in thresholds and
                    (values[t] < thresholds[t] if t.endswith("_p") else values[t] > thresholds[t]))
    rows = int(actual.sum()) + counts.get(NULL, 0)
    return ColumnDrift(name, kind, values, thresholds, drifted, rows, counts.get(NULL, 0) / rows if rows else 0.0)


def compute_drift(frame, profiles: dict[str, dict], conf: dict, columns: dict[str, str] | None = None,
                  counts: dict[str, dict[str, int]] | None = None, total: int | None = None) -> list[ColumnDrift]:
    """Drift of every profiled column for the window `frame` (a Spark DataFrame); pass `counts`
    (window_counts) and `total` (its row count) when the caller has them, to save passes over the window."""
    columns = columns or {}
    counts = counts if counts is not None else window_counts(frame, profiles, columns)
    numeric = [n for n, p in profiles.items() if p["kind"] == "numeric"]
    sample, total = window_sample(frame, [columns.get(n, n) for n in numeric], int(conf.get("sample_size", 100_000)),
                                  int(conf.get("seed", 0)), total)
    results = []
    for name, profile in profiles.items():
        values = None
        if profile["kind"] == "numeric":
            values = sample[columns.get(name, name)].astype(float).to_numpy()
        results.append(column_drift(name, profile, counts[name], values, conf))
    log.info("drift over %d row(s): %s", total, ", ".join(r.column for r in results if r.drifted) or "none")
    return results
