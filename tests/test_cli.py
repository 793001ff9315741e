"""Bad command-line input and bad settings: exit 2 and one message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakeray.cli import conf_overrides, parse_args
from lakeray.errors import ConfigError, SpecError
from lakeray.spec import load_spec
from tests.support import ROOT

LAKERAY = str(Path(sys.executable).with_name("lakeray"))


def lakeray(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKERAY_")}
    return subprocess.run([LAKERAY, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def refused(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.fixture
def latin1_spec(tmp_path):
    path = tmp_path / "churn-latin1.yaml"
    path.write_bytes((ROOT / "pipelines" / "churn.yaml").read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    return path


def test_non_utf8_spec_is_a_spec_error_naming_the_file(latin1_spec):
    with pytest.raises(SpecError) as err:
        load_spec(latin1_spec)
    assert err.value.path == str(latin1_spec) and "not UTF-8 text" in err.value.problems[0]


def test_validate_on_a_non_utf8_spec_exits_2_with_one_message(latin1_spec):
    err = refused(lakeray("validate", str(latin1_spec)))
    assert f"invalid pipeline spec {latin1_spec} (1 problem(s))" in err and "not UTF-8 text" in err


def test_bad_conf_value_names_the_setting_and_the_source():
    err = refused(lakeray("spark-args", "--conf", "serve.port=abc", "--conf", "serve.prot=1"))
    assert "invalid settings (2 problem(s))" in err
    assert "--conf: setting 'serve.port': Input should be a valid integer" in err and "(got 'abc')" in err
    assert "--conf: setting 'serve.prot' is unknown" in err


@pytest.mark.parametrize("args, message", [
    (["--conf", "tune.num_samples=[8"], "the value is not valid YAML"),
    (["--conf", "serve=1", "--conf", "serve.port=2"], "serve was set to a value by an earlier --conf"),
    (["--conf", "serve.=1"], "expected KEY=VALUE with a dotted key"),
    (["--env", "prod"], "unknown environment 'prod'"),
])
def test_bad_command_line_settings_exit_2(args, message):
    assert message in refused(lakeray("spark-args", *args))


def test_bad_log_level_and_row_count_are_argument_errors():
    assert "argument --log-level: 'loud' is not a log level" in refused(lakeray("spark-args", "--log-level", "loud"))
    err = refused(lakeray("generate", "--pipeline", "pipelines/telco.yaml", "--rows", "-3"))
    assert "argument --rows: '-3' is not a positive whole number" in err


def test_unknown_mlflow_run_id_is_a_lakeray_error(settings):
    from lakeray.errors import LakerayError
    from lakeray.registry import configure_tracking

    with pytest.raises(LakerayError, match=r"MLflow run 'no-such-run' not found"):
        configure_tracking(settings, "churn").latest_run("tune", "no-such-run")


def test_conf_overrides_parse_values_as_yaml():
    assert conf_overrides(["tune.num_samples=8", "serve.host=0.0.0.0", "ray.num_cpus=null"]) == {
        "tune": {"num_samples": 8}, "serve": {"host": "0.0.0.0"}, "ray": {"num_cpus": None}}
    with pytest.raises(ConfigError, match="an earlier --conf set keys under serve"):
        conf_overrides(["serve.port=1", "serve=2"])


@pytest.mark.fast
def test_run_takes_the_smoke_sizes_like_every_stage_command():
    assert parse_args(["run", "pipelines/telco.yaml", "--smoke-test"]).smoke_test is True
    assert parse_args(["run", "pipelines/telco.yaml"]).smoke_test is False


COMMANDS_WITH_A_SPEC = ["generate", "ingest", "prepare", "tune", "train", "evaluate", "drift", "serve", "run", "reset"]


@pytest.mark.fast
@pytest.mark.parametrize("command", COMMANDS_WITH_A_SPEC)
def test_every_command_takes_the_spec_either_way_and_the_common_options(command):
    common = ["--env", "local", "--verbose", "--log-level", "debug", "--conf", "tune.num_samples=2"]
    for argv in ([command, "pipelines/churn.yaml", *common], [command, "--pipeline", "pipelines/churn.yaml", *common]):
        args = parse_args(argv)
        assert (args.pipeline, args.env, args.verbose, args.log_level, args.conf) == (
            "pipelines/churn.yaml", "local", True, "DEBUG", ["tune.num_samples=2"])


@pytest.mark.fast
@pytest.mark.parametrize("argv, message", [
    (["train"], "train: give the pipeline spec, e.g. lakeray train pipelines/churn.yaml (or --pipeline"),
    (["run", "a.yaml", "--pipeline", "b.yaml"], "run: two specs given (a.yaml and --pipeline b.yaml); give one"),
    (["validate"], "validate: give at least one pipeline spec"),
])
def test_a_missing_or_doubled_spec_is_an_argument_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.fast
def test_validate_and_demo_take_several_specs_either_way():
    args = parse_args(["validate", "a.yaml", "--pipeline", "b.yaml", "--env", "cluster"])
    assert args.specs == ["a.yaml", "b.yaml"] and args.env == "cluster" and args.log_level == "WARNING"
    assert parse_args(["demo"]).specs == [] and parse_args(["demo", "--pipeline", "x.yaml"]).specs == ["x.yaml"]
