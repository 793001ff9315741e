"""Drift of a window of served traffic against the training baseline profile (Spark).

One pass over the window (lakeray.monitor.window) counts, per column, the rows in each of the
baseline's fixed bins (numeric; same [a, b) convention as the profile) or per category, plus nulls,
and per numeric column the rows and sum of values in fine bins, from which KS and Wasserstein
against the baseline's sample are computed (off by at most the largest fine bin's share of the
window, about 0.001 for an unshifted column; the tests hold them to scipy's exact values on the
raw window within 0.01). Each statistic is compared with its threshold from
conf (`drift.thresholds.<kind>.<statistic>`); a column drifts when any of its configured tests
(`drift.tests.<kind>`) passes its threshold. Alarms a user can trust on large windows:
  - nulls are a category of their own in every categorical statistic, and `null_rate` (the absolute
    change of a column's null rate) is a test of its own: a column that goes all-null drifts by it;
  - a p-value (chi2_p) alarms only where the column's effect sizes reach `drift.effect_floor` (a
    significant but negligible shift is what any large window shows), and after a correction for
    testing many columns at once (`drift.p_value_correction`: holm, bonferroni or none).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from lakeray.features.preprocess import OTHER
from lakeray.monitor import stats
from lakeray.monitor.profile import PREDICTION
from lakeray.monitor.window import NULL, WindowCounts, count_window

log = logging.getLogger(__name__)


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


def window_counts(frame, profiles: dict[str, dict], columns: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
    """{profile column: {bin index or category or __null__: rows}} in one pass (lakeray.monitor.window).
    `columns` maps a profile column to the window's column (e.g. __prediction__ -> prediction)."""
    return count_window(frame, profiles, columns).counts


def baseline_nulls(profile: dict) -> int:
    return int(round(profile.get("count", 0) * profile.get("null_rate", 0.0)))


def window_categories(profile: dict, counts: dict[str, int]) -> dict[str, int]:
    """The window's counts per category as the profile can compare them. A profile that kept only its
    top categories (its __other__ holds the tail) cannot tell a new category from one of its tail, so
    every category it did not keep counts under __other__; a complete profile keeps new ones apart."""
    if not profile.get(OTHER):
        return counts
    kept = set(profile["frequencies"]) | {NULL}
    out = {key: n for key, n in counts.items() if key in kept}
    out[OTHER] = out.get(OTHER, 0) + sum(n for key, n in counts.items() if key not in kept)
    return out


def category_keys(profile: dict, counts: dict[str, int]) -> list[str]:
    """The categories compared for a categorical column: the baseline's, __other__, any new ones in
    the window, and __null__ last when either side has nulls; the order aligned_counts and the
    report's plots use."""
    counts = window_categories(profile, counts)
    keys = sorted(set(profile["frequencies"]) | {OTHER} | {key for key in counts if key != NULL})
    return keys + [NULL] if counts.get(NULL) or baseline_nulls(profile) else keys


def aligned_counts(profile: dict, counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    if profile["kind"] == "numeric":
        k = len(profile["edges"]) + 1
        return np.asarray(profile["counts"], float), np.array([counts.get(str(i), 0) for i in range(k)], float)
    base = dict(profile["frequencies"])
    base[OTHER] = profile.get(OTHER, 0)
    base[NULL] = baseline_nulls(profile)
    keys = category_keys(profile, counts)
    counts = window_categories(profile, counts)
    return np.array([base.get(key, 0) for key in keys], float), np.array([counts.get(key, 0) for key in keys], float)


def adjusted_p_values(p_values: dict, method: str) -> dict:
    """p-values corrected for testing several columns at once: holm (step-down, controls the
    family-wise error like bonferroni but rejects more), bonferroni, or none."""
    m = len(p_values)
    if method == "none" or m <= 1:
        return dict(p_values)
    if method == "bonferroni":
        return {k: min(1.0, p * m) for k, p in p_values.items()}
    if method != "holm":
        raise ValueError(f"drift.p_value_correction: expected holm, bonferroni or none, not {method!r}")
    out, running = {}, 0.0
    for i, (k, p) in enumerate(sorted(p_values.items(), key=lambda kv: kv[1])):
        running = max(running, min(1.0, (m - i) * p))      # monotone: a larger p never gets a smaller value
        out[k] = running
    return out


def _passes(name: str, value: float, threshold: float) -> bool:
    return value < threshold if name.endswith("_p") else value > threshold


def _verdicts(results: list[ColumnDrift], conf: dict) -> list[ColumnDrift]:
    """Which tests each column fails: effect sizes against their thresholds; p-values corrected across
    the columns that run a p-value test, and counted only where the effect floor is reached."""
    floor = {k: float(v) for k, v in (conf.get("effect_floor") or {}).items()}
    method = str(conf.get("p_value_correction", "holm"))
    tests = {r.column: tuple((conf.get("tests") or {}).get(r.kind, ())) for r in results}
    raw = {(r.column, t): r.statistics[t] for r in results for t in tests[r.column]
           if t.endswith("_p") and t in r.statistics}
    adjusted = adjusted_p_values(raw, method)
    out = []
    for r in results:
        failed = []
        for t in tests[r.column]:
            if t not in r.statistics or t not in r.thresholds:
                continue
            if t.endswith("_p"):
                material = all(r.statistics.get(k, 0.0) >= v for k, v in floor.items() if k in r.statistics)
                if material and _passes(t, adjusted[(r.column, t)], r.thresholds[t]):
                    failed.append(t)
            elif _passes(t, r.statistics[t], r.thresholds[t]):
                failed.append(t)
        extra = {f"{t}_adjusted": adjusted[(r.column, t)] for t in tests[r.column] if (r.column, t) in adjusted}
        out.append(dataclasses.replace(r, statistics={**r.statistics, **extra}, drifted_by=tuple(failed)))
    return out


def column_drift(name: str, profile: dict, counts: dict[str, int], fine: tuple[np.ndarray, np.ndarray] | None,
                 conf: dict) -> ColumnDrift:
    """One column's statistics and verdict; `fine`: the window's (rows, sum of values) per fine bin."""
    kind = "prediction" if name == PREDICTION else profile["kind"]
    expected, actual = aligned_counts(profile, counts)
    values = {"psi": stats.psi(expected, actual), "js": stats.js_distance(expected, actual)}
    if profile["kind"] == "numeric" and "sample" in profile:       # a previous window has no sample: no KS, Wasserstein
        base_sample = np.asarray(profile["sample"], float)
        rows, sums = fine if fine is not None else (np.array([]), np.array([]))
        means = np.divide(sums, rows, out=np.zeros_like(sums, dtype=float), where=rows > 0)
        values["ks"] = stats.ks_weighted(base_sample, means, rows)
        scale = profile.get("std") or 1.0
        values["wasserstein"] = stats.wasserstein_weighted(base_sample, means, rows) / scale   # in training std
    elif profile["kind"] != "numeric":
        statistic, p_value = stats.chi_squared(expected, actual)
        values["chi2"], values["chi2_p"] = statistic, p_value
    thresholds = dict((conf.get("thresholds") or {}).get(kind, {}))
    nulls = counts.get(NULL, 0)
    rows = sum(counts.values())
    null_rate = nulls / rows if rows else 0.0
    values["null_rate"] = abs(null_rate - float(profile.get("null_rate") or 0.0))
    return _verdicts([ColumnDrift(name, kind, values, thresholds, (), rows, null_rate)], conf)[0]


def compute_drift(frame, profiles: dict[str, dict], conf: dict, columns: dict[str, str] | None = None,
                  window: WindowCounts | None = None) -> list[ColumnDrift]:
    """Drift of every profiled column for the window `frame` (a Spark DataFrame); pass `window`
    (count_window) when the caller has counted it already."""
    window = window if window is not None else count_window(frame, profiles, columns)
    results = [column_drift(name, profile, window.counts[name], window.fine.get(name), conf)
               for name, profile in profiles.items()]
    results = _verdicts(results, conf)          # the p-values corrected across all the columns
    log.info("drift over %d row(s): %s", window.rows, ", ".join(r.column for r in results if r.drifted) or "none")
    return results


@dataclasses.dataclass(frozen=True)
class SegmentDrift:
    column: str            # the segment column, e.g. gender
    value: str             # its value, e.g. Female (or __null__ / __other__)
    rows: int              # the window's rows in the segment
    baseline_rows: int     # the training rows in the segment
    columns: list[ColumnDrift]   # empty when too few rows for a verdict

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def judged(self) -> bool:
        return bool(self.columns)


def segment_drift(segment_profiles: dict[tuple[str, str], dict[str, dict]], windows: dict[tuple[str, str], WindowCounts],
                  conf: dict) -> list[SegmentDrift]:
    """Drift of every column within each segment, against the training rows of that segment. A
    segment with fewer than drift.segment_min_rows rows in the window or in training gets no verdict
    (binned statistics of a few hundred rows are noise); p-values are corrected within a segment."""
    least = int(conf.get("segment_min_rows", 1000))
    out = []
    for (column, value), profiles in segment_profiles.items():
        window = windows.get((column, value))
        rows = window.rows if window else 0
        baseline_rows = max((int(p.get("count", 0)) for p in profiles.values()), default=0)
        results = []
        if rows >= least and baseline_rows >= least:
            results = _verdicts([column_drift(name, profile, window.counts[name], window.fine.get(name), conf)
                                 for name, profile in profiles.items() if name in window.counts], conf)
        out.append(SegmentDrift(column, value, rows, baseline_rows, results))
    drifted = [f"{s.column}={s.value}: {', '.join(s.drifted)}" for s in out if s.drifted]
    log.info("segment drift: %s", "; ".join(drifted) or "none")
    return out


def window_as_profile(profile: dict, counts: dict[str, int]) -> dict:
    """A window's counts in the shape of a baseline profile (the baseline's bins; complete categories,
    so a new one stays apart; no sample)."""
    rows = sum(counts.values())
    null_rate = counts.get(NULL, 0) / rows if rows else 0.0
    if profile["kind"] == "numeric":
        bins = len(profile["edges"]) + 1
        return {"kind": "numeric", "edges": profile["edges"], "counts": [counts.get(str(i), 0) for i in range(bins)],
                "count": rows, "null_rate": null_rate, "std": profile.get("std")}
    return {"kind": "categorical", "frequencies": {k: n for k, n in counts.items() if k != NULL}, OTHER: 0,
            "count": rows, "null_rate": null_rate}


def previous_window_drift(profiles: dict[str, dict], current: WindowCounts, previous: WindowCounts,
                          conf: dict) -> list[ColumnDrift]:
    """Drift of this window against the one before it (same length): the binned statistics (PSI,
    Jensen-Shannon, chi-squared) and the null rate, with the same thresholds, floor and correction
    as against the baseline. A sudden change shows here before it moves a long window far from
    training."""
    results = [column_drift(name, window_as_profile(profile, previous.counts.get(name, {})), current.counts[name], None, conf)
               for name, profile in profiles.items()]
    results = _verdicts(results, conf)
    log.info("drift against the previous window (%d row(s)): %s", previous.rows,
             ", ".join(r.column for r in results if r.drifted) or "none")
    return results
