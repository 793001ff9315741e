"""The fast tier's guard: a test marked fast may not reach Spark, Ray or PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support import fast_violations

pytestmark = pytest.mark.fast


class Item:
    def __init__(self, nodeid, fixtures, fast):
        self.nodeid, self.fixturenames, self.fast = nodeid, fixtures, fast

    def get_closest_marker(self, name):
        return object() if name == "fast" and self.fast else None


def test_a_fast_test_reaching_a_heavy_fixture_is_named_with_it():
    items = [Item("t.py::pure", ["tmp_path"], True),
             Item("t.py::through_another", ["world", "spark", "tmp_path"], True),   # world needs spark
             Item("t.py::slow", ["ray_local", "postgres"], False)]
    assert fast_violations(items) == ["t.py::through_another uses spark"]
    assert fast_violations([Item("t.py::both", ["ray_local", "postgres"], True)]) == ["t.py::both uses postgres, ray_local"]
