"""The Spark drift job on a large inference-log window, and Evidently's data-drift report on 1M rows.

    make bench-install     # wrk + a separate virtualenv with Evidently (never in lakeray's own)
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/drift_job.py --rows 1000000 --rows 10000000

For each size: an inference log of N rows x 30 features (24 numeric, 6 categorical; 3 numeric and
1 categorical shifted) in Delta, a baseline profile from a 200k-row training frame, a registered
champion (MLflow, embedded store) - then `run_drift_job` (lakeray's job: Spark read of the window,
one-pass bin/category counts, sampled KS/Wasserstein, drift-metrics Delta table, HTML report) is
timed end to end, then run again over the same window (its hours now in the profiles table: no raw row
is read). A 20k-row run first warms up the JVM and is not reported.

For the 1M size the same window (the 30 feature columns) and the same 200k training frame go to
Evidently's Report([DataDriftPreset()]) in its own virtualenv; the ratio printed is
lakeray seconds / Evidently seconds (run + HTML, pandas reads excluded for Evidently).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("benchmark")
HERE = Path(__file__).resolve().parent
NUMERIC, CATEGORICAL = 24, 6
SHIFTED_NUMERIC, SHIFTED_CATEGORICAL = ("n00", "n07", "n15"), ("c2",)
CATEGORIES = [[f"v{j}" for j in range(3 + 3 * i)] for i in range(CATEGORICAL)]


def bench_spec(folder: Path, name: str):
    from lakeray.spec import load_spec

    numeric = {f"n{i:02d}": "numeric" for i in range(NUMERIC)}
    categorical = {f"c{i}": "categorical" for i in range(CATEGORICAL)}
    columns = {"id": "string", **{k: "double" for k in numeric}, **{k: "string" for k in categorical}, "y": "boolean"}
    spec = {"name": name, "description": "drift benchmark", "task": "binary", "entity_key": "id", "target": "y",
            "sources": {"events": {"format": "parquet", "path": "events", "columns": columns, "keys": ["id"]}},
            "dataset": {"base": "events"}, "features": {**numeric, **categorical},
            "metric": {"primary": "roc_auc"}, "baseline": {"model": "logistic"},
            "split": {"method": "hash", "seed": 1, "fractions": {"train": 0.7, "validation": 0.15, "test": 0.15}}}
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec))        # JSON is YAML
    return load_spec(path)


def training_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = {f"n{i:02d}": rng.normal(i * 0.1, 1.0 + i * 0.05, rows) for i in range(NUMERIC)}
    frame.update({f"c{i}": rng.choice(values, rows) for i, values in enumerate(CATEGORIES)})
    return pd.DataFrame(frame)


def register_champion(settings, spec, train: pd.DataFrame) -> str:
    """A registered version holding `champion`, and its baseline profile keyed by the train run."""
    from lakeray.lakehouse import Lakehouse
    from lakeray.monitor.profile import build_profile, write_profile
    from lakeray.registry.tracking import configure_tracking

    tracking = configure_tracking(settings, spec.name)
    client = tracking.client
    run = client.create_run(tracking.experiment_id, run_name=f"train-{spec.name}-bench")
    client.create_registered_model(tracking.model_name)
    version = client.create_model_version(tracking.model_name, f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id)
    client.set_registered_model_alias(tracking.model_name, "champion", version.version)
    predictions = np.random.default_rng(1).random(len(train))
    # the bundle's manifest as training writes it: the decision threshold and the validation scores'
    # calibration, so the job estimates the performance without labels as it does for a real champion
    from lakeray.monitor.cbpe import fit_calibrator

    rng = np.random.default_rng(2)
    valid = rng.random(20_000)
    manifest = {"threshold": 0.5, "calibration": fit_calibrator(rng.random(20_000) < valid, valid)}
    client.log_text(run.info.run_id, json.dumps(manifest), "bundle/manifest.json")
    write_profile(Lakehouse.for_pipeline(settings, spec).monitor("baseline_profiles"),
                  build_profile(train, dict(spec.features), predictions),
                  train_run_id=run.info.run_id, model_sha256="benchmark", pipeline=spec.name)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def write_window(spark, path: str, rows: int, train_run_id: str, end: dt.datetime, pipeline: str) -> None:
    """N served rows inside the hour before `end`, as the serving app logs them (Delta, by date)."""
    from pyspark.sql import functions as F

    df = spark.range(rows, numPartitions=max(2, rows // 500_000))
    cols = [F.concat(F.lit("r"), F.col("id").cast("string")).alias("request_id"),
            F.timestamp_seconds(F.lit((end - dt.timedelta(hours=1)).timestamp()) + F.rand(7) * 3500).alias("ts"),
            F.lit(end.date().isoformat()).alias("date"), F.lit(pipeline).alias("pipeline"),
            F.lit("1").alias("model_version"), F.lit(train_run_id).alias("train_run_id"), F.lit("champion").alias("variant")]
    for i in range(NUMERIC):
        shift = 0.5 * (1.0 + i * 0.05) if f"n{i:02d}" in SHIFTED_NUMERIC else 0.0
        cols.append((F.randn(100 + i) * (1.0 + i * 0.05) + i * 0.1 + shift).alias(f"n{i:02d}"))
    for i, values in enumerate(CATEGORIES):
        u = F.rand(200 + i)
        u = F.pow(u, 2.0) if f"c{i}" in SHIFTED_CATEGORICAL else u       # skewed towards the first values
        pick = (F.floor(u * len(values)) + 1).cast("int")
        cols.append(F.element_at(F.array(*[F.lit(v) for v in values]), pick).alias(f"c{i}"))
    cols += [F.rand(300).alias("prediction"), F.lit(3.0).alias("latency_ms"), F.lit(None).cast("string").alias("label")]
    df.select(*cols).write.format("delta").mode("overwrite").partitionBy("date").save(path)


def lakeray_run(spark, folder: Path, rows: int, train: pd.DataFrame, name: str) -> dict:
    from lakeray.config import load_settings
    from lakeray.lakehouse import Lakehouse
    from lakeray.lifecycle import SCRATCH_PATHS
    from lakeray.monitor.job import run_drift_job

    settings = load_settings(overrides={"paths": {k: str(folder / name / k) for k in SCRATCH_PATHS}})
    spec = bench_spec(folder, name)
    run_id = register_champion(settings, spec, train)
    end = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)   # on the hour: the rerun reads no raw row
    log_path = Lakehouse.for_pipeline(settings, spec).monitor("inference_log")
    began = time.perf_counter()
    write_window(spark, log_path, rows, run_id, end, spec.name)
    write_s = time.perf_counter() - began
    began = time.perf_counter()
    outcome = run_drift_job(spark, spec, settings, window="1d", now=end)
    job_s = time.perf_counter() - began
    assert outcome.rows == rows, (outcome.rows, rows)
    began = time.perf_counter()
    again = run_drift_job(spark, spec, settings, window="1d", now=end)       # the same window, already profiled
    rerun_s = time.perf_counter() - began
    assert again.rows == rows and again.drifted == outcome.drifted, (again.rows, again.drifted)
    return {"rows": rows, "write_s": write_s, "job_s": job_s, "rerun_s": rerun_s, "drifted": outcome.drifted,
            "log_path": log_path, "settings": settings}


def evidently_run(spark, folder: Path, result: dict, train: pd.DataFrame, timeout_s: float) -> dict | None:
    python = HERE / "out" / "venv-evidently" / "bin" / "python"
    if not python.exists():
        log.warning("no %s: run `make bench-install` for the Evidently comparison", python)
        return None
    features = [f"n{i:02d}" for i in range(NUMERIC)] + [f"c{i}" for i in range(CATEGORICAL)]
    current = folder / "evidently-current.parquet"
    spark.read.format("delta").load(result["log_path"]).select(*features).coalesce(1).write.mode("overwrite").parquet(str(current))
    reference = folder / "evidently-reference.parquet"
    train[features].to_parquet(reference)
    out = folder / "evidently.json"
    began = time.perf_counter()
    try:
        done = subprocess.run([str(python), str(HERE / "evidently_drift.py"), str(reference), str(current), str(out)],
                              timeout=timeout_s, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return {"failed": f"did not finish in {timeout_s:.0f} s (killed)", "process_s": time.perf_counter() - began}
    wall = time.perf_counter() - began
    if done.returncode != 0:      # e.g. -9: the kernel's OOM killer
        return {"failed": f"exited {done.returncode} after {wall:.0f} s: {done.stderr.strip()[-300:]}", "process_s": wall}
    return {**json.loads(out.read_text()), "process_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", help="window sizes (repeatable); default 1M and 10M")
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--evidently-rows", type=int, action="append",
                        help="window sizes Evidently also runs on (repeatable; default 1M; 0: none)")
    parser.add_argument("--evidently-timeout", type=float, default=1800, help="seconds before an Evidently run is killed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "lakeray", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from lakeray.config import load_settings
    from lakeray.spark import build_spark

    sizes = args.rows or [1_000_000, 10_000_000]
    spark = build_spark(load_settings(), app_name="lakeray-bench-drift", extra_conf={"spark.driver.memory": "8g"})
    train = training_frame(args.train_rows)
    results = []
    with tempfile.TemporaryDirectory(prefix="lakeray-bench-drift-") as tmp:
        folder = Path(tmp)
        lakeray_run(spark, folder, 20_000, train, "warmup")
        for rows in sizes:
            result = lakeray_run(spark, folder, rows, train, f"drift{rows}")
            log.info("%d rows: window written in %.1f s; drift job %.1f s; drifted %s", rows, result["write_s"],
                     result["job_s"], result["drifted"])
            if rows in (args.evidently_rows or [1_000_000]):
                result["evidently"] = evidently_run(spark, folder, result, train, args.evidently_timeout)
            results.append(result)
    spark.stop()
    print(f"drift job: {NUMERIC} numeric + {CATEGORICAL} categorical features (+ the prediction); "
          f"shifted {', '.join(SHIFTED_NUMERIC + SHIFTED_CATEGORICAL)}; baseline from {args.train_rows} training rows")
    for r in results:
        line = (f"rows={r['rows']:>10,}  lakeray drift job {r['job_s']:6.1f} s ({r['rows'] / r['job_s']:,.0f} rows/s); "
                f"again over the profiled window {r['rerun_s']:5.1f} s  drifted: {', '.join(r['drifted'])}")
        print(line)
        ev = r.get("evidently")
        if ev and ev.get("failed"):
            print(f"rows={r['rows']:>10,}  Evidently DataDriftPreset: {ev['failed']}")
        elif ev:
            evidently_s = ev["report_s"]
            print(f"rows={r['rows']:>10,}  Evidently DataDriftPreset run {ev['run_s']:.1f} s + HTML = {evidently_s:.1f} s "
                  f"(pandas read {ev['read_s']:.1f} s not counted); drifted: {', '.join(ev['drifted'])}; "
                  f"ratio lakeray / Evidently = {r['job_s'] / evidently_s:.2f}")


if __name__ == "__main__":
    main()
