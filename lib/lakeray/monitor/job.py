"""The drift job: a window of the inference log against the champion's training profile.

  1. the log's new rows are profiled into monitor/profiles (lakeray.monitor.profiles; a streaming
     query, so each served row is counted once), and the window and the one before it are merged
     from those profiles (plus the raw rows of partial hours at their edges);
  2. drift per column against the baseline, per segment against the segment's training rows, and
     against the previous window; the performance estimated from calibrated scores (binary) and,
     where labels arrived, realised;
  3. the drift-metrics and window-profile Delta tables, an HTML report, and an alert (an ERROR log
     line and, where drift.alert.webhook_url is set, a JSON POST) when a column drifts in the window
     or a segment, or the realised or estimated performance decays.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
import re
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from lakeray.console import progress
from lakeray.errors import ConfigError, LakerayError
from lakeray.evaluate.metrics import all_metrics, class_metrics, log_loss
from lakeray.evaluate.report import render_report, write_report
from lakeray.evaluate.svg import distribution_svg, timeline_svg
from lakeray.lakehouse import Lakehouse, latest_version
from lakeray.models.bundle import MANIFEST_FILE, TARGET_FILE
from lakeray.monitor.cbpe import ESTIMATED, estimate_from_fine_bins
from lakeray.monitor.drift import (
    ColumnDrift,
    SegmentDrift,
    aligned_counts,
    category_keys,
    compute_drift,
    previous_window_drift,
    segment_drift,
)
from lakeray.monitor.inference_log import PREDICTION_COLUMN, PROBABILITIES_COLUMN, labels_path
from lakeray.monitor.profile import PREDICTION, read_profile, read_segment_profiles
from lakeray.monitor.profiles import profile_new_rows, read_windows
from lakeray.monitor.window import ALL, make_plan
from lakeray.monitor.window_profile import window_profile_rows, write_window_profiles
from lakeray.registry.gate import current_champion
from lakeray.registry.tracking import configure_tracking
from lakeray.spec import PipelineSpec

log = logging.getLogger(__name__)
PERFORMANCE = "__performance__"   # the drift-metrics rows of the estimated and realised performance
PLOTTED_CATEGORIES = 30       # bars per plot in the report; the rest summed as one
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclasses.dataclass
class DriftOutcome:
    run_id: str
    start: dt.datetime
    end: dt.datetime
    rows: int
    columns: list[ColumnDrift]
    performance: dict | None
    alerted: bool
    report: Path | None
    segments: list[SegmentDrift] = dataclasses.field(default_factory=list)
    estimated: dict | None = None      # binary: the performance estimated without labels (lakeray.monitor.cbpe)
    previous: list[ColumnDrift] = dataclasses.field(default_factory=list)   # against the window before (reported, no alert)

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def segments_drifted(self) -> dict[str, list[str]]:
        return {f"{s.column}={s.value}": s.drifted for s in self.segments if s.drifted}

    @property
    def any_drift(self) -> bool:
        """A column drifted in the window or in a segment, or the realised or estimated performance
        decayed (what alerts, and may retrain)."""
        return bool(self.drifted or self.segments_drifted or (self.performance or {}).get("drifted")
                    or (self.estimated or {}).get("drifted"))


def parse_window(text: str) -> dt.timedelta:
    match = re.fullmatch(r"(\d+)([smhdw])", str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--window {text!r}: expected a positive number and a unit s, m, h, d or w (e.g. 1d, 6h)")
    return dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def _decay(out: dict, spec: PipelineSpec, reference: float | None, conf: dict) -> dict:
    if reference is not None and out.get("value") is not None:
        decay = reference - out["value"] if spec.higher_is_better else out["value"] - reference
        limit = float((conf.get("thresholds") or {}).get("performance", {}).get("max_decay", 0.05))
        out.update(decay=decay, max_decay=limit, drifted=decay > limit,
                   alarm_line=reference - limit if spec.higher_is_better else reference + limit)
    return out


# what a multiclass window is scored on: the logged class (class_metrics) and, where the log kept them
# (rows logged since it does), the class probabilities a log loss needs
MULTICLASS_REALISED = ("accuracy", "f1_macro", "f1_weighted", "log_loss")


def _logged_probabilities(labelled: pd.DataFrame, classes: int) -> np.ndarray:
    """The rows' logged class probabilities as a matrix, NaN rows where a row has none (logged before
    the log kept them) or not one per class. Each row is scaled to sum to one: the model's float32
    outputs sum to one within ~1e-7 only (sklearn's log loss warns on that)."""
    out = np.full((len(labelled), classes), np.nan)
    if PROBABILITIES_COLUMN in labelled:
        for i, p in enumerate(labelled[PROBABILITIES_COLUMN]):
            if p is not None and len(p) == classes:
                row = np.asarray(p, dtype=float)
                out[i] = row / row.sum() if row.sum() > 0 else np.nan
    return out


def realised_performance(spec: PipelineSpec, labelled: pd.DataFrame, reference: float | None, conf: dict,
                         threshold: float = 0.5, classes: list | None = None) -> dict | None:
    """The primary metric (and, binary, the metrics the estimate gives) on rows whose label has
    arrived, against the champion's test metric. Labels (text) are read as training read the target
    (TargetEncoder.read); a label it cannot read is left out and named. Multiclass: `classes` are the
    champion's (its logged prediction is an index into them)."""
    from lakeray.features.target import TargetEncoder

    minimum = int(conf.get("min_labels", 100))
    if len(labelled) < minimum:
        return None
    if spec.task == "multiclass" and (spec.metric.primary not in MULTICLASS_REALISED or not classes):
        log.info("realised performance: %s", f"{spec.metric.primary} is not measured on served rows (only "
                 f"{', '.join(MULTICLASS_REALISED)})" if classes else "the champion's classes are unknown")
        return None
    encoder = TargetEncoder("multiclass", classes=list(classes)) if spec.task == "multiclass" \
        else TargetEncoder.fit(pd.Series([], dtype=object), spec)
    y = encoder.read(labelled["label"])
    readable = ~np.isnan(y)
    if not readable.all():
        unread = labelled["label"][~readable]
        if spec.task == "multiclass":
            what, shown = "a class the champion was not trained on", ", ".join(sorted({str(v) for v in unread})[:10])
        else:
            what = "a label that is not " + ("a boolean" if spec.task == "binary" else "a finite number")
            shown = ", ".join(repr(v) for v in unread.drop_duplicates().head(5))
        log.warning("realised performance: %d labelled row(s) hold %s (%s); left out", len(unread), what, shown)
        labelled, y = labelled[readable], y[readable]
        if len(y) < minimum:
            return None
    if spec.task == "binary" and len(np.unique(y)) < 2:
        log.warning("realised performance: the %d labelled row(s) are all one class; no metric", len(y))
        return None
    if spec.task == "multiclass":
        metrics = class_metrics(y.astype(int), labelled[PREDICTION_COLUMN].to_numpy().round().astype(int))
        proba = _logged_probabilities(labelled, len(classes))
        kept = ~np.isnan(proba).any(axis=1)
        if kept.sum() >= minimum:
            metrics["log_loss"] = float(log_loss(y[kept].astype(int), proba[kept], labels=list(range(len(classes)))))
        if spec.metric.primary not in metrics:
            log.warning("realised performance: %s needs the class probabilities, which %d of the %d labelled row(s) "
                        "were logged with (rows logged before the log kept them have none); need %d",
                        spec.metric.primary, int(kept.sum()), len(y), minimum)
            return None
        if not kept.all() and "log_loss" in metrics:
            log.info("realised performance: log loss on the %d of %d labelled row(s) logged with class probabilities",
                     int(kept.sum()), len(y))
        value = metrics[spec.metric.primary]
    else:
        scored = all_metrics(spec.task, y, labelled[PREDICTION_COLUMN].to_numpy(), threshold)
        value, metrics = float(scored[spec.metric.primary]), {k: float(scored[k]) for k in ESTIMATED if k in scored}
    out = {"metric": spec.metric.primary, "value": value, "labelled_rows": int(len(labelled)),
           "reference": reference, "metrics": metrics}
    return _decay(out, spec, reference, conf)


def with_labels(spark, frame, path: str):
    """The window's rows with each request's newest label from the labels table at `path` (where there
    is one), else the label the row was logged with."""
    from pyspark.sql import functions as F

    if latest_version(spark, path) is None:
        return frame
    newest = (spark.read.format("delta").load(path).groupBy("request_id")
              .agg(F.max_by("label", "received_at").alias("_arrived")))
    return (frame.join(newest, "request_id", "left")
            .withColumn("label", F.coalesce(F.col("_arrived"), F.col("label"))).drop("_arrived"))


def champion_classes(tracking, run_id: str) -> list | None:
    """A multiclass champion's classes (its bundle's target.json): what its predicted index means."""
    try:
        return list(tracking.load_json(run_id, f"bundle/{TARGET_FILE}")["classes"])
    except Exception as exc:
        log.warning("drift: no target classes in run %s (%s): realised performance is not measured", run_id, str(exc)[:200])
        return None


def estimated_performance(spec: PipelineSpec, manifest: dict, fine, rows: int, reference: float | None,
                          conf: dict) -> dict | None:
    """Binary tasks: the window's metrics estimated from the champion's calibrated scores (no labels;
    lakeray.monitor.cbpe), against the champion's test metric; None without a calibrator (a model
    trained before calibration was stored) or for other tasks."""
    calibration = manifest.get("calibration")
    if spec.task != "binary" or not calibration or fine is None or not rows:
        return None
    metrics = estimate_from_fine_bins(calibration, fine, float(manifest.get("threshold") or 0.5))
    out = {"metric": spec.metric.primary, "value": metrics.get(spec.metric.primary), "rows": rows,
           "reference": reference, "metrics": metrics}
    return _decay(out, spec, reference, conf)


def performance_rows(performance: dict | None, kind: str) -> list[tuple]:
    """(column, kind, statistic, value, threshold, drifted, rows) of a realised or estimated performance:
    every metric, the primary one with its alarm line (reference - max_decay) and verdict."""
    if not performance:
        return []
    line = performance.get("alarm_line")
    rows = performance.get("labelled_rows", performance.get("rows"))
    return [(PERFORMANCE, kind, name, float(value), line if name == performance["metric"] else None,
             bool(performance.get("drifted")) if name == performance["metric"] else False, rows)
            for name, value in (performance.get("metrics") or {}).items() if value is not None and name in ESTIMATED]


def write_drift_metrics(spark, path: str, run_id: str, start, end, model_version: str, columns: list[ColumnDrift],
                        segments: list[SegmentDrift] = (), performance: list[tuple] = (),
                        previous: list[ColumnDrift] = ()) -> None:
    """One row per column and statistic: the whole window against the baseline (segment_column and
    segment_value null; comparison "baseline"), each segment with a verdict, the performance
    (column __performance__, kind estimated or realised), and the window against the previous one
    (comparison "previous_window")."""
    groups = ([(None, None, "baseline", columns)] + [(s.column, s.value, "baseline", s.columns) for s in segments]
              + [(None, None, "previous_window", list(previous))])
    rows = [(run_id, start, end, model_version, c.column, c.kind, name, float(value), c.thresholds.get(name),
             name in c.drifted_by, c.current_rows, seg_column, seg_value, comparison)
            for seg_column, seg_value, comparison, results in groups for c in results for name, value in c.statistics.items()]
    rows += [(run_id, start, end, model_version, *row, None, None, None) for row in performance]
    schema = ("run_id string, window_start timestamp, window_end timestamp, model_version string, column string, "
              "kind string, statistic string, value double, threshold double, drifted boolean, rows long, "
              "segment_column string, segment_value string, comparison string")
    spark.createDataFrame(rows, schema).write.format("delta").mode("append").option("mergeSchema", "true").save(path)


def send_alert(conf: dict, payload: dict) -> bool:
    log.error("DRIFT ALERT %s: %s", payload["pipeline"], json.dumps(payload, default=str))
    url = (conf.get("alert") or {}).get("webhook_url")
    if not url:
        return False
    request = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=float(conf["alert"].get("timeout_s", 10))) as response:
            return 200 <= response.status < 300
    except OSError as exc:
        log.error("drift alert webhook %s failed: %s", url, exc)
        return False


def _images(profiles: dict, counts: dict, columns: list[ColumnDrift]) -> dict[str, bytes]:
    images = {}
    for c in columns:
        profile = profiles[c.column]
        expected, actual = aligned_counts(profile, counts[c.column])
        if profile["kind"] == "numeric":
            edges = [f"{e:.3g}" for e in profile["edges"]]
            labels = [f"<{edges[0]}"] + [f"{a}..{b}" for a, b in itertools.pairwise(edges)] + [f">={edges[-1]}"] if edges else ["all"]
        else:
            labels = category_keys(profile, counts[c.column])
        shares = lambda v: v / v.sum() if v.sum() else v  # noqa: E731
        title = f"{c.column}: {'DRIFT (' + ', '.join(c.drifted_by) + ')' if c.drifted else 'no drift'}"
        images[c.column] = distribution_svg(title, *_plotted(labels, shares(expected), shares(actual)))
    return images


def _plotted(labels: list[str], expected: np.ndarray, actual: np.ndarray, most: int = PLOTTED_CATEGORIES):
    """At most `most` bars: the categories with the largest share on either side, in their order, and
    the rest summed as one bar."""
    if len(labels) <= most:
        return labels, expected, actual
    keep = np.sort(np.argsort(-np.maximum(expected, actual), kind="stable")[:most - 1])
    rest = np.setdiff1d(np.arange(len(labels)), keep)
    return ([labels[i] for i in keep] + [f"({len(rest)} more)"], np.append(expected[keep], expected[rest].sum()),
            np.append(actual[keep], actual[rest].sum()))


def _performance_gate(estimated: dict | None, realised: dict | None) -> list[dict]:
    out = []
    for name, p in (("estimated performance (no labels)", estimated), ("realised performance", realised)):
        if p and p.get("value") is not None and "drifted" in p:
            basis = f"{p['labelled_rows']} labelled row(s)" if "labelled_rows" in p else f"{p['rows']} row(s), calibrated scores"
            out.append({"check": name, "passed": not p["drifted"],
                         "detail": f"{p['metric']} {p['value']:.4f} vs {p['reference']:.4f} at evaluation ({basis}); "
                                   + ", ".join(f"{k} {v:.3f}" for k, v in p["metrics"].items() if v is not None and k in ESTIMATED)})
    return out


def champion_manifest(tracking, run_id: str) -> dict:
    """The champion bundle's manifest (its decision threshold and calibration); {} when the run has
    no bundle artifact, which leaves the performance unestimated (logged)."""
    try:
        return tracking.load_json(run_id, f"bundle/{MANIFEST_FILE}")
    except Exception as exc:
        log.warning("drift: no bundle manifest in run %s (%s): performance is not estimated", run_id, str(exc)[:200])
        return {}


def performance_history(spark, path: str, spec: PipelineSpec, model_version: str) -> pd.DataFrame:
    """The primary metric's estimated and realised values of the model version's earlier drift runs."""
    from pyspark.sql import functions as F

    from lakeray.lakehouse import fs

    columns = ["run_id", "window_end", "kind", "value"]
    if not fs.exists(f"{path.rstrip('/')}/_delta_log", spark):
        return pd.DataFrame(columns=columns)
    return (spark.read.format("delta").load(path)
            .where((F.col("column") == PERFORMANCE) & (F.col("statistic") == spec.metric.primary)
                   & (F.col("model_version") == model_version))
            .select(*columns).toPandas())


def performance_timeline(spec: PipelineSpec, model_version: str, history: pd.DataFrame, run_id: str, end,
                         estimated: dict | None, realised: dict | None, last: int = 50) -> bytes:
    """The primary metric, estimated and realised, over the model version's last drift runs and this one."""
    now = [{"run_id": run_id, "window_end": end, "kind": kind, "value": p["value"]}
           for kind, p in (("estimated", estimated), ("realised", realised)) if p and p.get("value") is not None]
    parts = [frame for frame in (history, pd.DataFrame(now, columns=history.columns)) if len(frame)]
    rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else history).copy()
    rows["window_end"] = pd.to_datetime(rows["window_end"], utc=True)
    runs = rows.drop_duplicates("run_id").sort_values("window_end").tail(last)
    labels = [f"{t:%m-%d %H:%M}" for t in runs["window_end"]]
    series = {}
    for kind in ("estimated", "realised"):
        values = rows[rows["kind"] == kind].drop_duplicates("run_id").set_index("run_id")["value"]
        series[kind] = [float(values[r]) if r in values.index else None for r in runs["run_id"]]
    reference = (estimated or realised or {}).get("reference")
    return timeline_svg(f"{spec.metric.primary} of model version {model_version}: estimated without labels and realised",
                        labels, series, reference)


def _segment_gate(segments: list[SegmentDrift], least: int) -> list[dict]:
    """The report's lines per segment: drifted columns, no drift, or why there is no verdict."""
    out = []
    for seg in segments:
        if not seg.judged:
            detail = f"no verdict: {seg.rows} row(s) in the window, {seg.baseline_rows} in training (need {least})"
        else:
            detail = f"{seg.rows} row(s); " + (", ".join(f"{c.column} ({', '.join(c.drifted_by)})" for c in seg.columns if c.drifted)
                                              or "no column drifts")
        out.append({"check": f"segment {seg.column}={seg.value}", "passed": not seg.drifted, "detail": detail})
    return out


def run_drift_job(spark, spec: PipelineSpec, settings, *, window: str = "1d", now: dt.datetime | None = None) -> DriftOutcome:
    """One drift run of `spec`'s champion over the last `window` (one at a time per pipeline: the
    window profiles' streaming checkpoints are the run's state)."""
    from lakeray.lakehouse.lock import stage_lock

    with stage_lock(Lakehouse.for_pipeline(settings, spec).checkpoint_root, spec.name, "drift"):
        return _run_drift_job(spark, spec, settings, window=window, now=now)


def _run_drift_job(spark, spec: PipelineSpec, settings, *, window: str, now: dt.datetime | None) -> DriftOutcome:
    from pyspark.sql import functions as F

    conf = settings["drift"]
    took = [("", time.perf_counter())]        # the phases' times, logged at the end
    span = parse_window(window)
    lake = Lakehouse.for_pipeline(settings, spec)
    tracking = configure_tracking(settings, spec.name)
    champion = current_champion(tracking.client, tracking.model_name)
    if champion is None:
        raise LakerayError(f"no '{tracking.model_name}@champion' in MLflow: train and evaluate a model first")
    profiles = read_profile(lake.monitor("baseline_profiles"), champion.run_id)
    segment_profiles = read_segment_profiles(lake.monitor("baseline_profiles"), champion.run_id)
    segments: dict[str, list[str]] = {}
    for column, value in segment_profiles:
        segments.setdefault(column, []).append(value)
    plan = make_plan(profiles, {PREDICTION: PREDICTION_COLUMN}, segments, time="ts")
    # a live bar on a terminal: new rows profiled, the window's counts, the statistics, the tables, the report
    took.append(("champion", time.perf_counter()))
    with progress(5, f"drift {spec.name}") as bar:
        end = now or dt.datetime.now(dt.timezone.utc)
        start = end - span
        log_path = lake.monitor("inference_log")
        try:
            log_table = spark.read.format("delta").load(log_path)
        except Exception as exc:
            raise LakerayError(f"no inference log at {log_path}: serve the model first ({str(exc)[:200]})") from None
        profile_new_rows(spark, log_path, lake.monitor("profiles"), lake.profile_checkpoints, champion.run_id, plan)
        took.append(("profile", time.perf_counter()))
        bar.update(1)
        dates = (F.col("date") >= F.lit((start - span).date().isoformat())) & (F.col("date") <= F.lit(end.date().isoformat()))
        both = read_windows(spark, log_table.where(dates), lake.monitor("profiles"), champion.run_id, plan,
                            {"current": (start, end), "previous": (start - span, start)})
        windows = both["current"]
        counted = windows[(ALL, ALL)]
        rows = counted.rows
        took.append(("window", time.perf_counter()))
        bar.update(1)
        run_id = f"drift-{end:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        if rows < int(conf.get("min_rows", 200)):
            log.warning("drift %s: only %d row(s) served by version %s in [%s, %s); need %s", spec.name, rows,
                        champion.version, start, end, conf.get("min_rows", 200))
            return DriftOutcome(run_id, start, end, rows, [], None, False, None)
        results = compute_drift(None, profiles, conf, window=counted)
        by_segment = segment_drift(segment_profiles, windows, conf)
        before = both["previous"][(ALL, ALL)]
        previous = previous_window_drift(profiles, counted, before, conf) if before.rows >= int(conf.get("min_rows", 200)) else []
        frame = log_table.where(dates & (F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end))
                                & (F.col("train_run_id") == champion.run_id))
        kept = [PREDICTION_COLUMN, *([PROBABILITIES_COLUMN] if PROBABILITIES_COLUMN in frame.columns else [])]
        labelled = with_labels(spark, frame, labels_path(log_path)).where(F.col("label").isNotNull()) \
            .select("label", *kept).toPandas()
        reference = champion.tags.get(spec.metric.primary)
        reference = float(reference) if reference else None
        manifest = champion_manifest(tracking, champion.run_id) if spec.task == "binary" else {}
        classes = champion_classes(tracking, champion.run_id) if spec.task == "multiclass" and len(labelled) else None
        performance = realised_performance(spec, labelled, reference, conf, float(manifest.get("threshold") or 0.5),
                                           classes)
        estimated = estimated_performance(spec, manifest, counted.fine.get(PREDICTION), rows, reference, conf)
        took.append(("statistics", time.perf_counter()))
        bar.update(1)
        kinds = {name: ("prediction" if name == PREDICTION else p["kind"]) for name, p in profiles.items()}
        with ThreadPoolExecutor(3) as pool:        # two small Delta appends and a read, as concurrent Spark jobs
            history = pool.submit(performance_history, spark, lake.monitor("drift_metrics"), spec, str(champion.version)) \
                if estimated or performance else None
            written = [pool.submit(write_drift_metrics, spark, lake.monitor("drift_metrics"), run_id, start, end,
                                   str(champion.version), results, by_segment,
                                   performance_rows(estimated, "estimated") + performance_rows(performance, "realised"), previous),
                       pool.submit(write_window_profiles, spark, lake.monitor("window_profiles"),
                                   window_profile_rows(run_id, start, end, str(champion.version), windows, kinds))]
            for future in written:
                future.result()
            history = history.result() if history is not None else None
        took.append(("tables", time.perf_counter()))
        bar.update(1)
        gate = [{"check": f"{c.column} ({c.kind})", "passed": not c.drifted,
                 "detail": ", ".join(f"{k}={v:.4g}" + (f" (> {c.thresholds[k]:g})" if k in c.drifted_by else "")
                                     for k, v in c.statistics.items())} for c in results]
        gate += _performance_gate(estimated, performance)
        gate.append({"check": "against the previous window", "passed": not any(c.drifted for c in previous),
                     "detail": (f"{before.rows} row(s) before; drifted: " + (", ".join(f"{c.column} ({', '.join(c.drifted_by)})"
                                for c in previous if c.drifted) or "none")) if previous
                     else f"no verdict: {before.rows} row(s) in the previous window"})
        gate += _segment_gate(by_segment, int(conf.get("segment_min_rows", 1000)))
        segments_drifted = [f"{s.column}={s.value}" for s in by_segment if s.drifted]
        images = _images(profiles, counted.counts, results)
        if history is not None:
            images["performance over time"] = performance_timeline(spec, str(champion.version), history, run_id, end,
                                                                   estimated, performance)
        html = render_report(title=f"lakeray drift: {spec.name}", summary={"window": f"[{start}, {end})", "rows": rows,
                             "model version": champion.version, "drifted": ", ".join(c.column for c in results if c.drifted) or "none",
                             "segments drifting": ", ".join(segments_drifted) or "none"},
                             metrics={c.column: c.statistics for c in results}, gate=gate,
                             lineage={"drift run": run_id, "train_run_id": champion.run_id, "inference log": log_path,
                                      "profiles": lake.monitor("profiles")},
                             images=images)
        report = write_report(html, Path(settings.path("models")) / spec.name / "reports" / f"{run_id}.html")
        took.append(("report", time.perf_counter()))
        bar.update(1)
        drifted = [c.column for c in results if c.drifted]
        alerted = False
        if drifted or segments_drifted or (performance or {}).get("drifted") or (estimated or {}).get("drifted"):
            alerted = send_alert(conf, {"pipeline": spec.name, "run_id": run_id, "model_version": champion.version,
                                        "window": [start.isoformat(), end.isoformat()], "rows": rows, "drifted": drifted,
                                        "segments_drifted": {f"{s.column}={s.value}": s.drifted for s in by_segment if s.drifted},
                                        "performance": performance, "estimated_performance": estimated, "report": str(report)})
        log.info("drift %s over %d row(s): drifted %s; segments %s; report %s", spec.name, rows, drifted or "none",
                 segments_drifted or "none", report)
        log.info("drift timing: %s", ", ".join(f"{name} {b - a:.2f} s" for (_, a), (name, b) in itertools.pairwise(took)))
        return DriftOutcome(run_id, start, end, rows, results, performance, alerted, report, by_segment, estimated, previous)
