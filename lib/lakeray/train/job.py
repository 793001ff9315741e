"""The train job: the tune run's best configuration, trained data-parallel on Ray Train.

Reads the gold splits at the version the tune run recorded, fits the preprocessing on the
training split, trains on N Ray Train workers (checkpoints + FailureConfig), saves the model
bundle (UBJSON + preprocessing + manifest with SHA-256) and logs it to MLflow with lineage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import posixpath
import time
import uuid
from pathlib import Path

from lakeray.evaluate.metrics import decision_threshold, score
from lakeray.features.handoff import load_splits
from lakeray.features.matrices import family_matrices
from lakeray.lakehouse import Lakehouse
from lakeray.lineage import code_version
from lakeray.models.bundle import MODEL_FILE, ModelBundle
from lakeray.models.families import booster_params, predict
from lakeray.monitor.cbpe import fit_calibrator
from lakeray.monitor.profile import build_profile, build_segment_profiles, write_profile
from lakeray.registry.tracking import TAG, configure_tracking, lineage_tags
from lakeray.spec import PipelineSpec, spec_hash
from lakeray.train.xgb import train_xgboost

log = logging.getLogger(__name__)


def train_settings(settings, smoke: bool) -> dict:
    conf = dict(settings["train"])
    if smoke:
        conf.update(conf.get("smoke") or {})
    return conf


def log_train_run(tracking, tags: dict, bundle_dir: Path, manifest: dict, metrics: dict) -> str:
    with tracking.start_run("train", tags) as run:
        run.log_params({"family": manifest["family"], "rounds": manifest["rounds"],
                        "workers": manifest["train"]["num_workers"], **manifest["params"]})
        run.log_metrics(metrics)
        run.log_artifacts(str(bundle_dir), "bundle")
        run.set_tag(f"{TAG}model_sha256", manifest["sha256"][MODEL_FILE])
        return run.run_id


def record_baseline_profile(spec: PipelineSpec, settings, tracking, run_id: str, train_frame, train_pred,
                            model_sha256: str) -> int:
    """The training-time profile drift is measured against: Delta (keyed by train run) + MLflow."""
    profile = build_profile(train_frame, dict(spec.features), train_pred)
    segments = build_segment_profiles(train_frame, dict(spec.features), profile, spec.segment_columns, train_pred,
                                      top=spec.monitor.max_segment_values)
    version = write_profile(Lakehouse.for_pipeline(settings, spec).monitor("baseline_profiles"), profile,
                            train_run_id=run_id, model_sha256=model_sha256, pipeline=spec.name, segments=segments)
    tracking.client.log_text(run_id, json.dumps(profile, sort_keys=True), "profile.json")
    return version


def run_train_job(spec: PipelineSpec, settings, *, tune_run_id: str | None = None, smoke: bool = False,
                  kill_worker_at: dict | None = None) -> dict:
    from lakeray.raysession import ray_session

    tracking = configure_tracking(settings, spec.name)
    tune_run = tracking.latest_run("tune", tune_run_id)
    best = tracking.load_json(tune_run.info.run_id, "leaderboard.json")[0]
    gold_path, version = tune_run.data.tags[f"{TAG}gold_path"], int(tune_run.data.tags[f"{TAG}gold_version"])
    snapshot = load_splits(gold_path, version)
    family_conf = settings["tune"]["families"][best["family"]]
    mats = family_matrices(spec, snapshot, family_conf, settings.get("features"))
    params = booster_params(family_conf, best["params"], spec.task, mats.num_class)
    conf = train_settings(settings, smoke)
    run_name = f"train-{spec.name}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    began = time.perf_counter()
    with ray_session(settings):
        trained = train_xgboost(
            mats.splits["train"], mats.splits["validation"], params=params, num_boost_round=best["rounds"],
            storage_path=settings.path("ray_storage"), name=run_name, num_workers=conf["num_workers"],
            cpus_per_worker=conf["cpus_per_worker"], gpus_per_worker=float(conf.get("gpus_per_worker", 0)),
            checkpoint_every=int(conf["checkpoint_every"]), max_failures=int(conf["max_failures"]),
            kill_worker_at=kill_worker_at, feature_types=mats.feature_types,
            health_check_interval_s=conf.get("health_check_interval_s"), engine=conf.get("engine") or "auto")
    seconds = time.perf_counter() - began
    x_valid, y_valid = mats.splits["validation"]
    valid_pred = predict(trained.booster, x_valid, spec.task)
    valid_score = score(spec.task, spec.metric.primary, y_valid, valid_pred)
    threshold = decision_threshold(spec.metric.decision_threshold, y_valid, valid_pred) if spec.task == "binary" else None
    # binary: the validation scores' calibration, for the drift job's label-free performance estimate
    calibration = fit_calibrator(y_valid, valid_pred) if spec.task == "binary" else None
    digest = spec_hash(spec)
    manifest = {"pipeline": spec.name, "task": spec.task, "metric": spec.metric.primary, "family": best["family"],
                "params": params, "rounds": trained.rounds, "tune_run_id": tune_run.info.run_id,
                "tune_score": best["score"], "validation_score": valid_score, "spec_hash": digest,
                "code_version": code_version(), "gold": snapshot.lineage(), "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "train": {**dataclasses.asdict(trained.sizing), "engine": trained.engine},
                "ray_train_run": posixpath.join(settings.path("ray_storage"), run_name),
                "feature_columns": mats.features.output_columns, "feature_types": mats.feature_types,
                "encoding": mats.features.encoding, "positive_label": spec.positive_label,
                "threshold": threshold, "calibration": calibration}
    bundle = ModelBundle(trained.booster, mats.features, mats.target, manifest)
    bundle_dir = bundle.save(Path(settings.path("models")) / spec.name / run_name)
    tags = {**lineage_tags(digest, gold_path, version), f"{TAG}tune_run_id": tune_run.info.run_id,
            f"{TAG}family": best["family"]}
    run_id = log_train_run(tracking, tags, bundle_dir, bundle.manifest,
                           {f"validation_{spec.metric.primary}": valid_score, "train_seconds": seconds,
                            "rounds": trained.rounds})
    record_baseline_profile(spec, settings, tracking, run_id, snapshot.frames["train"],
                            predict(trained.booster, mats.splits["train"][0], spec.task), bundle.manifest["sha256"][MODEL_FILE])
    log.info("train run %s: %s, %d rounds on %d worker(s), validation %s=%.4f, bundle %s", run_id, best["family"],
             trained.rounds, trained.sizing.num_workers, spec.metric.primary, valid_score, bundle_dir)
    return {"run_id": run_id, "bundle_dir": bundle_dir, "manifest": bundle.manifest, "seconds": seconds}
