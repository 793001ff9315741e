"""`lakeray demo`: the bundled pipelines end to end on their default data, checked as it goes:
ingest -> prepare (Spark + Delta), then tune -> train -> evaluate (Ray + MLflow) to a champion,
then churn's closed loop (lakeray_examples.demoloop): serve, traffic, shift, drift, retrain, hot swap."""

from __future__ import annotations

import logging
import shutil

from lakeray.config import load_settings
from lakeray.errors import GateError, LakerayError
from lakeray.lakehouse import Lakehouse
from lakeray.lifecycle import run_data_stages, run_ml_stages
from lakeray.raysession import ray_session
from lakeray.spark import build_spark
from lakeray.spec import load_spec
from lakeray.tune.search import format_leaderboard
from lakeray_examples.datagen.bundles import bundled_data

log = logging.getLogger(__name__)


def read_back(path: str, version: int) -> int:
    """Row count of a Delta table version, read by an independent reader (delta-rs)."""
    from deltalake import DeltaTable

    return DeltaTable(path, version=version).to_pyarrow_dataset().count_rows()


def _fresh(lake: Lakehouse) -> None:
    for folder in (lake.landing_root, lake.root, lake.checkpoint_root):
        shutil.rmtree(folder, ignore_errors=True)


def check_against_truth(result, truth) -> None:
    for name, expected in truth.expected.items():
        got = result.accounting[name]
        actual = {"rows_in": got.rows_in, "quarantined": got.quarantined, "duplicates": got.duplicates, "clean": got.clean}
        wanted = {k: expected[k] for k in actual}
        if actual != wanted:
            raise LakerayError(f"demo: source '{name}' accounting {actual} differs from the generator's truth {wanted}")
    gold = result.accounting["dataset"]
    if gold.clean != truth.gold["clean"]:
        raise LakerayError(f"demo: gold has {gold.clean} rows, the generator's truth says {truth.gold['clean']}")


def _forget_registered(settings, spec) -> None:
    """The demo starts from no champion, so every run tells the same story; only in the embedded
    MLflow store under paths.mlflow (a tracking server named by mlflow.tracking_uri is left alone)."""
    if (settings.get("mlflow") or {}).get("tracking_uri"):
        return
    from mlflow.exceptions import MlflowException

    from lakeray.registry.tracking import configure_tracking

    tracking = configure_tracking(settings, spec.name)
    try:
        tracking.client.delete_registered_model(tracking.model_name)
        log.info("demo: removed the registered model %s of an earlier demo run", tracking.model_name)
    except MlflowException:
        pass


def run_demo(pipelines: list[str], settings=None, smoke: bool = False, loop: bool = True) -> dict:
    settings = settings or load_settings()
    specs = [load_spec(p) for p in pipelines]
    spark = build_spark(settings, app_name="lakeray-demo")
    results = {}
    for spec in specs:
        lake = Lakehouse.for_pipeline(settings, spec)
        _fresh(lake)
        _forget_registered(settings, spec)
        log.info("=== %s: %s", spec.name, spec.description.strip())
        with bundled_data(spec, lake, size="smoke" if smoke else "default") as info:
            result = run_data_stages(spark, spec, settings, ("ingest", "prepare"))["prepare"]
        if "truth" in info:
            check_against_truth(result, info["truth"])
            log.info("accounting matches the generator's ground truth exactly")
        rows = read_back(result.gold.path, result.gold.version)
        if rows != result.accounting["dataset"].clean:
            raise LakerayError(f"deltalake read {rows} rows from {result.gold.path}@{result.gold.version}, "
                               f"expected {result.accounting['dataset'].clean}")
        log.info("gold        %s @ v%d: %d rows (read back with deltalake)", result.gold.path, result.gold.version, rows)
        log.info("quarantine  %s @ v%d", result.quarantine.path, result.quarantine.version)
        results[spec.name] = {"prepare": result}
    spark.stop()   # the Ray stages do not need the JVM; the closed loop starts a new session
    with ray_session(settings):
        for spec in specs:
            log.info("=== %s: tune -> train -> evaluate on gold v%d", spec.name, results[spec.name]["prepare"].gold.version)
            results[spec.name].update(_ml_stages(spec, settings, results[spec.name]["prepare"].gold.version, smoke))
        for path, spec in zip(pipelines, specs, strict=True):
            if loop and spec.name == "churn":
                results[spec.name]["loop"] = _closed_loop(spec, path, settings, results[spec.name]["prepare"].gold, smoke)
    return results


def _closed_loop(spec, path: str, settings, gold, smoke: bool) -> dict:
    from lakeray_examples.demoloop import run_closed_loop

    log.info("=== %s: closed loop: serve -> traffic -> shift -> drift -> retrain -> hot swap", spec.name)
    spark = build_spark(settings, app_name="lakeray-demo-loop")
    try:
        return run_closed_loop(spark, spec, path, settings, gold, smoke=smoke, rows=400 if smoke else 1500)
    finally:
        spark.stop()


def _ml_stages(spec, settings, gold_version: int, smoke: bool) -> dict:
    """tune -> train -> evaluate; a rerun whose only failed check is 'beats champion' keeps the
    existing champion (the demo's data is the same every time) instead of failing."""
    try:
        out = run_ml_stages(spec, settings, ("tune", "train", "evaluate"), gold_version=gold_version, smoke=smoke)
    except GateError as exc:
        if exc.failed != ["beats champion"]:
            raise
        log.warning("%s -- the current champion stays", exc)
        return {}
    log.info("leaderboard %s (%s on validation):\n%s", spec.name, spec.metric.primary,
             format_leaderboard(out["tune"]["outcome"].leaderboard, spec.metric.primary))
    evaluated = out["evaluate"]
    log.info("champion    %s: version %s, %s=%.4f, report %s", spec.name, evaluated["promoted_version"], spec.metric.primary,
             evaluated["metrics"]["candidate"][spec.metric.primary], evaluated["report"])
    return out
