"""Label-free performance estimation: expected metrics from calibrated scores equal the realised
ones when only the inputs shift, from raw scores and from a window's fine bins alike."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from lakeray.monitor.cbpe import calibrate, estimate, estimate_from_fine_bins, fit_calibrator
from lakeray.monitor.profile import numeric_profile
from lakeray.monitor.window import fine_edges

pytestmark = pytest.mark.fast


def _fine_bins(scores: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the drift job's one pass keeps of the prediction column: rows and sum per fine bin."""
    index = np.searchsorted(edges, scores, side="right")
    return (np.bincount(index, minlength=len(edges) + 1).astype(float),
            np.bincount(index, weights=scores, minlength=len(edges) + 1))


def _realised(y, scores, threshold):
    predicted = scores >= threshold
    return {"roc_auc": skm.roc_auc_score(y, scores), "accuracy": skm.accuracy_score(y, predicted),
            "precision": skm.precision_score(y, predicted), "recall": skm.recall_score(y, predicted),
            "f1": skm.f1_score(y, predicted)}


def test_calibrated_scores_give_the_realised_metrics_from_raw_scores_and_from_fine_bins():
    rng = np.random.default_rng(51)
    truth = lambda s: 1 / (1 + np.exp(-(4 * s - 2.5)))      # noqa: E731  the model's scores are not probabilities
    valid = rng.beta(2, 3, 20_000)
    calibrator = json.loads(json.dumps(fit_calibrator(rng.random(20_000) < truth(valid), valid)))   # stored as JSON
    window = rng.beta(3, 2, 300_000)                           # the inputs moved: scores run higher
    y = rng.random(len(window)) < truth(window)
    real = _realised(y, window, 0.5)
    raw = estimate(calibrator, window, np.ones(len(window)), 0.5)
    edges = fine_edges(numeric_profile(valid, sample_size=5000))
    binned = estimate_from_fine_bins(calibrator, _fine_bins(window, edges), 0.5)
    for name, value in real.items():      # the calibrator's own error (20k validation rows) included
        assert raw[name] == pytest.approx(value, abs=0.01 if name == "roc_auc" else 0.02), name
        assert binned[name] == pytest.approx(raw[name], abs=0.005), name
    assert raw["expected_positive_rate"] == pytest.approx(y.mean(), abs=0.02)
    assert np.all(np.diff(calibrate(calibrator, np.linspace(0, 1, 50))) >= 0)      # monotone


def test_one_class_or_empty_windows_have_no_auc():
    calibrator = fit_calibrator([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert estimate(calibrator, [0.05, 0.1], [10, 5], 0.5)["roc_auc"] is None       # calibrated to 0: no positives
    empty = estimate(calibrator, [], [], 0.5)
    assert empty["roc_auc"] is None and empty["accuracy"] is None


def _churn_frame(world: str, customers: int, seed: int) -> pd.DataFrame:
    """The churn generator's subscriptions, cleaned as prepare would: canonical contracts, rule
    violations and unlabelled rows out, the latest row per customer."""
    from lakeray_examples.datagen.churn import CONTRACT_SPELLINGS, generate

    subs = generate(customers, seed=seed, world=world).subscriptions
    canonical = {spelling.strip().lower(): name for name, spellings in CONTRACT_SPELLINGS.items() for spelling in spellings}
    subs = subs.assign(contract=subs["contract"].astype(str).str.strip().str.lower().map(canonical))
    subs = subs[subs["churned"].notna() & subs["contract"].notna() & (subs["monthly_charges"] > 0) & (subs["tenure_months"] < 600)]
    subs = subs.sort_values("updated_at").drop_duplicates("customer_id", keep="last")
    return subs.assign(churned=subs["churned"].astype(bool)).reset_index(drop=True)


def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
    x = frame[["monthly_charges", "tenure_months"]].astype(float)
    for name in ("month-to-month", "one-year", "two-year"):
        x[name] = (frame["contract"] == name).astype(float)
    return x


def test_on_the_churn_world_the_estimate_follows_a_shift_of_the_inputs_but_not_of_the_relation():
    """churn's generator: a model trained and calibrated on the base world. Where contracts and
    prices move but churn still follows them as before (shifted_inputs), the estimated AUC,
    accuracy and churn rate are within 0.03 of the realised ones; where churn follows them
    differently (shifted: the README's stated limit), the estimate keeps the old relation's answer
    and only the realised metrics, once labels arrive, show the change."""
    import xgboost as xgb

    base = _churn_frame("base", 20_000, seed=61)
    shuffled = base.sample(frac=1.0, random_state=1)
    train, valid, test = (shuffled.iloc[:len(base) // 2], shuffled.iloc[len(base) // 2:3 * len(base) // 4],
                          shuffled.iloc[3 * len(base) // 4:])
    model = xgb.XGBClassifier(n_estimators=80, max_depth=3, learning_rate=0.1, n_jobs=1, random_state=0)
    model.fit(_inputs(train), train["churned"])
    score = lambda frame: model.predict_proba(_inputs(frame))[:, 1]       # noqa: E731
    calibrator = fit_calibrator(valid["churned"], score(valid))
    edges = fine_edges(numeric_profile(score(train), sample_size=5000))

    found = {}
    for name, frame in (("base", test), ("shifted_inputs", _churn_frame("shifted_inputs", 20_000, seed=62)),
                        ("shifted", _churn_frame("shifted", 20_000, seed=62))):
        scores = score(frame)
        found[name] = {"estimated": estimate_from_fine_bins(calibrator, _fine_bins(scores, edges), 0.5),
                       "realised": {**_realised(frame["churned"], scores, 0.5), "positive_rate": frame["churned"].mean()},
                       "month_to_month": float((frame["contract"] == "month-to-month").mean())}
    assert found["shifted_inputs"]["month_to_month"] > found["base"]["month_to_month"] + 0.2, found   # the inputs moved
    for name in ("base", "shifted_inputs"):
        estimated, realised = found[name]["estimated"], found[name]["realised"]
        assert abs(estimated["roc_auc"] - realised["roc_auc"]) <= 0.03, found
        assert abs(estimated["accuracy"] - realised["accuracy"]) <= 0.03, found
        assert abs(estimated["expected_positive_rate"] - realised["positive_rate"]) <= 0.03, found
    # the relation moved too: fewer churn than the old relation predicts, and the estimate cannot know
    estimated, realised = found["shifted"]["estimated"], found["shifted"]["realised"]
    assert estimated["expected_positive_rate"] - realised["positive_rate"] > 0.05, found
    assert abs(estimated["accuracy"] - realised["accuracy"]) > 0.03, found
