"""Settings: base + overlay, environment variables, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeray.config import deep_merge, load_settings
from lakeray.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_overlay_is_merged_on_base():
    settings = load_settings("local", root=ROOT)
    assert settings["spark"]["conf"]["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert settings["spark"]["conf"]["spark.sql.shuffle.partitions"] == "4"   # from conf/local
    assert settings.path("lakehouse") == str(ROOT / "data" / "lakehouse")


def test_paths_follow_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKERAY_LAKEHOUSE", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKERAY_LANDING", "s3a://bucket/landing")
    settings = load_settings("local", root=ROOT)
    assert settings.path("lakehouse") == str(tmp_path / "lake")
    assert settings.path("landing") == "s3a://bucket/landing"   # URIs are left alone


def test_cluster_profile_names_the_missing_variable(monkeypatch):
    for var in ("LAKERAY_LANDING", "LAKERAY_LAKEHOUSE", "LAKERAY_CHECKPOINTS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match=r"conf/cluster/lakeray.yaml: setting 'paths.landing' needs environment variable LAKERAY_LANDING"):
        load_settings("cluster", root=ROOT)


def test_unknown_environment_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*known: cluster, local"):
        load_settings("prod", root=ROOT)


def test_bad_yaml_names_the_file(tmp_path):
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "base" / "lakeray.yaml").write_text("paths: [oops\n")
    with pytest.raises(ConfigError, match=r"conf/base/lakeray.yaml: not valid YAML"):
        load_settings("local", root=tmp_path)


def test_deep_merge_keeps_base_keys():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
