"""One pass over served rows: every count the drift statistics need, from Spark's Python workers.

Each Spark task turns its Arrow batches into numpy arrays and counts, per profiled column, per hour
of `ts` (when the plan has a time column) and per segment (the whole window, and each value of each
segment column), a partial profile:
  numeric      rows per baseline bin ([a, b) like the profile), nulls (NaN too), rows and the sum of
               values per fine bin (FINE_BINS quantiles of the baseline's sample: the resolution KS and
               Wasserstein need, so no sample pass is made), the sum of squares, min and max
  categorical  rows per category text (the drift job's keys: booleans "True"/"False", integral
               floats without ".0") and nulls
Partial profiles are mergeable (the counts of a union are the sums of the counts), so Spark merges
the tasks' partials per (hour, segment, column) for the profiles table (lakeray.monitor.profiles)
and per (segment, column) for a window, and the driver receives a few hundred rows whatever the
window's size. The workers get the rows either as Spark's scan hands them over (`partials`), or
read them from the Parquet files themselves with pyarrow (`file_partials`: no JVM-to-Arrow hand-off,
for a local log whose files need no Delta reader; lakeray.monitor.profiles decides). Each value's
bins come from one grid lookup (`binner`), not two binary searches. The functions the workers run
need numpy, pandas and pyarrow only (this module travels by value, so lakeray need not be
installed there).
"""

from __future__ import annotations

import dataclasses

import numpy as np

NULL = "__null__"
OTHER = "__other__"
ALL = ""                  # segment_column and segment_value of the whole window
FINE_BINS = 1000
HOUR_US = 3_600_000_000
NULL_HOUR = np.iinfo(np.int64).min // HOUR_US     # the hour key of a null ts
PARTIAL = ("h long, segment_column string, segment_value string, c string, rows long, nulls long, "
           "bins array<long>, fine_n array<long>, fine_s array<double>, cat_k array<string>, cat_n array<long>, "
           "s2 double, lo double, hi double")


@dataclasses.dataclass(frozen=True)
class WindowCounts:
    rows: int
    counts: dict[str, dict[str, int]]                    # bins or categories (and __null__) per column
    fine: dict[str, tuple[np.ndarray, np.ndarray]]     # numeric: (rows, sum of values) per fine bin
    moments: dict[str, tuple[float, float, float]] = dataclasses.field(default_factory=dict)  # numeric: sum of squares, min, max


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the workers count: (profile column, window column, numeric, bin edges, fine edges) per
    column, (segment column, window column, known values) per segment column, and the time column
    whose hour keys the partials (None: one group)."""
    columns: tuple
    segments: tuple = ()
    time: str | None = None

    @property
    def needed(self) -> list[str]:
        return sorted({c for _, c, *_ in self.columns} | {c for _, c, _ in self.segments} | ({self.time} if self.time else set()))


def fine_edges(profile: dict) -> np.ndarray:
    """Interior edges of the fine bins: quantiles of the baseline's sample (about as many baseline
    values in each), so a fine bin holds ~1/FINE_BINS of an unshifted window."""
    sample = np.asarray(profile.get("sample") or [], float)
    if not len(sample):
        return np.array([])
    return np.unique(np.quantile(sample, np.linspace(0, 1, FINE_BINS + 1)[1:-1]))


def make_plan(profiles: dict[str, dict], columns: dict[str, str] | None = None,
              segments: dict[str, list[str]] | None = None, time: str | None = None) -> Plan:
    """`columns` maps a profile column to the window's column (e.g. __prediction__ -> prediction);
    `segments` maps a segment column to its known values (the baseline's; others count as __other__)."""
    columns = columns or {}
    return Plan(tuple((name, columns.get(name, name), p["kind"] == "numeric", np.asarray(p.get("edges", []), float),
                       fine_edges(p) if p["kind"] == "numeric" else np.array([])) for name, p in profiles.items()),
                tuple((name, columns.get(name, name), tuple(values)) for name, values in (segments or {}).items()),
                time)


def _texts(array):
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(array.type):
        return pc.if_else(array, "True", "False")
    if pa.types.is_floating(array.type):
        values = array.to_numpy(zero_copy_only=False)
        return pa.array([None if v != v else str(int(v)) if abs(v) < 2 ** 53 and v == int(v) else str(v)
                         for v in values.tolist()], pa.string())
    return pc.cast(array, pa.string())


def _numbers(array):
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    return pc.fill_null(pc.cast(array, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def _codes(array):
    """(dictionary-encoded texts: code per row, nulls = len(keys); the keys)."""
    import pyarrow as pa

    encoded = _texts(array).dictionary_encode()
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    keys = encoded.dictionary.to_pylist()
    codes = encoded.indices.fill_null(len(keys)).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, keys


def _groupings(batch, plan: Plan):
    """[(segment column, [segment values], group of each row or -1)] for the whole window and each
    segment column; a group is hour * len(values) + value, its hour in the returned `hours`."""
    if plan.time:
        import pyarrow as pa

        ts = batch.column(plan.time)
        micros = ts.cast(pa.timestamp("us", getattr(ts.type, "tz", None))).cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
        hour = np.floor_divide(micros, HOUR_US)
        present = hour[hour != NULL_HOUR]
        low = int(present.min()) if len(present) else 0
        if len(present) and int(present.max()) - low < 4096 and len(present) == len(hour):   # a few hours: no sort
            hour_of = hour - low
            hours = np.arange(low, int(present.max()) + 1)
        else:
            hours, hour_of = np.unique(hour, return_inverse=True)
            hour_of = hour_of.astype(np.int64)
    else:
        hours, hour_of = np.array([0]), np.zeros(batch.num_rows, np.int64)
    out = [(ALL, [ALL], hour_of)]
    for name, column, known in plan.segments:
        codes, keys = _codes(batch.column(column))
        values = list(known)
        index = {v: i for i, v in enumerate(values)}
        other = index.get(OTHER, -1)
        lookup = np.array([index.get(k, other) for k in keys] + [index.get(NULL, other)], np.int64)
        value_of = lookup[codes]
        out.append((name, values, np.where(value_of >= 0, hour_of * len(values) + value_of, -1)))
    return hours, out


def binner(edges, fine, most: int = 8):
    """values -> (baseline bin, fine bin) of each value, as np.searchsorted(edges, values,
    side="right") and the same on `fine` give them (a NaN's bins are meaningless: the callers mask
    NaN out), without the two binary searches per value (~40 ns each on 1000 fine edges: most of
    the counting's time).
    The two edge lists are merged; a uniform grid of 8 cells per merged edge over their range gives
    each value a start no further than the edges of three cells from its place, and `k` steps of
    "the next edge is <= the value" (k the most edges within three cells) finish it exactly. Edges
    too few, or bunched so that three cells hold more than `most` of them (a long tail): searchsorted
    on the merged edges."""
    merged = np.concatenate([np.asarray(edges, float), np.asarray(fine, float)])
    order = np.argsort(merged, kind="stable")
    at = merged[order]
    coarse = order < len(edges)
    to_bin = np.concatenate([[0], np.cumsum(coarse)])       # merged index -> baseline bin
    to_fine = np.concatenate([[0], np.cumsum(~coarse)])     # merged index -> fine bin
    n = len(at)
    cells, grid = 8 * n, None
    with np.errstate(over="ignore"):
        span = at[-1] - at[0] if n else 0.0
        if n >= 16 and np.isfinite(span) and span > 0:
            scale = cells / span
            grid = at[0] + np.arange(-1, cells + 2) / scale
    if grid is not None and np.isfinite(grid).all():
        start = np.searchsorted(at, grid[:-3], side="left")            # edges < the left end of cell c - 1
        k = int((np.searchsorted(at, grid[3:], side="right") - start).max())   # ... <= the right end of c + 1
        if k <= most:
            start, padded, first = start.astype(np.int32), np.append(at, np.nan), at[0]   # NaN: never <= a value

            def index(values):
                with np.errstate(over="ignore", invalid="ignore"):     # inf and NaN are clamped below
                    pos = values - first
                    pos *= scale
                idx = np.take(start, np.fmin(np.fmax(pos, 0.0), cells - 1.0).astype(np.int32))   # fmax: NaN -> 0
                for _ in range(k):
                    idx += np.take(padded, idx) <= values
                return np.take(to_bin, idx), np.take(to_fine, idx)
            return index

    def index(values):
        idx = np.searchsorted(at, values, side="right")
        return np.take(to_bin, idx), np.take(to_fine, idx)
    return index


def _count_numeric(acc, key_of, groups, sizes, values):
    """Add one numeric column's counts per group to acc[key_of(grouping, group)] (see count_batches);
    min and max are kept for the whole window's groups (grouping 0) only."""
    bins, fine, index = sizes
    present = ~np.isnan(values)
    finite = np.isfinite(values)
    bin_index, fine_index = index(values)
    for grouping, n_groups, group in groups:
        if n_groups == 1 and group is None:          # one hour, no segment: no group arithmetic
            kept = values[finite]
            tables = (np.array([len(values)]), np.array([int((~present).sum())]),
                      np.bincount(bin_index[present], minlength=bins)[None, :],
                      np.bincount(fine_index[finite], minlength=fine)[None, :],
                      np.bincount(fine_index[finite], weights=kept, minlength=fine)[None, :], np.array([kept @ kept]))
        else:
            keep = group >= 0
            g_present, g_finite = present & keep, finite & keep
            flat = group[g_finite] * fine + fine_index[g_finite]
            tables = (np.bincount(group[keep], minlength=n_groups), np.bincount(group[keep & ~present], minlength=n_groups),
                      np.bincount(group[g_present] * bins + bin_index[g_present], minlength=n_groups * bins).reshape(n_groups, bins),
                      np.bincount(flat, minlength=n_groups * fine).reshape(n_groups, fine),
                      np.bincount(flat, weights=values[g_finite], minlength=n_groups * fine).reshape(n_groups, fine),
                      np.bincount(group[g_finite], weights=values[g_finite] ** 2, minlength=n_groups))
        rows, nulls, by_bin, fine_n, fine_s, s2 = tables
        for g in np.flatnonzero(rows):
            key = key_of(grouping, g)
            part = acc.get(key)
            if part is None:
                acc[key] = part = [0, 0, np.zeros(bins, np.int64), np.zeros(fine, np.int64), np.zeros(fine), 0.0, np.inf, -np.inf]
            part[0] += int(rows[g])
            part[1] += int(nulls[g])
            part[2] += by_bin[g]
            part[3] += fine_n[g]
            part[4] += fine_s[g]
            part[5] += float(s2[g])
            if grouping == 0 and fine_n[g].any():
                chosen = values[finite] if group is None else values[finite & (group == g)]
                part[6], part[7] = min(part[6], float(chosen.min())), max(part[7], float(chosen.max()))


def _count_categorical(acc, key_of, groups, codes, keys):
    width = len(keys) + 1                   # the last code is null
    for grouping, n_groups, group in groups:
        if group is None:
            table = np.bincount(codes, minlength=width)[None, :]
        else:
            keep = group >= 0
            table = np.bincount(group[keep] * width + codes[keep], minlength=n_groups * width).reshape(n_groups, width)
        for g in np.flatnonzero(table.sum(axis=1)):
            key = key_of(grouping, g)
            part = acc.get(key)
            if part is None:
                acc[key] = part = [0, 0, {}]
            part[0] += int(table[g].sum())
            part[1] += int(table[g, -1])
            seen = part[2]
            for i in np.flatnonzero(table[g, :-1]):
                seen[keys[i]] = seen.get(keys[i], 0) + int(table[g, i])


def count_batches(batches, plan: Plan):
    """mapInArrow body: this task's partial profiles, one Arrow batch out (see PARTIAL)."""
    acc: dict[tuple, list] = {}
    index = {name: binner(edges, fine) for name, _, numeric, edges, fine in plan.columns if numeric}
    for batch in batches:
        if not batch.num_rows:
            continue
        hours, groupings = _groupings(batch, plan)
        groups = [(i, len(hours) * len(values), None if i == 0 and len(hours) == 1 else group)
                  for i, (_, values, group) in enumerate(groupings)]
        for name, column, numeric, edges, fine in plan.columns:
            def key_of(i, g, name=name, hours=hours, groupings=groupings):
                segment, values, _ = groupings[i]
                hour = hours[g // len(values)]
                return (None if not plan.time or hour == NULL_HOUR else int(hour) * 3600, segment, values[g % len(values)], name)

            array = batch.column(column)
            if numeric:
                _count_numeric(acc, key_of, groups, (len(edges) + 1, len(fine) + 1, index[name]), _numbers(array))
            else:
                _count_categorical(acc, key_of, groups, *_codes(array))
    yield _partials_batch(acc)


def read_files(paths: list[str], plan: Plan, keep: tuple[str, str]):
    """Record batches of the plan's columns from local Parquet files (pyarrow), only the rows whose
    column keep[0] equals keep[1]; a column a file lacks (written before it was logged) is all
    null, as Spark's read of the table gives it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    missing_type = {c: pa.float64() if numeric else pa.string() for _, c, numeric, *_ in plan.columns}
    missing_type.update({c: pa.string() for _, c, _ in plan.segments})
    if plan.time:
        missing_type[plan.time] = pa.timestamp("us", tz="UTC")
    column, value = keep
    for path in paths:
        parquet = pq.ParquetFile(path)
        names = set(parquet.schema_arrow.names)
        if column not in names:
            continue                                    # no row of the run (Spark: null = value is not true)
        have = [c for c in plan.needed if c in names]
        for batch in parquet.iter_batches(batch_size=65_536, columns=sorted({*have, column}), use_threads=False):
            batch = pa.RecordBatch.from_pydict({c: _plain(batch.column(c)) for c in batch.schema.names})
            batch = batch.filter(pc.equal(batch.column(column), value))       # nulls dropped
            if batch.num_rows:
                yield pa.RecordBatch.from_pydict({c: batch.column(c) if c in names else pa.nulls(batch.num_rows, missing_type[c])
                                                  for c in plan.needed})


def _plain(array):
    """Text columns as plain Arrow strings (delta-rs writes string_view, which few kernels take)."""
    import pyarrow as pa

    if pa.types.is_string_view(array.type) or pa.types.is_large_string(array.type):
        return array.cast(pa.string())
    return array


def count_files(ids, plan: Plan, groups: list[list[str]], keep: tuple[str, str]):
    """mapInArrow body over spark.range(len(groups)): the partial profiles of each group's files."""
    paths = [path for batch in ids for i in batch.column(0).to_pylist() for path in groups[i]]
    yield from count_batches(read_files(paths, plan, keep), plan)


def _partials_batch(acc: dict):
    import pyarrow as pa

    out = {k: [] for k in ("h", "segment_column", "segment_value", "c", "rows", "nulls", "bins", "fine_n", "fine_s",
                           "cat_k", "cat_n", "s2", "lo", "hi")}
    for (h, seg_column, seg_value, c), part in acc.items():
        numeric = len(part) > 3
        row = {"h": h, "segment_column": seg_column, "segment_value": seg_value, "c": c, "rows": part[0], "nulls": part[1],
               "bins": part[2].tolist() if numeric else [], "fine_n": part[3].tolist() if numeric else [],
               "fine_s": part[4].tolist() if numeric else [], "cat_k": [] if numeric else list(part[2]),
               "cat_n": [] if numeric else list(part[2].values()), "s2": part[5] if numeric else 0.0,
               "lo": part[6] if numeric and np.isfinite(part[6]) else None,
               "hi": part[7] if numeric and np.isfinite(part[7]) else None}
        for k, v in row.items():
            out[k].append(v)
    return pa.RecordBatch.from_pydict(out, schema=partial_schema())


def partial_schema():
    import pyarrow as pa

    return pa.schema([("h", pa.int64()), ("segment_column", pa.string()), ("segment_value", pa.string()), ("c", pa.string()),
                      ("rows", pa.int64()), ("nulls", pa.int64()), ("bins", pa.list_(pa.int64())),
                      ("fine_n", pa.list_(pa.int64())), ("fine_s", pa.list_(pa.float64())), ("cat_k", pa.list_(pa.string())),
                      ("cat_n", pa.list_(pa.int64())), ("s2", pa.float64()), ("lo", pa.float64()), ("hi", pa.float64())])


def merge_partials(frame):
    """applyInPandas body: the partials of one group (same hour or window, segment, column) summed."""
    import pandas as pd

    first = frame.iloc[0]
    numeric = len(first["fine_n"]) > 0 or len(first["bins"]) > 0
    cats: dict = {}
    if not numeric:
        for keys, counts in zip(frame["cat_k"], frame["cat_n"], strict=True):
            for k, n in zip(keys, counts, strict=True):
                cats[k] = cats.get(k, 0) + int(n)

    def summed(column, dtype):
        return np.sum(np.stack([np.asarray(v, dtype) for v in frame[column]]), axis=0).tolist() if numeric else []

    return pd.DataFrame([{
        "h": frame["h"].min() if frame["h"].notna().any() else None, "segment_column": first["segment_column"],
        "segment_value": first["segment_value"], "c": first["c"], "rows": int(frame["rows"].sum()),
        "nulls": int(frame["nulls"].sum()), "bins": summed("bins", np.int64), "fine_n": summed("fine_n", np.int64),
        "fine_s": summed("fine_s", float), "cat_k": list(cats), "cat_n": list(cats.values()), "s2": float(frame["s2"].sum()),
        "lo": frame["lo"].min() if frame["lo"].notna().any() else None,
        "hi": frame["hi"].max() if frame["hi"].notna().any() else None}])


def merged_here(frame, keys: list[str]) -> list[tuple[tuple, dict]]:
    """Partials (a pandas frame) merged per `keys` on the driver: [(key values, merged row)]; for a
    few hundred partials, where a shuffle and a Python worker would cost more than the merge."""
    return [(key if isinstance(key, tuple) else (key,), merge_partials(group).to_dict("records")[0])
            for key, group in frame.groupby(keys, sort=False, dropna=False)]


def register_workers() -> None:
    """The workers get this module's code with the task (lakeray need not be installed there)."""
    from pyspark import cloudpickle

    import lakeray.monitor.window as this

    cloudpickle.register_pickle_by_value(this)


def partials(frame, plan: Plan):
    """The Spark DataFrame of per-task partial profiles of `frame` (PARTIAL)."""
    from pyspark.sql import functions as F

    register_workers()
    return frame.select(*[F.col(f"`{c}`") for c in plan.needed]).mapInArrow(lambda batches: count_batches(batches, plan), PARTIAL)


def file_partials(spark, files: dict[str, int], plan: Plan, keep: tuple[str, str]):
    """The Spark DataFrame of partial profiles of local Parquet `files` ({path: bytes}), read by
    pyarrow in Spark's Python workers: the rows never pass through the JVM (the Arrow hand-off of a
    Spark scan costs twice the scan), in as many tasks as the session has cores, the files spread
    over them by size."""
    register_workers()
    groups: list[list[str]] = [[] for _ in range(max(1, min(len(files), spark.sparkContext.defaultParallelism)))]
    load = [0] * len(groups)
    for path, size in sorted(files.items(), key=lambda f: -f[1]):
        lightest = load.index(min(load))
        groups[lightest].append(path)
        load[lightest] += size
    return spark.range(len(groups), numPartitions=len(groups)).mapInArrow(
        lambda ids: count_files(ids, plan, groups, keep), PARTIAL)


def merged(partial_frame, keys: list[str]):
    """Partials merged per `keys` (Spark)."""
    register_workers()
    return partial_frame.groupBy(*keys).applyInPandas(merge_partials, PARTIAL)


def window_of(rows, plan: Plan) -> dict[tuple[str, str], WindowCounts]:
    """{(segment column, segment value): WindowCounts} from merged rows (dicts or Rows)."""
    kinds = {name: (numeric, len(edges) + 1, len(fine) + 1) for name, _, numeric, edges, fine in plan.columns}
    out: dict[tuple, dict] = {}
    for r in rows:
        key = (r["segment_column"], r["segment_value"])
        entry = out.setdefault(key, {"rows": 0, "counts": {}, "fine": {}, "moments": {}})
        name = r["c"]
        if name not in kinds:
            continue
        numeric, bins, fine = kinds[name]
        entry["rows"] = max(entry["rows"], int(r["rows"]))
        if numeric:
            entry["counts"][name] = {str(i): int(n) for i, n in enumerate(r["bins"]) if n}
            entry["fine"][name] = (np.asarray(r["fine_n"], float), np.asarray(r["fine_s"], float))
            entry["moments"][name] = (float(r["s2"]), _number(r["lo"]), _number(r["hi"]))
        else:
            entry["counts"][name] = {k: int(n) for k, n in zip(r["cat_k"], r["cat_n"], strict=True) if n}
        if r["nulls"]:
            entry["counts"][name][NULL] = int(r["nulls"])
    windows = {}
    for key, e in out.items():
        counts = {name: e["counts"].get(name, {}) for name in kinds}
        fine = {name: e["fine"].get(name, (np.zeros(f), np.zeros(f))) for name, (numeric, _, f) in kinds.items() if numeric}
        windows[key] = WindowCounts(e["rows"], counts, fine, e["moments"])
    return windows


def _number(value) -> float | None:
    return None if value is None or value != value else float(value)


def empty_window(plan: Plan) -> WindowCounts:
    return window_of([], plan).get((ALL, ALL)) or WindowCounts(0, {name: {} for name, *_ in plan.columns},
                                                                 {name: (np.zeros(len(f) + 1), np.zeros(len(f) + 1))
                                                                  for name, _, numeric, _, f in plan.columns if numeric})


def count_windows(frame, plan: Plan) -> dict[tuple[str, str], WindowCounts]:
    """The counts of every planned column over the Spark DataFrame `frame`, per segment, in one pass."""
    rows = merged(partials(frame, plan), ["segment_column", "segment_value", "c"]).collect()
    return window_of(rows, plan)


def count_window(frame, profiles: dict[str, dict], columns: dict[str, str] | None = None) -> WindowCounts:
    """The counts of every profiled column over the whole of `frame`, in one pass; `columns` maps a
    profile column to the window's column (e.g. __prediction__ -> prediction)."""
    plan = make_plan(profiles, columns)
    return count_windows(frame, plan).get((ALL, ALL)) or empty_window(plan)
