"""Drift of a window (Spark) against a baseline profile: exactly the shifted columns drift, and
the counts and statistics equal numpy/scipy on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lakeray.config import load_settings
from lakeray.monitor.drift import NULL, compute_drift, window_counts
from lakeray.monitor.profile import PREDICTION, bin_index, build_profile
from tests.support import ROOT

FEATURES = {"age": "numeric", "income": "numeric", "plan": "categorical", "active": "boolean"}


def _frame(rng, n, age_shift=0.0, plans=(0.6, 0.3, 0.1, 0.0)):
    return pd.DataFrame({
        "age": np.where(rng.random(n) < 0.02, np.nan, rng.normal(40 + age_shift, 10, n)),
        "income": rng.lognormal(10, 0.5, n),
        "plan": rng.choice(["basic", "premium", "gold", "platinum"], size=n, p=plans),
        "active": rng.random(n) < 0.7,
        "prediction": rng.beta(2, 5, n),
    })


@pytest.fixture(scope="module")
def world(spark):
    rng = np.random.default_rng(9)
    baseline = _frame(rng, 6000)
    profile = build_profile(baseline, FEATURES, baseline["prediction"].to_numpy(), sample_size=10_000)
    current = _frame(rng, 4000, age_shift=8.0, plans=(0.45, 0.25, 0.25, 0.05))
    conf = load_settings(root=ROOT)["drift"]
    window = spark.createDataFrame(current)
    results = {r.column: r for r in compute_drift(window, profile, conf, columns={PREDICTION: "prediction"})}
    return {"profile": profile, "current": current, "window": window, "results": results}


def test_exactly_the_shifted_columns_drift(world):
    drifted = {name for name, r in world["results"].items() if r.drifted}
    assert drifted == {"age", "plan"}
    assert set(world["results"]["age"].drifted_by) == {"psi", "ks"}
    assert "chi2_p" in world["results"]["plan"].drifted_by
    assert world["results"]["age"].current_null_rate == pytest.approx(world["current"]["age"].isna().mean())


def test_counts_and_statistics_equal_numpy_and_scipy(world):
    profile, current = world["profile"], world["current"]
    counts = window_counts(world["window"], profile, {PREDICTION: "prediction"})
    ages = current["age"].to_numpy()
    finite = ages[np.isfinite(ages)]
    expected_bins = np.bincount(bin_index(finite, profile["age"]["edges"]), minlength=len(profile["age"]["edges"]) + 1)
    assert [counts["age"].get(str(i), 0) for i in range(len(expected_bins))] == expected_bins.tolist()
    assert counts["age"][NULL] == int(np.isnan(ages).sum())
    assert counts["plan"]["platinum"] == int((current["plan"] == "platinum").sum())   # a new category is counted
    assert counts["active"] == {"True": int(current["active"].sum()), "False": int((~current["active"]).sum())}

    age = world["results"]["age"].statistics
    base_sample = np.asarray(profile["age"]["sample"])
    assert age["ks"] == pytest.approx(sps.ks_2samp(base_sample, finite).statistic, abs=1e-12)
    assert age["wasserstein"] == pytest.approx(sps.wasserstein_distance(base_sample, finite) / profile["age"]["std"], rel=1e-9)
    plan = world["results"]["plan"].statistics
    keys = ["basic", "gold", "platinum", "premium", "__other__"]
    base = [profile["plan"]["frequencies"].get(k, 0) for k in keys[:4]] + [profile["plan"]["__other__"]]
    cur = [counts["plan"].get(k, 0) for k in keys]
    table = np.array([base, cur])
    table = table[:, table.sum(axis=0) > 0]
    ref = sps.chi2_contingency(table, correction=False)
    assert plan["chi2"] == pytest.approx(ref.statistic, rel=1e-9)


def test_category_keys_are_the_models_in_the_profile_and_in_spark(spark):
    # the same seat counts as pandas ints at training and Spark doubles in the window: one key each,
    # the model's ("1", not "1.0"), so nothing drifts and the vocabulary lines up
    from lakeray.features.preprocess import FeaturePipeline

    rng = np.random.default_rng(3)
    train = pd.DataFrame({"seats": rng.choice([1, 2, 3], 3000)})
    profile = build_profile(train, {"seats": "categorical"})
    assert set(profile["seats"]["frequencies"]) == set(FeaturePipeline.fit(train, {"seats": "categorical"}).vocab["seats"])
    window = spark.createDataFrame(pd.DataFrame({"seats": np.append(rng.choice([1.0, 2.0, 3.0], 2000), np.nan)}))
    counts = window_counts(window, profile, {})
    assert set(counts["seats"]) == {"1", "2", "3", NULL}
    result = compute_drift(window, profile, load_settings(root=ROOT)["drift"])[0]
    assert not result.drifted and result.statistics["psi"] < 0.05


@pytest.mark.fast
def test_window_syntax_is_checked():
    import datetime as dt

    from lakeray.errors import ConfigError
    from lakeray.monitor.job import parse_window

    assert parse_window("6h") == dt.timedelta(hours=6) and parse_window("2w") == dt.timedelta(weeks=2)
    assert parse_window("90s") == dt.timedelta(seconds=90)
    for bad in ("1x", "0d", "d", "-1d"):
        with pytest.raises(ConfigError, match="--window"):
            parse_window(bad)
