"""tune -> train -> evaluate on the churn gold table, on a real local Ray, with a real MLflow
SQLite store: lineage, checksums, report, Dask scoring and the promotion gate."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from lakeray.errors import GateError, LakerayError
from lakeray.evaluate.job import run_evaluate_job
from lakeray.evaluate.scoring import score_files, split_files
from lakeray.features import load_splits
from lakeray.models import load_bundle
from lakeray.registry.gate import current_champion
from lakeray.registry.tracking import TAG
from lakeray.spec import spec_hash
from lakeray.spec.models import Metric
from tests.support import settings_in


def test_every_run_records_the_pinned_gold_version_and_lineage(ml, easy_spec):
    client, gold = ml["tracking"].client, ml["gold"]
    for stage in ("tune", "train", "evaluate"):
        run = client.get_run(ml["out"][stage]["run_id"])
        tags = run.data.tags
        assert tags[f"{TAG}stage"] == stage and tags[f"{TAG}pipeline"] == "churn"
        assert tags[f"{TAG}gold_version"] == str(gold.version) and tags[f"{TAG}gold_path"] == gold.path
        assert tags[f"{TAG}spec_hash"] == spec_hash(easy_spec) and tags[f"{TAG}code_version"]
    board = ml["tracking"].load_json(ml["out"]["tune"]["run_id"], "leaderboard.json")
    assert len(board) == ml["settings"]["tune"]["smoke"]["num_samples"]
    assert [r["score"] for r in board] == sorted((r["score"] for r in board), reverse=True)
    trials = client.search_runs([ml["tracking"].experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{ml['out']['tune']['run_id']}'")
    assert len(trials) == len(board) and all("family" in t.data.params for t in trials)


def test_the_champion_bundle_is_verified_and_its_preprocessing_was_fitted_on_train(ml, easy_spec, tmp_path):
    tracking = ml["tracking"]
    champion = current_champion(tracking.client, tracking.model_name)
    assert str(champion.version) == ml["out"]["evaluate"]["promoted_version"] == "1"
    assert champion.run_id == ml["out"]["train"]["run_id"]
    bundle = load_bundle(tracking.download(f"models:/{tracking.model_name}@champion", tmp_path),
                         expected_model_sha256=champion.tags["model_sha256"])
    manifest = ml["out"]["train"]["manifest"]
    assert bundle.manifest["sha256"] == manifest["sha256"] and manifest["gold"]["gold_version"] == ml["gold"].version
    train = load_splits(ml["gold"].path, ml["gold"].version, splits=("train",)).frames["train"]
    numeric = next(n for n, k in easy_spec.features.items() if k == "numeric")
    assert bundle.features.medians[numeric] == pytest.approx(float(train[numeric].astype(float).median()))
    local = load_bundle(ml["out"]["train"]["bundle_dir"])
    test = load_splits(ml["gold"].path, ml["gold"].version, splits=("test",)).frames["test"]
    np.testing.assert_array_equal(bundle.predict_frame(test), local.predict_frame(test))


def test_training_stored_the_baseline_profile_for_drift(ml, easy_spec, churn_world):
    from lakeray.monitor.profile import PREDICTION, read_profile

    run_id = ml["out"]["train"]["run_id"]
    profile = read_profile(churn_world["lake"].monitor("baseline_profiles"), run_id)   # ml shares its lakehouse
    assert set(profile) == set(easy_spec.features) | {PREDICTION}
    train = load_splits(ml["gold"].path, ml["gold"].version, splits=("train",)).frames["train"]
    numeric = next(n for n, k in easy_spec.features.items() if k == "numeric")
    assert sum(profile[numeric]["counts"]) == int(train[numeric].notna().sum())
    assert profile[PREDICTION]["count"] == len(train)
    assert ml["tracking"].load_json(run_id, "profile.json") == profile


def test_report_and_metrics_are_logged(ml, easy_spec):
    ev = ml["out"]["evaluate"]
    html = ev["report"].read_text()
    for section in ("ROC", "calibration", "PASS"):
        assert section.lower() in html.lower()
    assert html.count("data:image/png;base64,") >= 5            # roc, pr, confusion, calibration, importance, fairness
    run = ml["tracking"].client.get_run(ev["run_id"])
    assert run.data.metrics["candidate_roc_auc"] == pytest.approx(ev["metrics"]["candidate"]["roc_auc"])
    assert run.data.metrics["baseline_roc_auc"] == pytest.approx(0.5)     # majority baseline: a constant score
    assert run.data.tags[f"{TAG}gate"] == "passed"
    artifacts = {a.path for a in ml["tracking"].client.list_artifacts(ev["run_id"])}
    assert {ev["report"].name, "metrics.json", "fairness.json", "calibration.json"} <= artifacts
    for attribute in easy_spec.sensitive_attributes:
        audit = ev["fairness"][attribute]
        groups = {**audit["groups"], **audit["small_groups"]}        # small groups are reported apart
        assert sum(g["count"] for g in groups.values()) == len(
            load_splits(ml["gold"].path, ml["gold"].version, splits=("test",)).frames["test"])
        assert all(g["count"] >= audit["min_group_size"] == 30 for g in audit["groups"].values())
        dpd = audit["demographic_parity_difference"]
        assert dpd is None if len(audit["groups"]) < 2 else 0 <= dpd <= 1


def test_the_same_model_again_does_not_beat_the_champion(ml, easy_spec):
    with pytest.raises(GateError) as info:
        run_evaluate_job(easy_spec, ml["settings"], train_run_id=ml["out"]["train"]["run_id"])
    assert info.value.failed == ["beats champion"] and info.value.exit_code == 3
    assert "beats champion: roc_auc" in str(info.value)
    assert str(info.value.result["champion_version"]) == "1"        # what keeps serving, for the summary
    assert str(current_champion(ml["tracking"].client, ml["tracking"].model_name).version) == "1"


def test_a_missed_threshold_is_named_and_nothing_is_promoted(ml, easy_spec):
    strict = easy_spec.model_copy(update={"metric": Metric(primary="roc_auc", thresholds={"roc_auc": 0.999})})
    with pytest.raises(GateError, match=r"threshold roc_auc: roc_auc 0\.\d+ >= 0\.999 required"):
        run_evaluate_job(strict, ml["settings"], train_run_id=ml["out"]["train"]["run_id"])
    versions = ml["tracking"].client.search_model_versions(f"name = '{ml['tracking'].model_name}'")
    assert len(versions) == 1


def test_dask_scoring_on_ray_matches_threads_and_reads_only_the_test_split(ml, ray_local):
    gold = ml["gold"]
    bundle = load_bundle(ml["out"]["train"]["bundle_dir"])
    files = split_files(gold.path, gold.version, "test")
    kwargs = dict(feature_columns=sorted(bundle.features.features), target_encoder=bundle.target,
                  target="churned", keep=["region"], blocksize="1KiB")
    on_ray = score_files({"m": bundle.predict_frame}, files, use_ray=True, **kwargs)
    threads = score_files({"m": bundle.predict_frame}, files, use_ray=False, **kwargs)
    test = load_splits(gold.path, gold.version, splits=("test",)).frames["test"]
    assert len(on_ray) == len(threads) == len(test)
    np.testing.assert_allclose(np.sort(on_ray["m"].to_numpy()), np.sort(bundle.predict_frame(test)), rtol=1e-6)
    np.testing.assert_allclose(on_ray["m"].to_numpy(), threads["m"].to_numpy())
    with pytest.raises(LakerayError, match="no 'holdout' rows"):
        split_files(gold.path, gold.version, "holdout")


def test_tables_with_deletion_vectors_are_refused(spark, tmp_path):
    path = str(tmp_path / "dv")
    spark.range(10).selectExpr("id", "IF(id < 5, 'train', 'test') AS split").write.format("delta") \
        .partitionBy("split").option("delta.enableDeletionVectors", "true").save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 7")
    with pytest.raises(LakerayError, match="deletionVectors"):
        split_files(path, 1, "test")


def test_training_needs_a_tune_run_first(churn_world, tmp_path, easy_spec):
    from lakeray.train.job import run_train_job

    settings = settings_in(tmp_path)
    with pytest.raises(LakerayError, match="no finished 'tune' run for pipeline 'churn'.*run `lakeray tune"):
        run_train_job(easy_spec, settings)
    shutil.rmtree(tmp_path / "mlflow", ignore_errors=True)


def test_the_evaluate_command_exits_3_naming_the_failed_check(ml, caplog):
    from lakeray.cli import main

    paths = [f"--conf=paths.{key}={value}" for key, value in ml["settings"]["paths"].items()]
    code = main(["evaluate", "--pipeline", "pipelines/churn.yaml", "--train-run-id", ml["out"]["train"]["run_id"], *paths])
    assert code == 3
    # the real churn spec: its own thresholds, logistic baseline and champion margin (0.002) are checked
    assert "not promoted. Failed:" in caplog.text and "beats champion" in caplog.text


@pytest.fixture()
def webhook():
    """A real HTTP server on loopback that records the JSON it is sent."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()


def test_drift_job_flags_exactly_the_shifted_feature_and_alerts(ml, easy_spec, spark, webhook):
    import datetime as dt

    from lakeray.monitor.inference_log import append_predictions
    from lakeray.monitor.job import run_drift_job
    from lakeray.monitor.profile import PREDICTION

    url, received = webhook
    settings = ml["settings"]
    settings["drift"]["alert"]["webhook_url"] = url
    settings["drift"]["segment_min_rows"] = 100         # the suite's churn world trains on ~280 rows
    champion = current_champion(ml["tracking"].client, ml["tracking"].model_name)
    bundle = load_bundle(ml["out"]["train"]["bundle_dir"])
    train = load_splits(ml["gold"].path, ml["gold"].version, splits=("train",)).frames["train"]
    numeric = [n for n, k in easy_spec.features.items() if k == "numeric" and n not in easy_spec.segment_columns]
    shifted = numeric[0]
    rng = np.random.default_rng(3)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)   # a window no other test serves traffic in
    frame = train.sample(n=3000, replace=True, random_state=4).reset_index(drop=True)
    frame[shifted] = frame[shifted].astype(float) + 3 * float(train[shifted].astype(float).std())
    scores = bundle.predict_frame(frame)
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        rows.append({"request_id": f"r{i}", "ts": now - dt.timedelta(minutes=int(rng.integers(1, 600))),
                     "model_version": str(champion.version), "train_run_id": champion.run_id, "variant": "champion",
                     **{name: (None if pd.isna(record[name]) else record[name]) for name in easy_spec.features},
                     "prediction": float(scores[i]), "latency_ms": 3.0,
                     "label": str(record[easy_spec.target]) if i < 400 else None})
    from lakeray.lakehouse import Lakehouse

    lake = Lakehouse.for_pipeline(settings, easy_spec)
    append_predictions(lake.monitor("inference_log"), easy_spec, rows)
    outcome = run_drift_job(spark, easy_spec, settings, window="1d", now=now + dt.timedelta(seconds=1))
    assert outcome.rows == 3000
    assert [c for c in outcome.drifted if c != PREDICTION] == [shifted]
    assert outcome.performance["labelled_rows"] == 400 and 0 <= outcome.performance["value"] <= 1
    assert outcome.alerted and received and received[0]["drifted"] == outcome.drifted
    stored = spark.read.format("delta").load(lake.monitor("drift_metrics")).where(f"run_id = '{outcome.run_id}'")
    assert {r["column"] for r in stored.where("drifted AND segment_column IS NULL AND comparison = 'baseline'").collect()} == set(outcome.drifted)
    report = outcome.report.read_text()
    assert report.count("data:image/svg+xml;base64,") == len(outcome.columns) + 1  # a plot per column, performance over time
    # the performance estimated from calibrated scores, without labels, beside the realised one
    assert outcome.estimated["metric"] == "roc_auc" and 0.5 < outcome.estimated["value"] <= 1
    assert set(outcome.estimated["metrics"]) >= {"roc_auc", "precision", "recall", "accuracy"}
    assert "estimated performance (no labels)" in report
    # per segment (the spec's sensitive attributes): the shifted feature drifts in every segment judged
    judged = [s for s in outcome.segments if s.judged]
    assert {s.column for s in judged} >= {"gender"} and all(s.drifted and shifted in s.drifted for s in judged)
    assert all(min(s.rows, s.baseline_rows) < 100 for s in outcome.segments if not s.judged)   # drift.segment_min_rows
    assert all(f"segment {s.column}={s.value}" in report for s in outcome.segments)
    by_segment = stored.where("segment_column = 'gender' AND drifted").select("segment_value", "column").distinct().collect()
    assert {r["segment_value"] for r in by_segment} == {s.value for s in judged if s.column == "gender"}
    profiles = spark.read.format("delta").load(lake.monitor("window_profiles")).where(f"run_id = '{outcome.run_id}'")
    whole = profiles.where("segment_column IS NULL").collect()
    assert {r["column"] for r in whole} == set(easy_spec.features) | {PREDICTION}
    assert all(r["rows"] == 3000 for r in whole)
    assert next(r for r in whole if r["column"] == shifted)["mean"] == pytest.approx(float(frame[shifted].astype(float).mean()))
    # the same window again: counted from the profiles table, the same statistics
    again = run_drift_job(spark, easy_spec, settings, window="1d", now=now + dt.timedelta(seconds=1))
    assert again.rows == 3000 and [c.statistics for c in again.columns] == [c.statistics for c in outcome.columns]
    quiet = run_drift_job(spark, easy_spec, settings, window="1h", now=now - dt.timedelta(days=2))
    assert quiet.rows == 0 and not quiet.columns and not quiet.alerted     # too few rows: no verdict


def test_closed_loop_serve_shift_drift_retrain_hot_swap(ml, easy_spec, spark, tmp_path):
    """Last in this file: it moves the champion. The demo's loop on the suite's churn world: a real
    Serve answers ordinary traffic (no drift) and shifted traffic; the drift job finds exactly the
    shifted features and retrains on the billing database's new rows (a real PostgreSQL):
    ingest -> prepare -> tune -> train -> evaluate -> gate -> alias; the replica swaps to the new
    champion while a client keeps sending."""
    from deltalake import DeltaTable

    from lakeray.lakehouse import Lakehouse
    from lakeray_examples.demoloop import SHIFTED, run_closed_loop
    from tests.support import CHURN_ROWS, CHURN_SEED, free_port, write_spec

    settings = ml["settings"]
    settings["serve"]["port"] = free_port()
    settings["drift"]["alert"]["webhook_url"] = ""
    spec_file = write_spec(easy_spec, tmp_path)
    tracking = ml["tracking"]
    before = current_champion(tracking.client, tracking.model_name)
    out = run_closed_loop(spark, easy_spec, str(spec_file), settings, ml["gold"], smoke=True, rows=1500,
                          customers=CHURN_ROWS, seed=CHURN_SEED, traffic_splits=("train", "validation", "test"))
    assert not out["quiet"].drifted and out["quiet"].rows == 1500
    assert out["quiet"].performance["labelled_rows"] == 1500 == out["labels_merged"]   # labels merged by request id
    assert out["drifted"] == sorted(SHIFTED) and out["drift"].alerted is False           # no webhook configured
    assert out["gold_version"] == ml["gold"].version + 1                                  # prepare wrote a new gold version
    newest = tracking.latest_run("evaluate")
    assert newest.data.tags[f"{TAG}gold_version"] == str(out["gold_version"])
    champion = current_champion(tracking.client, tracking.model_name)
    assert out["promoted"] == str(champion.version) != str(before.version)
    assert set(out["trickle"]) == {str(before.version), out["promoted"]}                # served by both, none failed
    lake = Lakehouse.for_pipeline(settings, easy_spec)
    runs = DeltaTable(lake.monitor("drift_metrics")).to_pandas()
    mine = runs[(runs["run_id"] == out["drift"].run_id) & (runs["comparison"] == "baseline") & runs["segment_column"].isna()]
    assert set(mine.loc[mine["drifted"], "column"]) == set(out["drift"].drifted)
