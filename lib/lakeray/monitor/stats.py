"""Drift statistics between a baseline and a current distribution (pure numpy functions).

Binned statistics take counts over the same bins (the baseline's fixed edges, or the union of
categories), as the Spark drift job computes them over a whole window:
  psi           population stability index, sum (a - e) * ln(a / e) over bin shares
  js_distance   Jensen-Shannon distance (base 2, in [0, 1]); scipy.spatial.distance.jensenshannon
  chi_squared   Pearson's chi-squared test of homogeneity on the 2 x k table; scipy.stats.chi2_contingency
Sample statistics take two samples of values (the profile keeps a seeded sample of the
training values):
  ks            two-sample Kolmogorov-Smirnov statistic; scipy.stats.ks_2samp(...).statistic
  wasserstein   first Wasserstein distance; scipy.stats.wasserstein_distance
and their weighted forms (ks_weighted, wasserstein_weighted) take the window as point masses (its
fine bins at their means, lakeray.monitor.window).
The tests check each one against scipy on the same data.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4   # share floor for empty bins in PSI (the usual convention; 0 would make PSI infinite)


def _shares(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(expected_counts, actual_counts, epsilon: float = EPSILON) -> float:
    e = np.clip(_shares(expected_counts), epsilon, None)
    a = np.clip(_shares(actual_counts), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected_counts, actual_counts) -> float:
    p, q = _shares(expected_counts), _shares(actual_counts)
    m = (p + q) / 2

    def kl(x):
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def chi_squared(expected_counts, actual_counts) -> tuple[float, float]:
    """(statistic, p-value) of the 2 x k contingency table; categories empty in both are dropped."""
    from scipy.special import chdtrc

    table = np.vstack([np.asarray(expected_counts, float), np.asarray(actual_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chdtrc(table.shape[1] - 1, statistic))


def ks(baseline, current) -> float:
    return ks_weighted(baseline, current, np.ones(len(current)))


def wasserstein(baseline, current) -> float:
    return wasserstein_weighted(baseline, current, np.ones(len(current)))


def ks_weighted(baseline, points, weights) -> float:
    """KS distance between a sample and a distribution of point masses (`points` with `weights`)."""
    a = np.sort(np.asarray(baseline, float))
    points, weights = np.asarray(points, float), np.asarray(weights, float)
    keep = weights > 0
    points, weights = points[keep], weights[keep]
    if not len(a) or not len(points):
        return 0.0
    order = np.argsort(points, kind="stable")
    points, cum = points[order], np.cumsum(weights[order]) / weights.sum()
    grid = np.concatenate([a, points])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    below = np.searchsorted(points, grid, side="right")
    cdf_b = np.where(below > 0, cum[np.maximum(below - 1, 0)], 0.0)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def wasserstein_weighted(baseline, points, weights) -> float:
    from scipy.stats import wasserstein_distance

    points, weights = np.asarray(points, float), np.asarray(weights, float)
    keep = weights > 0
    if not len(baseline) or not keep.any():
        return 0.0
    return float(wasserstein_distance(np.asarray(baseline, float), points[keep], None, weights[keep]))
