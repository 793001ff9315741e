"""Evaluation plots rendered to PNG bytes with matplotlib's Agg canvas (no pyplot global state, thread-safe)."""

from __future__ import annotations

import io
import logging

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm

log = logging.getLogger(__name__)

MAX_SCATTER_POINTS = 5000
Others = dict[str, tuple[np.ndarray, np.ndarray]] | None


def _figure(width: float = 6.0, height: float = 4.5, **subplots) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def _png(fig: Figure) -> bytes:
    """Render `fig` to PNG bytes and release it."""
    buf = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buf, format="png")
    finally:
        fig.clear()
    return buf.getvalue()


def _curves(y_true, proba, others: Others) -> list[tuple[str, np.ndarray, np.ndarray]]:
    series = [("model", np.asarray(y_true).astype(int), np.asarray(proba, dtype=float))]
    for name, (y, p) in (others or {}).items():
        series.append((name, np.asarray(y).astype(int), np.asarray(p, dtype=float)))
    return series


def roc_png(y_true, proba, others: Others = None) -> bytes:
    """ROC curve with AUC in the legend; `others` overlays e.g. {"baseline": (y, p)}."""
    fig, ax = _figure()
    for name, y, p in _curves(y_true, proba, others):
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC={skm.auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(title="ROC curve", xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _png(fig)


def pr_png(y_true, proba, others: Others = None) -> bytes:
    """Precision/recall curve with average precision in the legend."""
    fig, ax = _figure()
    for name, y, p in _curves(y_true, proba, others):
        precision, recall, _ = skm.precision_recall_curve(y, p)
        ax.step(recall, precision, where="post", label=f"{name} (AP={skm.average_precision_score(y, p):.3f})")
    ax.set(title="Precision-recall curve", xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    return _png(fig)


def confusion_png(matrix: list[list[int]], labels: list[str]) -> bytes:
    """Confusion matrix heatmap (rows actual, columns predicted) annotated with counts."""
    counts = np.asarray(matrix, dtype=int)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = _figure(size + 1, size)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, [str(label) for label in labels], rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(ticks, [str(label) for label in labels])
    middle = counts.max() / 2 if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > middle else "black")
    ax.set(title="Confusion matrix", xlabel="Predicted label", ylabel="Actual label")
    return _png(fig)


def calibration_png(calibration: dict) -> bytes:
    """Reliability diagram from `metrics.calibration` output, with the diagonal; ECE in the title."""
    bins = calibration.get("bins", [])
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot([b["mean_predicted"] for b in bins], [b["observed_rate"] for b in bins], marker="o", label="model")
    ax.set(title=f"Reliability diagram (ECE={calibration.get('ece', float('nan')):.3f})",
           xlabel="Mean predicted probability", ylabel="Observed positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper left")
    return _png(fig)


def importance_png(importance: dict[str, float], top: int = 20) -> bytes:
    """Horizontal bars of the `top` most important features, largest on top."""
    ranked = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top]
    names, values = [str(k) for k, _ in ranked][::-1], [float(v) for _, v in ranked][::-1]
    fig, ax = _figure(7, max(3.0, 0.3 * len(names) + 1.5))
    ax.barh(names, values)
    ax.set(title=f"Feature importance (top {len(names)})", xlabel="Importance", ylabel="Feature")
    return _png(fig)


def group_bars_png(fairness: dict[str, dict]) -> bytes:
    """Per sensitive attribute (one subplot each), grouped bars of the per-group rate metrics
    from `{attribute: metrics.fairness_audit(...)}`; `count` and missing (None) values are left out;
    groups too small for the parity differences are drawn too, labelled with their row count."""
    attributes = list(fairness)
    fig, axes = _figure(7, 3.5 * max(1, len(attributes)), nrows=max(1, len(attributes)), squeeze=False)
    for ax, attribute in zip(axes[:, 0], attributes, strict=True):
        small = fairness[attribute].get("small_groups", {})
        groups = {**fairness[attribute].get("groups", {}), **small}
        names = list(groups)
        metric_names = [k for k in next(iter(groups.values()), {}) if k != "count"]
        width = 0.8 / max(1, len(metric_names))
        for i, metric in enumerate(metric_names):
            values = [groups[g].get(metric) for g in names]
            ax.bar(np.arange(len(names)) + i * width, [np.nan if v is None else v for v in values],
                   width, label=metric.replace("_", " "))
        labels = [f"{g}\n(n={groups[g].get('count')}, too few)" if g in small else g for g in names]
        ax.set_xticks(np.arange(len(names)) + width * (len(metric_names) - 1) / 2, labels)
        dpd = fairness[attribute].get("demographic_parity_difference")
        suffix = f" (DP diff={dpd:.3f})" if isinstance(dpd, (int, float)) else ""
        ax.set(title=f"Group metrics by {attribute}{suffix}", xlabel=str(attribute), ylabel="Rate", ylim=(0, 1.25))
        ax.legend(loc="upper center", ncol=max(1, len(metric_names)), fontsize="small")
    return _png(fig)


def subsample_index(n: int, limit: int = MAX_SCATTER_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most `limit` of `n` points, drawn without replacement (all of them when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def regression_png(y_true, pred, seed: int = 0) -> bytes:
    """Predicted vs actual scatter (at most 5000 sampled points) with the identity line, and a residual histogram."""
    y_true, pred = np.asarray(y_true, dtype=float), np.asarray(pred, dtype=float)
    idx = subsample_index(len(y_true), seed=seed)
    if len(idx) < len(y_true):
        log.debug("regression plot subsampled %d of %d points", len(idx), len(y_true))
    fig, (scatter, hist) = _figure(11, 4.5, ncols=2)
    scatter.scatter(y_true[idx], pred[idx], s=6, alpha=0.4)
    if len(y_true):
        low, high = float(min(y_true.min(), pred.min())), float(max(y_true.max(), pred.max()))
        scatter.plot([low, high], [low, high], linestyle="--", color="grey", label="identity")
        scatter.legend(loc="upper left")
    scatter.set(title=f"Predicted vs actual ({len(idx)} of {len(y_true)} points)", xlabel="Actual", ylabel="Predicted")
    hist.hist(pred - y_true, bins=50)
    hist.set(title="Residuals (predicted - actual)", xlabel="Residual", ylabel="Count")
    return _png(fig)
