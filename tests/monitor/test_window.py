"""The counting's bin lookup (lakeray.monitor.window.binner) gives exactly what two binary searches give."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lakeray.monitor.window import FINE_BINS, binner

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
hostile = st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308]))


def _expected(edges, fine, values):
    return np.searchsorted(edges, values, side="right"), np.searchsorted(fine, values, side="right")


def _check(edges, fine, values, what=""):
    got_bin, got_fine = binner(edges, fine)(values)
    want_bin, want_fine = _expected(edges, fine, values)
    present = ~np.isnan(values)
    np.testing.assert_array_equal(got_bin[present], want_bin[present], err_msg=what)
    np.testing.assert_array_equal(got_fine[present], want_fine[present], err_msg=what)


def _edges_from(sample, count):
    return np.unique(np.quantile(sample, np.linspace(0, 1, count + 1)[1:-1]))


def test_quantile_edges_of_real_shapes_and_values_on_and_beside_every_edge():
    rng = np.random.default_rng(0)
    shapes = {"normal": rng.normal(size=20_000), "cubed exponential (long tail)": rng.exponential(size=20_000) ** 3,
              "rounded (ties)": np.round(rng.normal(size=20_000), 1), "outliers far away": np.r_[rng.normal(size=19_990), rng.normal(1e9, 1, 10)],
              "integers": rng.integers(0, 50, 20_000).astype(float)}
    for name, sample in shapes.items():
        fine, edges = _edges_from(sample, FINE_BINS), _edges_from(sample, 10)
        values = np.concatenate([rng.choice(sample, 50_000), fine, edges, np.nextafter(fine, np.inf), np.nextafter(fine, -np.inf),
                                 np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                                 [np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0]])
        _check(edges, fine, values, name)


@settings(max_examples=300, deadline=None)
@given(edges=st.lists(finite, max_size=12),
       fine=st.one_of(st.lists(finite, max_size=300, unique=True),
                      st.lists(st.floats(-1e307, 1e307) | st.sampled_from([-1.7e308, 1.7e308]), min_size=16, max_size=60,
                               unique=True)),     # a range whose grid overflows
       values=arrays(np.float64, st.integers(0, 400), elements=hostile))
def test_any_edges_any_values(edges, fine, values):
    edges, fine = np.sort(np.asarray(edges, float)), np.sort(np.asarray(fine, float))
    # values drawn from the edges themselves and their neighbours, beside arbitrary ones
    with np.errstate(over="ignore"):
        near = np.concatenate([fine, np.nextafter(fine, np.inf), np.nextafter(fine, -np.inf), edges])
    _check(edges, fine, np.concatenate([values, near]))


def test_the_grid_is_used_for_quantile_edges_and_a_long_tail_falls_back():
    rng = np.random.default_rng(1)
    normal = rng.normal(size=20_000)
    grid = binner(_edges_from(normal, 10), _edges_from(normal, FINE_BINS))
    tail = rng.exponential(size=20_000) ** 6
    fallback = binner(_edges_from(tail, 10), _edges_from(tail, FINE_BINS))
    assert "searchsorted" not in grid.__code__.co_names       # the one-pass lookup
    assert "searchsorted" in fallback.__code__.co_names       # bunched edges: binary search
