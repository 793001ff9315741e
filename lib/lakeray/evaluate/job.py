"""The evaluate job: score the test split, compare, audit, report, and gate the promotion.

The candidate is the newest (or the given) train run's bundle, verified against its SHA-256.
The test split is read at the gold version the model was trained on and scored out-of-core
(Dask) by the candidate, the spec's baseline (fitted on the same training split) and the
current champion. Metrics, calibration, a fairness audit per sensitive attribute and an HTML
report go to MLflow; the candidate becomes `champion` only if every gate check passes,
otherwise GateError names the failed checks (exit code 3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

from lakeray.errors import GateError
from lakeray.evaluate.baseline import fit_baseline
from lakeray.evaluate.metrics import (
    MIN_GROUP_SIZE,
    all_metrics,
    audited_groups,
    calibration,
    fairness_audit,
    group_labels,
)
from lakeray.evaluate.report import evaluation_images, fairness_tables, render_report, write_report
from lakeray.evaluate.scoring import score_files, scores_of, split_files
from lakeray.features.handoff import load_splits
from lakeray.models.bundle import load_bundle
from lakeray.raysession import ray_session
from lakeray.registry.gate import CHAMPION, gate_checks, promote
from lakeray.registry.loading import load_registered
from lakeray.registry.tracking import TAG, configure_tracking, lineage_tags
from lakeray.spec import PipelineSpec

log = logging.getLogger(__name__)


def _group_metric(task: str, metric: str, y, scores) -> float | None:
    """The metric on one group's rows; None where it is undefined there (r2 of one row, a log loss
    without every class), not a NaN and a warning on the console."""
    if len(y) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = all_metrics(task, y, scores)[metric]
        except ValueError:
            return None
    return float(value) if value is not None and math.isfinite(value) else None


def group_audit(task: str, metric: str, y, scores, groups, threshold: float, min_group: int = MIN_GROUP_SIZE) -> dict:
    """Binary: selection rate / TPR parity (fairness_audit). Other tasks: the metric per group.
    Groups under `min_group` rows are reported apart and left out of the gap."""
    if task == "binary":
        return fairness_audit(y, scores, groups, threshold, min_group)
    labels = group_labels(groups)
    per_group = {}
    for g in sorted(set(labels.tolist())):
        m = labels == g
        per_group[g] = {"count": int(m.sum()), metric: _group_metric(task, metric, y[m], scores[m])}
    return audited_groups(per_group, min_group, (f"{metric}_gap", metric))


@contextlib.contextmanager
def _ray_for_dask(settings):
    """Yields whether to run the Dask graph on Ray: where one is running, or where `ray job submit`
    points (RAY_ADDRESS; connected for the block and disconnected after it)."""
    import ray

    if ray.is_initialized():
        yield True
    elif os.environ.get("RAY_ADDRESS"):
        with ray_session(settings):
            yield True
    else:
        yield False


def _scalars(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def log_evaluate_run(tracking, tags: dict, metrics: dict, checks: list, artifacts: dict, report: Path) -> str:
    with tracking.start_run("evaluate", tags) as run:
        for model, values in metrics.items():
            run.log_metrics({f"{model}_{k}": v for k, v in _scalars(values).items()})
        run.set_tags({f"{TAG}gate": "passed" if all(c.passed for c in checks) else "failed",
                      **{f"{TAG}gate.{c.check.replace(' ', '_')}": "pass" if c.passed else "FAIL" for c in checks}})
        for name, obj in artifacts.items():
            run.log_json(obj, f"{name}.json")
        run.log_artifact(str(report))
        return run.run_id


def run_evaluate_job(spec: PipelineSpec, settings, *, train_run_id: str | None = None, smoke: bool = False) -> dict:
    conf = settings["evaluate"]
    threshold = float(conf.get("threshold", 0.5))
    tracking = configure_tracking(settings, spec.name)
    train_run = tracking.latest_run("train", train_run_id)
    tags = train_run.data.tags
    gold_path, version = tags[f"{TAG}gold_path"], int(tags[f"{TAG}gold_version"])
    with tempfile.TemporaryDirectory() as scratch:
        candidate = load_bundle(tracking.download(f"runs:/{train_run.info.run_id}/bundle", Path(scratch) / "candidate"),
                                expected_model_sha256=tags.get(f"{TAG}model_sha256"))
        champion_version, champion = load_registered(tracking, CHAMPION, Path(scratch) / "champion") or (None, None)
        train = load_splits(gold_path, version, splits=("train",)).frames["train"]
        baseline = fit_baseline(spec.baseline.model, spec.task, train, candidate.target.transform(train[spec.target]),
                                dict(spec.features), len(candidate.target.classes))
        scorers = {"candidate": candidate.predict_frame, "baseline": baseline}
        feature_columns = set(candidate.features.features) | set(baseline.features.features)
        if champion is not None:
            scorers["champion"] = champion.predict_frame
            feature_columns |= set(champion.features.features)
        with _ray_for_dask(settings) as use_ray:
            scored = score_files(scorers, split_files(gold_path, version, "test"),
                                 feature_columns=sorted(feature_columns), target_encoder=candidate.target,
                                 target=spec.target, keep=list(spec.sensitive_attributes),
                                 blocksize=conf.get("dask_blocksize", "64MiB"), use_ray=use_ray)
    y = scored["label"].to_numpy()
    thresholds = {"candidate": candidate.threshold, "baseline": threshold,
                  **({"champion": champion.threshold} if champion is not None else {})}
    metrics = {name: all_metrics(spec.task, y, scores_of(scored, name), thresholds[name]) for name in scorers}
    cand_scores = scores_of(scored, "candidate")
    calib = calibration(y, cand_scores, int(conf.get("calibration_bins", 10))) if spec.task == "binary" else None
    min_group = int(conf.get("fairness_min_group", MIN_GROUP_SIZE))
    fairness = {a: group_audit(spec.task, spec.metric.primary, y, cand_scores, scored[a].to_numpy(), candidate.threshold,
                               min_group) for a in spec.sensitive_attributes}
    checks = gate_checks(spec, metrics["candidate"], metrics["baseline"], metrics.get("champion"))
    passed = all(c.passed for c in checks)
    lineage = {"pipeline": spec.name, "train_run_id": train_run.info.run_id, "gold_path": gold_path,
               "gold_version": version, "test_rows": int(len(y)), "spec_hash": tags.get(f"{TAG}spec_hash"),
               "code_version": tags.get(f"{TAG}code_version"), "model_sha256": tags.get(f"{TAG}model_sha256"),
               "family": candidate.manifest["family"],
               **({"decision_threshold": thresholds["candidate"]} if spec.task == "binary" else {}),
               **({"classes": ", ".join(str(c) for c in candidate.target.classes)} if spec.task == "multiclass" else {}),
               "champion_version": champion_version.version if champion_version else None}
    others = {k: (y, scores_of(scored, k)) for k in scorers if k != "candidate"} if spec.task == "binary" else None
    images = evaluation_images(spec.task, y, cand_scores, calibration=calib, fairness=fairness or None,
                               importance=candidate.importance(), confusion=metrics["candidate"].get("confusion_matrix"),
                               labels=[str(c) for c in candidate.target.classes] or None, others=others)
    html = render_report(title=f"lakeray evaluation: {spec.name}", lineage=lineage, images=images,
                         summary={"verdict": "PROMOTE" if passed else "REJECT", "metric": spec.metric.primary,
                                  "test rows": len(y), "evaluated at": dt.datetime.now(dt.timezone.utc).isoformat()},
                         metrics=metrics, gate=[c.as_dict() for c in checks],
                         tables={**({"calibration": calib["bins"]} if calib else {}), **fairness_tables(fairness)})
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    report = write_report(html, Path(settings.path("models")) / spec.name / "reports" / f"evaluate-{stamp}.html")
    run_tags = {**lineage_tags(tags.get(f"{TAG}spec_hash", ""), gold_path, version),
                f"{TAG}train_run_id": train_run.info.run_id}
    run_id = log_evaluate_run(tracking, run_tags, metrics, checks,
                              {"metrics": metrics, "fairness": fairness, "calibration": calib, "gate": [c.as_dict() for c in checks],
                               "lineage": lineage}, report)
    for c in checks:
        log.info("gate  %-28s %s  %s", c.check, "pass" if c.passed else "FAIL", c.detail)
    result = {"run_id": run_id, "metrics": metrics, "checks": checks, "report": report, "fairness": fairness,
              "calibration": calib, "promoted_version": None, "champion_version": lineage["champion_version"]}
    if not passed:
        failed = "; ".join(f"{c.check}: {c.detail}" for c in checks if not c.passed)
        raise GateError(f"{spec.name}: candidate from train run {train_run.info.run_id} not promoted. Failed: {failed}. "
                        f"Report: {report}", failed=[c.check for c in checks if not c.passed], result=result)
    result["promoted_version"] = promote(tracking.client, tracking.model_name, train_run.info.run_id, {
        "model_sha256": tags.get(f"{TAG}model_sha256"), "gold_version": version, "evaluate_run_id": run_id,
        "spec_hash": tags.get(f"{TAG}spec_hash"), spec.metric.primary: metrics["candidate"][spec.metric.primary]})
    log.info("report %s", report)
    return result
