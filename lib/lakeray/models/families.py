"""Model families as XGBoost parameters, prediction per task and the selection score.

Every family is an XGBoost booster (gbtree boosting, random-forest mode, gblinear), so every
candidate trains data-parallel on Ray Train and is stored as UBJSON, never pickled.
"""

from __future__ import annotations

import numpy as np

from lakeray.errors import ConfigError
from lakeray.evaluate.metrics import binary_metrics, multiclass_metrics, regression_metrics

FAMILIES = ("xgboost", "random_forest", "logistic")
OBJECTIVES = {
    "binary": {"objective": "binary:logistic", "eval_metric": "logloss"},
    "multiclass": {"objective": "multi:softprob", "eval_metric": "mlogloss"},
    "regression": {"objective": "reg:squarederror", "eval_metric": "rmse"},
}


def booster_params(family_conf: dict, hyper: dict, task: str, num_class: int = 0) -> dict:
    """Objective for the task + the family's fixed params + the searched hyper-parameters."""
    params = {**OBJECTIVES[task], **family_conf.get("fixed", {}), **hyper}
    if task == "multiclass":
        if num_class < 2:
            raise ConfigError(f"a multiclass task needs at least 2 classes, got {num_class}")
        params["num_class"] = num_class
    return params


def predict(booster, matrix: np.ndarray, task: str) -> np.ndarray:
    """Probability of the positive class (binary), class probabilities (multiclass) or values."""
    import xgboost

    return booster.predict(xgboost.DMatrix(matrix))


def all_metrics(task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    if task == "binary":
        return binary_metrics(y_true, scores, threshold)
    if task == "multiclass":
        return multiclass_metrics(y_true, scores)
    return regression_metrics(y_true, scores)


def score(task: str, metric: str, y_true: np.ndarray, scores: np.ndarray) -> float:
    """The spec's primary metric of one prediction set."""
    return float(all_metrics(task, y_true, scores)[metric])


def decision_threshold(setting, y_valid: np.ndarray, p_valid: np.ndarray) -> float:
    """The spec's fixed threshold, or ("max_f1") the validation score cut that maximises F1."""
    if setting != "max_f1":
        return float(setting)
    from sklearn.metrics import precision_recall_curve

    precision, recall, cuts = precision_recall_curve(np.asarray(y_valid).astype(int), p_valid)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)[:-1]
    return float(cuts[int(np.argmax(f1))]) if len(cuts) else 0.5
