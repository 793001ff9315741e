"""Label-free performance estimation for binary models (confidence-based, as NannyML's CBPE).

At training time the model's validation scores are calibrated (isotonic regression, stored in the
bundle's manifest as JSON: `calibration`). In a window, each served score s then stands for
calibrate(s) expected positives and 1 - calibrate(s) expected negatives, so every confusion-matrix
count, and the ROC curve, has an expected value without a single label:
  E[TP] = sum over rows predicted positive of calibrate(s), E[FP] = sum of 1 - calibrate(s), ...
  E[AUC] = P(score of a positive > score of a negative) over those expected weights.
The window's scores come from its fine bins of the prediction (lakeray.monitor.window: about 1000
quantile bins of the training scores, rows and sum per bin), so the estimate costs no pass of its own.

The assumption (README, "Label-free performance"): the shift is in the inputs only. P(label | inputs)
is what it was on the validation split, so calibrated scores stay calibrated. When the relation
itself moves (concept drift), the estimate keeps the old relation's answer; the realised metric,
once labels are merged, is what shows that.
"""

from __future__ import annotations

import numpy as np

ESTIMATED = ("roc_auc", "accuracy", "precision", "recall", "f1")


def fit_calibrator(y_true, scores) -> dict:
    """Isotonic regression of the label on the score (validation split): a monotone step function
    as its knots, for np.interp."""
    from sklearn.isotonic import IsotonicRegression

    y = np.asarray(y_true).astype(float)
    s = np.asarray(scores, dtype=float)
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return {"method": "isotonic", "x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist(),
            "rows": int(len(y)), "positive_rate": float(y.mean()) if len(y) else None}


def calibrate(calibrator: dict, scores) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if calibrator.get("method") != "isotonic" or not calibrator.get("x"):
        raise ValueError(f"unknown calibrator {calibrator.get('method')!r}")
    return np.clip(np.interp(s, calibrator["x"], calibrator["y"]), 0.0, 1.0)


def estimate(calibrator: dict, scores, weights, threshold: float) -> dict[str, float | None]:
    """Expected metrics of rows with `scores` (each standing for `weights` rows: fine-bin means and
    row counts), predicted positive at score >= `threshold`."""
    s = np.asarray(scores, dtype=float)
    w = np.asarray(weights, dtype=float)
    keep = w > 0
    s, w = s[keep], w[keep]
    order = np.argsort(s, kind="stable")
    s, w = s[order], w[order]
    p = calibrate(calibrator, s)
    pos, neg = w * p, w * (1 - p)
    total_pos, total_neg = pos.sum(), neg.sum()
    out: dict[str, float | None] = {"expected_positive_rate": float(total_pos / w.sum()) if w.sum() else None}
    if total_pos > 0 and total_neg > 0:
        # equal scores are one point: pairs inside it count half, as roc_auc_score does with ties
        unique, index = np.unique(s, return_inverse=True)
        pos_u, neg_u = np.bincount(index, pos, len(unique)), np.bincount(index, neg, len(unique))
        below = np.cumsum(neg_u) - neg_u
        out["roc_auc"] = float((pos_u * (below + 0.5 * neg_u)).sum() / (total_pos * total_neg))
    else:
        out["roc_auc"] = None
    predicted = s >= threshold
    tp, fp = pos[predicted].sum(), neg[predicted].sum()
    fn, tn = pos[~predicted].sum(), neg[~predicted].sum()
    n = tp + fp + fn + tn
    out["accuracy"] = float((tp + tn) / n) if n else None
    out["precision"] = float(tp / (tp + fp)) if tp + fp > 0 else None
    out["recall"] = float(tp / (tp + fn)) if tp + fn > 0 else None
    out["f1"] = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn > 0 else None
    return out


def estimate_from_fine_bins(calibrator: dict, fine: tuple[np.ndarray, np.ndarray], threshold: float) -> dict:
    """The estimate from a window's fine bins of the prediction ((rows, sum of scores) per bin)."""
    rows, sums = fine
    means = np.divide(sums, rows, out=np.zeros_like(sums, dtype=float), where=rows > 0)
    return estimate(calibrator, means, rows, threshold)
