"""Stages in order, for the CLI's smoke tests, the demo and (later) `lakeray run`.

    ingest -> prepare            Spark + Delta (a Spark session is built only for these)
    tune -> train -> evaluate    Ray + MLflow (one Ray session for all three)
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


def run_data_stages(spark, spec: PipelineSpec, settings, stages, sources=None) -> dict:
    from lakeray.ingest import run_ingest
    from lakeray.prepare import run_prepare

    out = {}
    if "ingest" in stages:
        out["ingest"] = run_ingest(spark, spec, settings, sources=sources)
        for r in out["ingest"].values():
            log.info("ingested    %s (%s): %d new row(s), bronze @ version %s", r.source, r.format, r.rows_added, r.bronze_version)
    if "prepare" in stages:
        out["prepare"] = run_prepare(spark, spec, settings)
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
