"""The bundled data: deterministic, with a truth that adds up, and the real Telco table."""

from __future__ import annotations

import pandas as pd
import pytest

from lakeray_examples.datagen import churn, telco

pytestmark = pytest.mark.fast


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


def test_the_shifted_world_is_the_same_customers_later_with_moved_billing():
    """What the demo's retraining ingests: the same customers (the CRM export is not rewritten),
    billing rows newer, prices up, contracts moved; an unknown world is refused by name."""
    import numpy as np
    import pytest

    base, moved = churn.generate(1000, seed=3), churn.generate(1000, seed=3, world="shifted")
    pd.testing.assert_frame_equal(base.customers.drop(columns="updated_at"), moved.customers.drop(columns="updated_at"))
    b = base.subscriptions.set_index("customer_id").sort_index()
    m = moved.subscriptions.set_index("customer_id").sort_index()
    m = m[~m.index.duplicated()]
    b = b[~b.index.duplicated()].loc[m.index]
    assert (m["updated_at"] > b["updated_at"]).all()                       # later rows win the latest-by dedupe
    ok = (b["monthly_charges"] > 0) & (m["monthly_charges"] > 0)
    np.testing.assert_allclose(m.loc[ok, "monthly_charges"], b.loc[ok, "monthly_charges"] * 1.3, atol=0.02)
    month_to_month = lambda f: f["contract"].str.lower().str.replace(" ", "-").isin(["month-to-month", "m2m"]).mean()  # noqa: E731
    assert month_to_month(m) > month_to_month(b) + 0.2
    with pytest.raises(ValueError, match="unknown world 'later'"):
        churn.generate(100, world="later")


def test_only_churn_has_a_shifted_world(telco_spec, tmp_path):
    import pytest

    from lakeray.errors import LakerayError
    from lakeray.lakehouse import Lakehouse
    from lakeray_examples.datagen.bundles import bundled_data
    from tests.support import settings_in

    lake = Lakehouse.for_pipeline(settings_in(tmp_path), telco_spec)
    with pytest.raises(LakerayError, match="pipeline 'telco' has no 'shifted' world"):
        with bundled_data(telco_spec, lake, size="smoke", world="shifted"):
            pass
    assert not any(tmp_path.rglob("*.csv"))                                 # nothing was written
