"""One pass over a drift window: every count the drift statistics need, from Spark's Python workers.

Each Spark task turns its Arrow batches into numpy arrays and counts, per profiled column:
  numeric      rows per baseline bin ([a, b) like the profile), nulls (NaN too), and rows and the sum
               of values per fine bin (FINE_BINS quantiles of the baseline's sample): the window's
               distribution to the resolution KS and Wasserstein need, so no sample pass is made
  categorical  rows per category text (the drift job's keys: booleans "True"/"False", integral
               floats without ".0") and nulls
The tasks' counts are summed by Spark (they are mergeable: counts of a union are sums of counts),
so the driver receives a few thousand rows whatever the window's size. The function the workers
run needs numpy and pyarrow only (it travels by value, so lakeray need not be installed there).
"""

from __future__ import annotations

import dataclasses

import numpy as np

NULL = "__null__"
ROWS = "__rows__"
FINE_BINS = 1000
OUTPUT = "c string, part string, k string, n long, s double"


@dataclasses.dataclass(frozen=True)
class WindowCounts:
    rows: int
    counts: dict[str, dict[str, int]]                    # bins or categories (and __null__) per column
    fine: dict[str, tuple[np.ndarray, np.ndarray]]     # numeric: (rows, sum of values) per fine bin


def fine_edges(profile: dict) -> np.ndarray:
    """Interior edges of the fine bins: quantiles of the baseline's sample (about as many baseline
    values in each), so a fine bin holds ~1/FINE_BINS of an unshifted window."""
    sample = np.asarray(profile.get("sample") or [], float)
    if not len(sample):
        return np.array([])
    return np.unique(np.quantile(sample, np.linspace(0, 1, FINE_BINS + 1)[1:-1]))


def _plan(profiles: dict[str, dict], columns: dict[str, str]) -> list[tuple]:
    return [(name, columns.get(name, name), p["kind"] == "numeric",
             np.asarray(p.get("edges", []), float), fine_edges(p) if p["kind"] == "numeric" else np.array([]))
            for name, p in profiles.items()]


def count_batches(batches, plan):
    """mapInArrow body: the counts of this task's rows, one Arrow batch out (see OUTPUT)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    acc: dict[str, list] = {}
    rows = 0

    def numbers(array):
        if pa.types.is_boolean(array.type):
            array = pc.cast(array, pa.int8())
        return pc.fill_null(pc.cast(array, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)

    def texts(array):
        if pa.types.is_boolean(array.type):
            return pc.if_else(array, "True", "False")
        if pa.types.is_floating(array.type):
            values = array.to_numpy(zero_copy_only=False)
            out = [None if v != v else str(int(v)) if abs(v) < 2 ** 53 and v == int(v) else str(v)
                   for v in values.tolist()]
            return pa.array(out, pa.string())
        return pc.cast(array, pa.string())

    for batch in batches:
        rows += batch.num_rows
        for name, column, numeric, edges, fine in plan:
            array = batch.column(column)
            if numeric:
                values = numbers(array)
                present = ~np.isnan(values)
                kept = values[present]
                finite = kept[np.isfinite(kept)]
                index = np.searchsorted(fine, finite, side="right")
                parts = acc.setdefault(name, [0, 0, 0.0, 0])
                parts[0] = parts[0] + np.bincount(np.searchsorted(edges, kept, side="right"), minlength=len(edges) + 1)
                parts[1] = parts[1] + np.bincount(index, minlength=len(fine) + 1)
                parts[2] = parts[2] + np.bincount(index, weights=finite, minlength=len(fine) + 1)
                parts[3] += int((~present).sum())
            else:
                found = pc.value_counts(texts(array))
                seen = acc.setdefault(name, [{}])[0]
                for value, n in zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True):
                    key = NULL if value is None else value
                    seen[key] = seen.get(key, 0) + n
    out: dict[str, list] = {"c": [ROWS], "part": ["rows"], "k": [""], "n": [rows], "s": [0.0]}

    def emit(c, part, k, n, s=0.0):
        out["c"].append(c)
        out["part"].append(part)
        out["k"].append(k)
        out["n"].append(int(n))
        out["s"].append(float(s))

    for name, parts in acc.items():
        if len(parts) == 4:
            for i, n in enumerate(np.asarray(parts[0]).tolist()):
                if n:
                    emit(name, "bin", str(i), n)
            emit(name, "bin", NULL, parts[3])
            for i in np.flatnonzero(np.asarray(parts[1])):
                emit(name, "fine", str(int(i)), parts[1][i], parts[2][i])
        else:
            for key, n in parts[0].items():
                emit(name, "bin", key, n)
    yield pa.RecordBatch.from_pydict(out, schema=pa.schema([("c", pa.string()), ("part", pa.string()), ("k", pa.string()),
                                                            ("n", pa.int64()), ("s", pa.float64())]))


def count_window(frame, profiles: dict[str, dict], columns: dict[str, str] | None = None) -> WindowCounts:
    """The counts of every profiled column over the Spark DataFrame `frame`, in one pass;
    `columns` maps a profile column to the window's column (e.g. __prediction__ -> prediction)."""
    from pyspark import cloudpickle
    from pyspark.sql import functions as F

    import lakeray.monitor.window as this

    cloudpickle.register_pickle_by_value(this)      # the workers get the code with the task
    columns = columns or {}
    plan = _plan(profiles, columns)
    needed = sorted({column for _, column, *_ in plan})
    summed = (frame.select(*[F.col(f"`{c}`") for c in needed])
              .mapInArrow(lambda batches: count_batches(batches, plan), OUTPUT)
              .groupBy("c", "part", "k").agg(F.sum("n").alias("n"), F.sum("s").alias("s")).collect())
    counts: dict[str, dict[str, int]] = {name: {} for name in profiles}
    fine = {name: (np.zeros(len(f) + 1), np.zeros(len(f) + 1)) for name, _, numeric, _, f in plan if numeric}
    rows = 0
    for r in summed:
        if r["part"] == "rows":
            rows = int(r["n"])
        elif r["part"] == "bin":
            if r["n"]:
                counts[r["c"]][r["k"]] = int(r["n"])
        else:
            fine[r["c"]][0][int(r["k"])] = r["n"]
            fine[r["c"]][1][int(r["k"])] = r["s"]
    return WindowCounts(rows, counts, fine)
