"""The SparkSession: Delta enabled, JVM dependencies from cluster/jvm/pom.xml, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeray.config import load_settings
from lakeray.errors import ConfigError
from lakeray.spark import jvm_dependencies, spark_submit_args
from lakeray.spark.session import dependency_conf

ROOT = Path(__file__).resolve().parents[2]


def test_delta_round_trip_and_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    spark.range(10).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 10
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 3


def test_session_uses_loopback_and_conf(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.sql.catalog.spark_catalog") == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    # a static setting, read when the session starts: a run's ~450 compiled plans stay cached for the next
    assert spark._jsparkSession.sessionState().conf().codegenCacheMaxEntries() == 2000


def test_pom_declares_delta_and_postgres():
    coords = jvm_dependencies(load_settings(root=ROOT))
    assert "io.delta:delta-spark_4.2_2.13:4.4.0" in coords
    assert any(c.startswith("org.postgresql:postgresql:") for c in coords)


def test_spark_submit_args_per_mode():
    settings = load_settings(root=ROOT)
    args = spark_submit_args(settings)
    assert args[0] == "--jars" and "delta-spark_4.2_2.13-4.4.0.jar" in args[1] and "postgresql-" in args[1]
    settings["jvm"]["mode"] = "packages"
    assert spark_submit_args(settings) == ["--packages", ",".join(jvm_dependencies(settings))]
    settings["jvm"]["mode"] = "none"
    assert spark_submit_args(settings) == []


def test_bad_jvm_settings_are_named(tmp_path):
    settings = load_settings(root=ROOT)
    settings["jvm"]["mode"] = "maven"
    with pytest.raises(ConfigError, match="setting jvm.mode is 'maven'"):
        dependency_conf(settings)
    settings["jvm"]["mode"] = "local_dir"
    settings["jvm"]["jars_dir"] = str(tmp_path)
    with pytest.raises(ConfigError, match=r"no jars in .* \(setting jvm.jars_dir\): run `make install`"):
        dependency_conf(settings)
