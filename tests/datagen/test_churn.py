"""The bundled data: deterministic, with a truth that adds up, and the real Telco table."""

from __future__ import annotations

import pandas as pd

from lakeray.datagen import churn, telco


def test_same_seed_same_data_and_truth():
    a, b = churn.generate(300, seed=5), churn.generate(300, seed=5)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    pd.testing.assert_frame_equal(a.subscriptions, b.subscriptions)
    assert a.truth == b.truth
    assert churn.generate(300, seed=6).truth.churn_rate != a.truth.churn_rate


def test_truth_adds_up():
    gen = churn.generate(1000, seed=1)
    for name, e in gen.truth.expected.items():
        assert e["rows_in"] == e["clean"] + e["quarantined"] + e["duplicates"], name
        assert e["quarantined"] == sum(e["quarantine_by_rule"].values()), name
        assert e["quarantined"] > 0 and e["duplicates"] > 0, name   # every silo has faults
    assert gen.truth.gold["clean"] + gen.truth.gold["missing_target"] == gen.truth.gold["rows_in"]
    assert 0.1 < gen.truth.churn_rate < 0.4


def test_telco_silos_come_from_the_real_table(tmp_path):
    summary = telco.write_landing(tmp_path)
    assert summary["rows"] == 7043 and summary["missing_total_charges"] == 11
    assert abs(summary["churn_rate"] - 0.2654) < 0.001     # the published churn rate of the IBM sample
    billing = pd.read_parquet(tmp_path / "billing" / "billing.parquet")
    assert list(billing.columns) == telco.BILLING and len(billing) == 7043
