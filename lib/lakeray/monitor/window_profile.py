"""Profile metrics of a drift window (row count, nulls, mean, std, min, max, quantiles per column),
from the same mergeable counts as the drift statistics: no pass of their own.

Quantiles come from the fine bins (each about 1/1000 of the baseline's values): the value reported
for q is the mean of the fine bin where the cumulative share reaches q, so it is off by at most the
width of that bin. Stored in <lakehouse>/<pipeline>/monitor/window_profiles, one row per window,
segment and column.
"""

from __future__ import annotations

import numpy as np

from lakeray.monitor.profile import QUANTILES
from lakeray.monitor.window import NULL, WindowCounts

SCHEMA = ("run_id string, window_start timestamp, window_end timestamp, model_version string, segment_column string, "
          "segment_value string, column string, kind string, rows long, nulls long, null_rate double, mean double, "
          "std double, min double, max double, quantiles map<string,double>, distinct long, top string, top_share double")


def fine_quantiles(rows: np.ndarray, sums: np.ndarray, qs=QUANTILES) -> dict[str, float]:
    total = rows.sum()
    if not total:
        return {}
    cumulative = np.cumsum(rows) / total
    out = {}
    for q in qs:
        i = int(np.searchsorted(cumulative, q, side="left"))
        i = min(i, len(rows) - 1)
        out[str(q)] = float(sums[i] / rows[i]) if rows[i] else float("nan")
    return out


def column_metrics(name: str, kind: str, window: WindowCounts) -> dict:
    counts = window.counts.get(name, {})
    nulls = int(counts.get(NULL, 0))
    rows = int(sum(counts.values()))
    out = {"column": name, "kind": kind, "rows": rows, "nulls": nulls, "null_rate": nulls / rows if rows else None,
           "mean": None, "std": None, "min": None, "max": None, "quantiles": None, "distinct": None, "top": None,
           "top_share": None}
    if name in window.fine:
        n, s = window.fine[name]
        finite = float(n.sum())
        if finite:
            mean = float(s.sum() / finite)
            s2, lo, hi = window.moments.get(name, (float("nan"), None, None))
            variance = max(0.0, s2 / finite - mean * mean)
            out.update(mean=mean, std=float(np.sqrt(variance)), min=lo, max=hi, quantiles=fine_quantiles(n, s))
    else:
        present = {k: v for k, v in counts.items() if k != NULL}
        if present:
            top = max(present, key=present.get)
            out.update(distinct=len(present), top=top, top_share=present[top] / max(rows - nulls, 1))
    return out


def window_profile_rows(run_id: str, start, end, model_version: str, windows: dict[tuple[str, str], WindowCounts],
                        kinds: dict[str, str]) -> list[dict]:
    rows = []
    for (segment_column, segment_value), window in windows.items():
        for name, kind in kinds.items():
            rows.append({"run_id": run_id, "window_start": start, "window_end": end, "model_version": model_version,
                         "segment_column": segment_column or None, "segment_value": segment_value or None,
                         **column_metrics(name, kind, window)})
    return rows


def write_window_profiles(spark, path: str, rows: list[dict]) -> None:
    names = [field.split()[0] for field in SCHEMA.split(", ")]
    spark.createDataFrame([tuple(r[n] for n in names) for r in rows], SCHEMA).write.format("delta").mode("append").save(path)
