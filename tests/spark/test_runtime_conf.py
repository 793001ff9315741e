"""runtime_conf: session settings for one phase, put back as they were."""

from __future__ import annotations

import pytest

from lakeray.config import load_settings
from lakeray.prepare.incremental import _session_settings
from lakeray.spark.conf import runtime_conf

KEY = "spark.sql.shuffle.partitions"
UNSET = "spark.databricks.delta.commitInfo.userMetadata"


def test_settings_are_set_for_the_block_and_put_back(spark):
    before = spark.conf.get(KEY)
    with runtime_conf(spark, {KEY: "7", UNSET: "x", "spark.sql.adaptive.enabled": "false"}):
        assert spark.conf.get(KEY) == "7" and spark.conf.get(UNSET) == "x"
        # queries planned meanwhile see them (adaptive execution would coalesce the 7 partitions)
        assert spark.range(20).repartition("id").rdd.getNumPartitions() == 7
    assert spark.conf.get(KEY) == before and spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark.range(20).repartition("id").rdd.getNumPartitions() < 7
    assert spark.conf.get(UNSET, None) is None      # unset before: unset again, not left empty


def test_settings_are_put_back_when_the_block_raises(spark):
    before = spark.conf.get(KEY)
    with pytest.raises(RuntimeError, match="boom"), runtime_conf(spark, {KEY: "3"}):
        raise RuntimeError("boom")
    assert spark.conf.get(KEY) == before


def test_an_incremental_run_turns_adaptive_execution_off_unless_asked():
    assert load_settings()["prepare"]["incremental_adaptive"] is False       # conf/base's default
    assert _session_settings(load_settings()) == {"spark.sql.adaptive.enabled": "false"}
    on = load_settings(overrides={"prepare": {"incremental_adaptive": True}})
    assert _session_settings(on) == {}
