"""The fairness audit: groups too small to say anything are reported apart and kept out of the
parity differences; null sensitive values are one clearly named group in every dtype backend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lakeray.evaluate import plots
from lakeray.evaluate.job import group_audit
from lakeray.evaluate.metrics import MISSING_GROUP, fairness_audit, group_labels
from lakeray.evaluate.report import fairness_tables, render_report

pytestmark = pytest.mark.fast


def _audit_data():
    # group a: 40 rows, all predicted positive; b: 40 rows, half; c: 5 rows, none (would dominate the spread)
    groups = np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 5)
    y = np.tile([1, 0], 43)[:85]
    proba = np.concatenate([np.full(40, 0.9), np.tile([0.9, 0.1], 20), np.full(5, 0.1)])
    return y, proba, groups


def test_small_groups_are_reported_apart_and_left_out_of_the_differences():
    y, proba, groups = _audit_data()
    audit = fairness_audit(y, proba, groups)                  # default minimum: 30 rows
    assert audit["min_group_size"] == 30
    assert set(audit["groups"]) == {"a", "b"} and set(audit["small_groups"]) == {"c"}
    assert audit["small_groups"]["c"]["count"] == 5 and audit["small_groups"]["c"]["selection_rate"] == 0.0
    assert audit["demographic_parity_difference"] == 0.5      # 1.0 - 0.5, not 1.0 - 0.0 from 5 rows
    everything = fairness_audit(y, proba, groups, min_group=5)
    assert everything["demographic_parity_difference"] == 1.0 and not everything["small_groups"]
    alone = fairness_audit(y, proba, groups, min_group=41)
    assert alone["groups"] == {} and alone["demographic_parity_difference"] is None
    assert alone["equal_opportunity_difference"] is None


def test_group_audit_of_other_tasks_applies_the_minimum_too():
    rng = np.random.default_rng(0)
    y = rng.normal(size=85)
    _, _, groups = _audit_data()
    audit = group_audit("regression", "rmse", y, y + rng.normal(scale=0.1, size=85), groups, 0.5, min_group=30)
    assert set(audit["groups"]) == {"a", "b"} and set(audit["small_groups"]) == {"c"}
    assert audit["rmse_gap"] is not None and audit["rmse_gap"] >= 0


def test_a_metric_undefined_on_a_group_is_none_without_a_warning():
    """r2 of one row and a multiclass log loss on a group holding one class: None, not NaN and not
    sklearn's warning on the console (a neighbourhood with one house sold in the test split)."""
    import warnings

    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    groups = np.array(["big"] * 4 + ["one"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audit = group_audit("regression", "r2", y, y + 0.1, groups, 0.5, min_group=1)
    assert audit["groups"]["one"] == {"count": 1, "r2": None}
    assert audit["groups"]["big"]["r2"] == pytest.approx(1 - 0.04 / 5.0)   # residuals 0.1 each; squares about the mean 5
    labels = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]])
    multi = group_audit("multiclass", "log_loss", labels, proba, np.array(["x", "x", "x", "y"]), 0.5, min_group=1)
    assert multi["groups"]["y"]["count"] == 1 and multi["groups"]["y"]["log_loss"] is None
    assert multi["groups"]["x"]["log_loss"] == pytest.approx(-np.log(0.8))


def test_null_sensitive_values_are_one_named_group_in_every_backend():
    values = ["f", None, "m", "f", None]
    backends = [pd.Series(values, dtype=object), pd.Series(["f", np.nan, "m", "f", np.nan], dtype=object),
                pd.Series(values, dtype="string[pyarrow]"), pd.Series(values, dtype=pd.ArrowDtype(pa.string())),
                pd.Series(values, dtype="category"), pd.Series([pd.NA if v is None else v for v in values], dtype=object)]
    for series in backends:
        assert group_labels(series).tolist() == ["f", MISSING_GROUP, "m", "f", MISSING_GROUP], series.dtype
    # a numeric attribute read with nulls (float64) names its groups like one read without (int64)
    assert group_labels(pd.Series([0.0, 1.0, np.nan])).tolist() == ["0", "1", MISSING_GROUP]
    assert group_labels(pd.Series([0, 1, None], dtype="Int64")).tolist() == ["0", "1", MISSING_GROUP]
    y = np.array([1, 0, 1, 0, 1])
    audit = fairness_audit(y, np.full(5, 0.9), backends[2].to_numpy(), min_group=1)
    assert set(audit["groups"]) == {"f", "m", MISSING_GROUP}
    assert not {"None", "nan", "<NA>"} & set(audit["groups"])


def test_the_report_lists_small_groups_apart():
    y, proba, groups = _audit_data()
    fairness = {"sex": fairness_audit(y, proba, groups)}
    tables = fairness_tables(fairness)
    summary = tables["fairness"][0]
    assert summary["small groups (rows)"] == "c (5)" and summary["groups compared"] == 2
    assert summary["demographic_parity_difference"] == 0.5
    rows = {r["group"]: r for r in tables["fairness by group: sex"]}
    assert rows["c"]["in differences"] == "no: 5 rows < 30" and rows["a"]["in differences"] == "yes"
    page = render_report(title="t", summary={}, metrics={}, gate=[], lineage={}, images={}, tables=tables)
    assert "fairness by group: sex" in page and "no: 5 rows &lt; 30" in page and "c (5)" in page
    none = fairness_tables({"sex": fairness_audit(y, proba, groups, min_group=100)})
    assert none["fairness"][0]["demographic_parity_difference"].startswith("n/a")
    assert plots.group_bars_png(fairness).startswith(b"\x89PNG")
