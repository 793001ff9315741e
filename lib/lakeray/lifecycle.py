"""The one place the order of lakeray's stages lives: every command, the demo and a retrain
after drift run their stages through these functions.

    ingest -> prepare            Spark + Delta (a Spark session is built only for these)
    tune -> train -> evaluate    Ray + MLflow (one Ray session for all three)

run_lifecycle runs all five once (`lakeray run`; `lakeray drift` after drift, when
drift.retrain.enabled); the serving replicas follow the `champion` alias (serve.reload_s), so a
promotion is the hot swap. A candidate the gate refuses is reported, not raised: the current
champion keeps serving.
"""

from __future__ import annotations

import logging

from lakeray.errors import GateError
from lakeray.spec import PipelineSpec

log = logging.getLogger(__name__)
STAGES = ("ingest", "prepare", "tune", "train", "evaluate")
SCRATCH_PATHS = ("landing", "lakehouse", "checkpoints", "ray_storage", "models", "mlflow", "logs")


def stages_through(last: str) -> tuple[str, ...]:
    return STAGES[: STAGES.index(last) + 1]


def run_data_stages(spark, spec: PipelineSpec, settings, stages, sources=None, full_refresh: bool = False) -> dict:
    from lakeray.ingest import run_ingest
    from lakeray.prepare import run_prepare

    out = {}
    if "ingest" in stages:
        out["ingest"] = run_ingest(spark, spec, settings, sources=sources)
        for r in out["ingest"].values():
            log.info("ingested    %s (%s): %d new row(s), bronze @ version %s", r.source, r.format, r.rows_added, r.bronze_version)
    if "prepare" in stages:
        out["prepare"] = run_prepare(spark, spec, settings, full=full_refresh)
        for acct in out["prepare"].accounting.values():
            log.info("accounting  %s", acct.line())
        if out["prepare"].gold:
            log.info("gold table  %s @ version %d", out["prepare"].gold.path, out["prepare"].gold.version)
    return out


def run_ml_stages(spec: PipelineSpec, settings, stages, *, gold_version=None, smoke: bool = False,
                  fresh_tune: bool = False, tune_run_id: str | None = None, train_run_id: str | None = None) -> dict:
    """tune/train/evaluate in one Ray session; each stage hands its MLflow run id to the next."""
    from lakeray.evaluate.job import run_evaluate_job
    from lakeray.raysession import ray_session
    from lakeray.train.job import run_train_job
    from lakeray.tune.job import run_tune_job

    out = {}
    with ray_session(settings):
        if "tune" in stages:
            out["tune"] = run_tune_job(spec, settings, gold_version, smoke=smoke, fresh=fresh_tune)
            tune_run_id = out["tune"]["run_id"]
        if "train" in stages:
            out["train"] = run_train_job(spec, settings, tune_run_id=tune_run_id, smoke=smoke)
            train_run_id = out["train"]["run_id"]
        if "evaluate" in stages:
            try:
                out["evaluate"] = run_evaluate_job(spec, settings, train_run_id=train_run_id, smoke=smoke)
            except GateError as exc:
                exc.stages = {**out, **({"evaluate": exc.result} if exc.result else {})}
                raise
    return out


def run_lifecycle(spark, spec: PipelineSpec, settings, *, smoke: bool = False) -> dict:
    data = run_data_stages(spark, spec, settings, ("ingest", "prepare"))
    gold = data["prepare"].gold.version
    try:
        ml = run_ml_stages(spec, settings, ("tune", "train", "evaluate"), gold_version=gold, smoke=smoke)
    except GateError as exc:
        champion = (exc.result or {}).get("champion_version")
        log.warning("retrained model not promoted; %s: %s", f"champion version {champion} keeps serving" if champion
                    else "there is no champion yet, so `lakeray serve` has no model to serve until a candidate passes", exc)
        return {"gold_version": gold, "promoted_version": None, "failed_checks": exc.failed, "data": data,
                "ml": exc.stages, "champion_version": champion}
    promoted = ml["evaluate"]["promoted_version"]
    log.info("lifecycle %s: gold v%d -> champion version %s", spec.name, gold, promoted)
    return {"gold_version": gold, "promoted_version": promoted, "failed_checks": [], "runs": {
        stage: out["run_id"] for stage, out in ml.items()}, "data": data, "ml": ml}


def retrain_after_drift(spark, spec: PipelineSpec, settings, outcome) -> dict | None:
    """What `lakeray drift` does after the drift job, the caller's decision: the whole lifecycle on
    fresh data when something drifted and drift.retrain.enabled; None otherwise."""
    conf = (settings["drift"].get("retrain") or {})
    if not conf.get("enabled") or not outcome.any_drift:
        return None
    log.warning("drift %s: retraining on fresh data (drift.retrain.enabled)", spec.name)
    return run_lifecycle(spark, spec, settings, smoke=bool(conf.get("smoke")))
