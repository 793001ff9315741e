"""Realised performance of a multiclass window: the logged prediction is the champion's class index,
the labels arrive as text; a class the champion never saw is left out and said; log loss reads the class
probabilities the log keeps, and is not made up for rows logged without them."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from lakeray.monitor.job import realised_performance
from lakeray.spec.loader import parse_spec

pytestmark = pytest.mark.fast

CLASSES = ["F", "L", "M", "VF"]


def _spec(primary: str):
    return parse_spec({
        "name": "jobs", "task": "multiclass", "entity_key": "id", "target": "cls",
        "sources": {"s": {"format": "csv", "path": "s", "keys": ["id"], "columns": {"id": "string", "x": "double", "cls": "string"}}},
        "dataset": {"base": "s"}, "features": {"x": "numeric"}, "metric": {"primary": primary},
        "baseline": {"model": "majority"}})


def _window(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=n)
    pred = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 4, size=n))
    return truth, pd.DataFrame({"label": [CLASSES[t] for t in truth], "prediction": pred.astype(float)})


def test_multiclass_metrics_from_the_class_index_and_text_labels():
    truth, labelled = _window(300)
    out = realised_performance(_spec("f1_macro"), labelled, 0.9, {"min_labels": 100}, classes=CLASSES)
    pred = labelled["prediction"].astype(int).to_numpy()
    assert out["labelled_rows"] == 300 and out["metric"] == "f1_macro"
    assert out["value"] == pytest.approx(skm.f1_score(truth, pred, average="macro"))
    assert out["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert out["decay"] == pytest.approx(0.9 - out["value"]) and out["drifted"] is (out["decay"] > 0.05)


def test_an_unseen_class_is_left_out_and_named(caplog):
    truth, labelled = _window(300, seed=1)
    labelled.loc[:9, "label"] = "XL"                      # a class added upstream after training
    caplog.set_level(logging.WARNING, logger="lakeray")
    out = realised_performance(_spec("accuracy"), labelled, None, {"min_labels": 100}, classes=CLASSES)
    assert out["labelled_rows"] == 290
    pred = labelled["prediction"].astype(int).to_numpy()
    assert out["value"] == pytest.approx(skm.accuracy_score(truth[10:], pred[10:]))
    assert "10 labelled row(s) hold a class the champion was not trained on (XL)" in caplog.text


def test_log_loss_from_the_logged_class_probabilities(caplog):
    truth, labelled = _window(300, seed=2)
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(4), size=300)
    proba[np.arange(300), truth] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    # 40 rows logged before the log kept the probabilities, one with a model of another class count
    # served as float32 (the model's output): rows sum to one within ~1e-7, which sklearn warns about
    logged = [None if i < 40 else (list(p[:3]) if i == 40 else list(p.astype(np.float32).astype(float)))
              for i, p in enumerate(proba)]
    caplog.set_level(logging.INFO, logger="lakeray")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = realised_performance(_spec("log_loss"), labelled.assign(probabilities=logged), 1.0,
                                   {"min_labels": 100}, classes=CLASSES)
    assert out["value"] == pytest.approx(skm.log_loss(truth[41:], proba[41:], labels=[0, 1, 2, 3]), rel=1e-6)
    assert out["labelled_rows"] == 300 and out["metrics"]["accuracy"] > 0     # the class metrics use every row
    assert out["decay"] == pytest.approx(out["value"] - 1.0)                  # lower is better
    assert "log loss on the 259 of 300 labelled row(s) logged with class probabilities" in caplog.text
    # too few rows with probabilities: no number, and why
    few = labelled.assign(probabilities=[list(p) if i < 50 else None for i, p in enumerate(proba)])
    assert realised_performance(_spec("log_loss"), few, None, {"min_labels": 100}, classes=CLASSES) is None
    assert "log_loss needs the class probabilities, which 50 of the 300 labelled row(s) were logged with" in caplog.text


def test_log_loss_without_probabilities_and_unknown_classes_give_no_number():
    _, labelled = _window(300)
    assert realised_performance(_spec("log_loss"), labelled, None, {"min_labels": 100}, classes=CLASSES) is None
    assert realised_performance(_spec("accuracy"), labelled, None, {"min_labels": 100}, classes=None) is None
    assert realised_performance(_spec("accuracy"), labelled.head(50), None, {"min_labels": 100}, classes=CLASSES) is None


def _binary_spec(positive=None, target_type="boolean"):
    raw = {"name": "b", "task": "binary", "entity_key": "id", "target": "y",
           "sources": {"s": {"format": "csv", "path": "s", "keys": ["id"],
                             "columns": {"id": "string", "x": "double", "y": target_type}}},
           "dataset": {"base": "s"}, "features": {"x": "numeric"}, "metric": {"primary": "roc_auc"},
           "baseline": {"model": "majority"}}
    if positive is not None:
        raw["positive_label"] = positive
    return parse_spec(raw)


def test_binary_labels_are_read_as_training_read_the_target(caplog):
    """A boolean target's labels in any spelling (they were compared with the text "true", so "1" and
    "yes" counted as negatives); a label that is no boolean is left out and named, not a negative."""
    rng = np.random.default_rng(2)
    truth = rng.random(300) < 0.4
    proba = np.clip(truth * 0.6 + rng.random(300) * 0.4, 0, 1)
    spellings = {True: ["1", "yes", "TRUE", "t"], False: ["0", "no", "false", "F"]}
    labels = [spellings[bool(t)][i % 4] for i, t in enumerate(truth)]
    labels[:7] = ["maybe"] * 7
    caplog.set_level(logging.WARNING, logger="lakeray")
    out = realised_performance(_binary_spec(), pd.DataFrame({"label": labels, "prediction": proba}), None,
                               {"min_labels": 100})
    assert out["labelled_rows"] == 293
    assert out["value"] == pytest.approx(skm.roc_auc_score(truth[7:], proba[7:]))
    assert "7 labelled row(s) hold a label that is not a boolean ('maybe')" in caplog.text
    named = realised_performance(_binary_spec("churned", "string"),
                                 pd.DataFrame({"label": np.where(truth, "Churned", "stayed"), "prediction": proba}),
                                 None, {"min_labels": 100})
    assert named["value"] == pytest.approx(skm.roc_auc_score(truth, proba))


def test_regression_labels_that_are_not_numbers_are_left_out(caplog):
    rng = np.random.default_rng(3)
    y = rng.normal(100, 10, size=200)
    labels = [f"{v:.6f}" for v in y]
    labels[:3] = ["n/a", "", "inf"]
    spec = parse_spec({"name": "r", "task": "regression", "entity_key": "id", "target": "y",
                       "sources": {"s": {"format": "csv", "path": "s", "keys": ["id"],
                                         "columns": {"id": "string", "x": "double", "y": "double"}}},
                       "dataset": {"base": "s"}, "features": {"x": "numeric"}, "metric": {"primary": "rmse"},
                       "baseline": {"model": "mean"}})
    caplog.set_level(logging.WARNING, logger="lakeray")
    out = realised_performance(spec, pd.DataFrame({"label": labels, "prediction": y + 1.0}), None, {"min_labels": 100})
    assert out["labelled_rows"] == 197 and out["value"] == pytest.approx(1.0, abs=1e-5)
    assert "3 labelled row(s) hold a label that is not a finite number ('n/a', '', 'inf')" in caplog.text
