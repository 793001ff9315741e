"""Metrics per task, calibration and group fairness, on numpy arrays (pure functions)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from lakeray.errors import LakerayError
from lakeray.features.values import category_keys, missing_mask


def binary_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict:
    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    if len(np.unique(y_true)) < 2:
        raise LakerayError("binary metrics need both classes in the evaluation data")
    pred = (proba >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "precision": float(skm.precision_score(y_true, pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, proba)),
        "pr_auc": float(skm.average_precision_score(y_true, proba)),
        "log_loss": float(skm.log_loss(y_true, proba, labels=[0, 1])),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def class_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict:
    """The multiclass metrics the predicted class alone gives (the drift job's, from the logged index)."""
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "f1_macro": float(skm.f1_score(y_true, pred, average="macro", zero_division=0)),
        "f1_weighted": float(skm.f1_score(y_true, pred, average="weighted", zero_division=0)),
    }


def log_loss(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    return float(skm.log_loss(y_true, proba, labels=labels))


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict:
    y_true = np.asarray(y_true).astype(int)
    pred = np.asarray(proba).argmax(axis=1)
    return {
        **class_metrics(y_true, pred),
        "log_loss": log_loss(y_true, proba, list(range(np.asarray(proba).shape[1]))),
        "confusion_matrix": skm.confusion_matrix(y_true, pred).tolist(),
    }


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict:
    return {
        "mae": float(skm.mean_absolute_error(y_true, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, pred))),
        "r2": float(skm.r2_score(y_true, pred)),
    }


def calibration(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict:
    """Reliability table over equal-width probability bins, and the expected calibration error."""
    y_true, proba = np.asarray(y_true, dtype=float), np.asarray(proba, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1], right=False), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        predicted, observed = float(proba[mask].mean()), float(y_true[mask].mean())
        table.append({"bin": b, "lower": float(edges[b]), "upper": float(edges[b + 1]), "count": int(mask.sum()),
                      "mean_predicted": predicted, "observed_rate": observed})
        ece += mask.mean() * abs(predicted - observed)
    return {"bins": table, "ece": float(ece)}


MISSING_GROUP = "(missing)"
MIN_GROUP_SIZE = 30


def group_labels(values) -> np.ndarray:
    """Canonical group names for a sensitive attribute, whatever the reader's dtype: the category
    text (1, 1.0 and Int64 1 are all "1"), and one group named MISSING_GROUP for None, NaN and pd.NA."""
    keys = category_keys(values)
    keys[missing_mask(keys)] = MISSING_GROUP
    return keys.astype(str)


def audited_groups(per_group: dict, min_group: int, *gaps: tuple[str, str]) -> dict:
    """Groups of at least `min_group` rows (`groups`), the others reported apart (`small_groups`),
    and for each (name, key) of `gaps` the largest minus smallest `key` over the big groups only
    (None below two such groups)."""
    small = {g for g, v in per_group.items() if v["count"] < min_group}
    out = {"groups": {g: v for g, v in per_group.items() if g not in small},
           "small_groups": {g: v for g, v in per_group.items() if g in small}, "min_group_size": int(min_group)}
    for name, key in gaps:
        values = [v[key] for v in out["groups"].values() if v[key] is not None]
        out[name] = float(max(values) - min(values)) if len(values) > 1 else None
    return out


def fairness_audit(y_true: np.ndarray, proba: np.ndarray, groups: np.ndarray, threshold: float = 0.5,
                   min_group: int = MIN_GROUP_SIZE) -> dict:
    """Per-group selection rate, true-positive rate and metrics; demographic-parity and
    equal-opportunity differences (largest minus smallest across groups).

    Groups of fewer than `min_group` rows are reported apart (`small_groups`, with their counts and
    rates) and left out of the differences, which are None when fewer than two groups are big enough.
    Null values are a group of their own, MISSING_GROUP."""
    y_true = np.asarray(y_true).astype(int)
    pred = (np.asarray(proba) >= threshold).astype(int)
    labels = group_labels(groups)
    per_group = {}
    for g in sorted(set(labels.tolist())):
        m = labels == g
        positives = y_true[m] == 1
        per_group[g] = {
            "count": int(m.sum()),
            "selection_rate": float(pred[m].mean()),
            "true_positive_rate": float(pred[m][positives].mean()) if positives.any() else None,
            "accuracy": float((pred[m] == y_true[m]).mean()),
        }
    return audited_groups(per_group, min_group, ("demographic_parity_difference", "selection_rate"),
                          ("equal_opportunity_difference", "true_positive_rate"))


# The metric dispatch (also what Tune and training score with: lakeray.models has no metrics of its own).

def all_metrics(task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    if task == "binary":
        return binary_metrics(y_true, scores, threshold)
    if task == "multiclass":
        return multiclass_metrics(y_true, scores)
    return regression_metrics(y_true, scores)


def _one_binary(metric: str, y_true: np.ndarray, scores: np.ndarray) -> float:
    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(scores, dtype=float), 1e-7, 1 - 1e-7)    # as binary_metrics clips
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y_true, proba))
    return float(skm.average_precision_score(y_true, proba))


def score(task: str, metric: str, y_true: np.ndarray, scores: np.ndarray) -> float:
    """The spec's primary metric of one prediction set (the ranking metrics alone, without the
    rest of all_metrics: Tune scores every report with this)."""
    if task == "binary" and metric in ("roc_auc", "pr_auc") and len(np.unique(np.asarray(y_true))) > 1:
        return _one_binary(metric, y_true, scores)
    return float(all_metrics(task, y_true, scores)[metric])


def decision_threshold(setting, y_valid: np.ndarray, p_valid: np.ndarray) -> float:
    """The spec's fixed threshold, or ("max_f1") the validation score cut that maximises F1."""
    if setting != "max_f1":
        return float(setting)
    from sklearn.metrics import precision_recall_curve

    precision, recall, cuts = precision_recall_curve(np.asarray(y_valid).astype(int), p_valid)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)[:-1]
    return float(cuts[int(np.argmax(f1))]) if len(cuts) else 0.5
