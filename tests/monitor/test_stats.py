"""Each drift statistic equals scipy's on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from lakeray.monitor.stats import chi_squared, js_distance, ks, psi, wasserstein

pytestmark = pytest.mark.fast

RNG = np.random.default_rng(5)
BASE = RNG.normal(0, 1, 4000)
SHIFTED = RNG.normal(0.4, 1.3, 3000)
SAME = RNG.normal(0, 1, 3000)


@pytest.mark.parametrize("current", [SHIFTED, SAME, np.round(SHIFTED, 1)])
def test_ks_and_wasserstein_match_scipy(current):
    assert ks(BASE, current) == pytest.approx(stats.ks_2samp(BASE, current).statistic, abs=1e-12)
    assert wasserstein(BASE, current) == pytest.approx(stats.wasserstein_distance(BASE, current), rel=1e-9)


def test_binned_statistics_match_scipy_and_the_psi_formula():
    edges = np.quantile(BASE, np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    expected, _ = np.histogram(BASE, edges)
    actual, _ = np.histogram(SHIFTED, edges)
    assert js_distance(expected, actual) == pytest.approx(jensenshannon(expected, actual, base=2), rel=1e-9)
    statistic, p_value = chi_squared(expected, actual)
    ref = stats.chi2_contingency(np.vstack([expected, actual]), correction=False)
    assert (statistic, p_value) == (pytest.approx(ref.statistic, rel=1e-9), pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300))
    e, a = expected / expected.sum(), actual / actual.sum()
    assert psi(expected, actual) == pytest.approx(np.sum((a - e) * np.log(a / e)), rel=1e-9)
    assert psi(expected, actual) > 0.1 > psi(expected, np.histogram(SAME, edges)[0])   # shift vs no shift


def test_categorical_counts_and_empty_bins():
    expected, actual = [500, 300, 200, 0], [100, 300, 550, 50]
    ref = stats.chi2_contingency(np.array([expected, actual]), correction=False)
    assert chi_squared(expected, actual) == (pytest.approx(ref.statistic, rel=1e-9), pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300))
    assert np.isfinite(psi(expected, actual))                      # an empty baseline bin does not blow up
    assert js_distance(expected, expected) == 0.0 and chi_squared(expected, expected) == (0.0, 1.0)
    assert ks([], [1.0]) == 0.0 and wasserstein([1.0], []) == 0.0
