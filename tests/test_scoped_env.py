"""Settings an engine reads only from the environment are set for a block, not for the process."""

from __future__ import annotations

import os

import pytest

from lakeray.raysession import scoped_env

pytestmark = pytest.mark.fast


def test_a_scoped_variable_is_set_in_the_block_and_restored_after(monkeypatch):
    monkeypatch.delenv("LAKERAY_TEST_SCOPED", raising=False)
    with scoped_env("LAKERAY_TEST_SCOPED", "0.5"):
        assert os.environ["LAKERAY_TEST_SCOPED"] == "0.5"
    assert "LAKERAY_TEST_SCOPED" not in os.environ
    monkeypatch.setenv("LAKERAY_TEST_SCOPED", "user")
    with pytest.raises(RuntimeError):
        with scoped_env("LAKERAY_TEST_SCOPED", "2"):
            assert os.environ["LAKERAY_TEST_SCOPED"] == "2"
            raise RuntimeError("the block failed")
    assert os.environ["LAKERAY_TEST_SCOPED"] == "user"           # restored on the way out of a failure too
    with scoped_env("LAKERAY_TEST_SCOPED", None):                  # None: leave it as it is
        assert os.environ["LAKERAY_TEST_SCOPED"] == "user"
