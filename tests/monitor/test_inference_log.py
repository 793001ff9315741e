"""The inference log: typed batch appends, and labels merged in later by request id."""

from __future__ import annotations

import datetime as dt

import pytest
from deltalake import DeltaTable

from lakeray.errors import LakerayError
from lakeray.monitor.inference_log import append_predictions, merge_labels


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
    labels = DeltaTable(path).to_pandas().set_index("request_id")["label"]
    assert labels["r1"] == "True" and labels["r4"] == "False" and labels.drop(["r1", "r4"]).isna().all()
    assert len(labels) == 6                          # a merge never inserts
    with pytest.raises(LakerayError, match="no inference log at"):
        merge_labels(str(tmp_path / "missing"), {"r1": 1})
