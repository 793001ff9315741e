"""Metrics against hand-computed values on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from lakeray.errors import LakerayError
from lakeray.evaluate.metrics import binary_metrics, calibration, fairness_audit, multiclass_metrics, regression_metrics

pytestmark = pytest.mark.fast

Y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
P = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4])


def test_binary_metrics_by_hand():
    m = binary_metrics(Y, P)
    # predictions at 0.5: 1 1 0 1 0 0 1 0 -> tp 3, fn 1, fp 1, tn 3
    assert m["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == 0.75 and m["precision"] == 0.75 and m["recall"] == 0.75 and m["f1"] == 0.75
    # positives 0.9 0.8 0.7 beat all 4 negatives (0.6 0.2 0.1 0.4); 0.3 beats 2: 14 of 16 pairs
    assert m["roc_auc"] == pytest.approx(14 / 16)
    assert m["log_loss"] == pytest.approx(-np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P)))
    with pytest.raises(LakerayError, match="need both classes"):
        binary_metrics(np.ones(3), np.ones(3) * 0.5)


def test_multiclass_and_regression():
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = multiclass_metrics(np.array([0, 1, 2, 1]), proba)
    assert m["accuracy"] == 0.75 and m["confusion_matrix"][1] == [1, 1, 0]
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert r["mae"] == pytest.approx(2 / 3) and r["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert r["r2"] == pytest.approx(1 - 4 / 2)


def test_calibration_table_and_ece():
    c = calibration(np.array([0, 1, 1, 1]), np.array([0.1, 0.15, 0.9, 0.95]), bins=2)
    assert [b["count"] for b in c["bins"]] == [2, 2]
    assert c["bins"][0]["observed_rate"] == 0.5 and c["bins"][1]["observed_rate"] == 1.0
    assert c["ece"] == pytest.approx(0.5 * abs(0.125 - 0.5) + 0.5 * abs(0.925 - 1.0))


def test_fairness_audit_by_hand():
    groups = np.array(["a", "a", "b", "b", "a", "b", "a", "b"])
    f = fairness_audit(Y, P, groups, min_group=1)
    # a: rows 0,1,4,6 -> preds 1,1,0,1 (selection 0.75), positives 0,1,6 all predicted -> TPR 1.0
    # b: rows 2,3,5,7 -> preds 0,1,0,0 (selection 0.25), positive row 2 missed -> TPR 0.0
    assert f["groups"]["a"]["selection_rate"] == 0.75 and f["groups"]["b"]["selection_rate"] == 0.25
    assert f["demographic_parity_difference"] == 0.5
    assert f["equal_opportunity_difference"] == 1.0
