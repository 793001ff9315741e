"""The inference log: typed batch appends, and labels merged in later by request id."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from deltalake import DeltaTable

from lakeray.errors import LakerayError
from lakeray.monitor.inference_log import (
    append_predictions,
    append_table,
    inference_schema,
    labels_path,
    merge_labels,
    predictions_table,
)


def test_append_then_merge_labels_by_request_id(tmp_path, churn_spec):
    path = str(tmp_path / "inference_log")
    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.timezone.utc)
    rows = [{"request_id": f"r{i}", "ts": now + dt.timedelta(days=i % 2), "model_version": "1", "train_run_id": "t",
             "variant": "champion", "tenure_months": float(i), "plan": "basic", "prediction": 0.1 * i, "latency_ms": 2.0}
            for i in range(6)]
    append_predictions(path, churn_spec, rows)
    table = DeltaTable(path)
    assert table.metadata().partition_columns == ["date"]
    frame = table.to_pandas()
    assert len(frame) == 6 and frame["label"].isna().all() and set(frame["date"]) == {"2026-11-25", "2026-11-26"}
    assert frame["region"].isna().all()              # features not sent are stored as nulls, typed from the spec
    metrics = merge_labels(path, {"r1": True, "r4": False, "nope": True})
    assert metrics["num_target_rows_updated"] == 2 and metrics["unknown_request_ids"] == 1
    assert len(DeltaTable(path).to_pandas()) == 6    # the log itself is not rewritten
    labels = DeltaTable(labels_path(path)).to_pandas().set_index("request_id")["label"]
    # every label is kept, "nope" too: its prediction may still be in a replica's buffer
    assert labels.to_dict() == {"r1": "True", "r4": "False", "nope": "True"}
    with pytest.raises(LakerayError, match="no inference log at"):
        merge_labels(str(tmp_path / "missing"), {"r1": 1})


def test_labels_go_in_while_a_replica_appends_without_pause(tmp_path, churn_spec):
    """A writer appending to today's partition in a loop (a commit every few ms) beside ten label
    merges for today's requests: a MERGE into the log lost every race (10 of 10 failed, measured);
    the labels table takes each at once, and the log loses no row."""
    path = str(tmp_path / "inference_log")
    now = dt.datetime.now(dt.timezone.utc)

    def rows(a, b):
        return [{"request_id": f"r{i}", "ts": now, "model_version": "1", "train_run_id": "t", "variant": "champion",
                 "tenure_months": float(i), "plan": "basic", "prediction": 0.5, "latency_ms": 2.0} for i in range(a, b)]

    append_predictions(path, churn_spec, rows(0, 1000))
    stop, appended, errors = threading.Event(), [1000], []

    def writer():
        while not stop.is_set():
            try:
                append_predictions(path, churn_spec, rows(appended[0], appended[0] + 20))
                appended[0] += 20
            except Exception as exc:
                errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        counts = [merge_labels(path, {f"r{i}": "yes" for i in range(k * 100, k * 100 + 100)}) for k in range(10)]
    finally:
        stop.set()
        thread.join()
    assert [c["num_target_rows_updated"] for c in counts] == [100] * 10 and not errors
    log = DeltaTable(path).to_pandas()
    assert len(log) == log["request_id"].nunique() == appended[0] > 1000
    assert len(DeltaTable(labels_path(path)).to_pandas()) == 1000


def test_the_drift_job_reads_each_requests_newest_label(spark, tmp_path, churn_spec):
    from lakeray.monitor.job import with_labels

    path = str(tmp_path / "inference_log")
    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.timezone.utc)
    rows = [{"request_id": f"r{i}", "ts": now, "model_version": "1", "train_run_id": "t", "variant": "champion",
             "prediction": 0.5, "latency_ms": 2.0, "label": "logged" if i == 3 else None} for i in range(4)]
    append_predictions(path, churn_spec, rows)
    frame = spark.read.format("delta").load(path)
    assert {r["request_id"]: r["label"] for r in with_labels(spark, frame, labels_path(path)).collect()} == {
        "r0": None, "r1": None, "r2": None, "r3": "logged"}            # no labels table yet
    merge_labels(path, {"r0": "no", "r1": "no"})
    merge_labels(path, {"r1": "yes", "r9": "yes"})                     # r1 corrected; r9 not logged
    joined = {r["request_id"]: r["label"] for r in with_labels(spark, frame, labels_path(path)).collect()}
    assert joined == {"r0": "no", "r1": "yes", "r2": None, "r3": "logged"}


def test_a_multiclass_log_keeps_class_probabilities_and_an_older_log_takes_the_column(tmp_path, churn_spec):
    spec = churn_spec.model_copy(update={"task": "multiclass"})
    path = str(tmp_path / "inference_log")
    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.timezone.utc)

    def rows(first: int, probabilities: bool) -> list[dict]:
        return [{"request_id": f"r{i}", "ts": now, "model_version": "1", "train_run_id": "t", "variant": "champion",
                 "tenure_months": float(i), "prediction": 1.0, "latency_ms": 2.0,
                 **({"probabilities": [0.2, 0.7, 0.1]} if probabilities else {})} for i in range(first, first + 3)]

    # a log written before it kept probabilities: the multiclass schema of then, without the column
    older = inference_schema(spec)
    append_table(path, predictions_table(spec, rows(0, False)).select([f.name for f in older if f.name != "probabilities"]))
    assert "probabilities" not in DeltaTable(path).schema().to_arrow().names
    append_predictions(path, spec, rows(3, True))
    frame = DeltaTable(path).to_pandas().set_index("request_id").sort_index()
    assert frame.loc["r0":"r2", "probabilities"].isna().all()
    assert [list(p) for p in frame.loc["r3":"r5", "probabilities"]] == [[0.2, 0.7, 0.1]] * 3
    # another task's log has no such column
    assert "probabilities" not in inference_schema(churn_spec).names
