"""Settings: base + overlay, environment variables, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeray.config import deep_merge, load_settings
from lakeray.errors import ConfigError

pytestmark = pytest.mark.fast

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


# --- typed settings (lakeray.settings_model): every key declared, coerced, unknown keys refused ---

def _project(tmp_path: Path, overlay: str | bytes) -> Path:
    """A project folder with the real conf/base and `overlay` as conf/local."""
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "lakeray.yaml").write_text((ROOT / "conf" / "base" / "lakeray.yaml").read_text())
    (tmp_path / "conf" / "local" / "lakeray.yaml").write_bytes(overlay.encode() if isinstance(overlay, str) else overlay)
    return tmp_path


@pytest.mark.parametrize("env", sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name != "base"))
def test_every_conf_file_validates(env, monkeypatch, tmp_path):
    for var in ("LAKERAY_LANDING", "LAKERAY_LAKEHOUSE", "LAKERAY_CHECKPOINTS", "LAKERAY_RAY_STORAGE", "LAKERAY_MODELS"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("LAKERAY_MLFLOW_URI", "http://mlflow:5000")
    settings = load_settings(env, root=ROOT)
    assert isinstance(settings["serve"]["port"], int) and isinstance(settings["tune"]["num_samples"], int)


def test_values_are_coerced_to_their_declared_types(tmp_path, monkeypatch):
    monkeypatch.setenv("LR_TEST_PORT", "8123")
    root = _project(tmp_path, "spark:\n  conf:\n    spark.ui.enabled: false\n    spark.sql.shuffle.partitions: 8\n"
                              "serve:\n  port: ${LR_TEST_PORT:-8000}\n")
    settings = load_settings("local", root=root, overrides={"serve": {"replica_cpus": "0.5", "require_api_key": "true"},
                                                             "tune": {"num_samples": "12"}})
    assert settings["serve"]["port"] == 8123                      # "${VAR}" text -> the declared int
    assert settings["serve"]["replica_cpus"] == 0.5 and settings["serve"]["require_api_key"] is True
    assert settings["tune"]["num_samples"] == 12
    assert settings["spark"]["conf"]["spark.ui.enabled"] == "false"            # Spark's spelling of YAML false
    assert settings["spark"]["conf"]["spark.sql.shuffle.partitions"] == "8"
    assert "rounds_scale" not in settings["tune"]                  # an absent key stays absent (callers' defaults)
    settings["serve"]["port"] = 9000                                # still plain, mutable dicts
    assert settings["serve"]["port"] == 9000 and settings.path("lakehouse").startswith(str(root))


def test_unknown_key_in_an_overlay_is_named_with_its_file(tmp_path):
    root = _project(tmp_path, "serve:\n  prot: 9000\n")
    with pytest.raises(ConfigError, match=r"conf/local/lakeray.yaml: setting 'serve.prot' is unknown"):
        load_settings("local", root=root)


def test_every_settings_problem_in_one_message_each_with_its_source(tmp_path):
    root = _project(tmp_path, "tune:\n  num_samples: 0\nsparkk: {}\n")
    with pytest.raises(ConfigError) as err:
        load_settings("local", root=root, overrides={"serve": {"port": "abc"}})
    text = str(err.value)
    assert text.startswith("invalid settings (3 problem(s)):")
    assert "--conf: setting 'serve.port': Input should be a valid integer" in text and "(got 'abc')" in text
    assert f"{root}/conf/local/lakeray.yaml: setting 'tune.num_samples': Input should be greater than or equal to 1" in text
    assert f"{root}/conf/local/lakeray.yaml: setting 'sparkk' is unknown" in text


def test_non_utf8_conf_file_names_the_file(tmp_path):
    root = _project(tmp_path, b"serve:\n  host: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"conf/local/lakeray.yaml: not UTF-8 text"):
        load_settings("local", root=root)
