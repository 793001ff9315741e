"""lakeray sends nothing anywhere by default: MLflow's telemetry and Ray's usage stats are off in
a user's process (a fresh one: pytest itself sets PYTEST_CURRENT_TEST, which MLflow treats as CI)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support import ROOT
from tests.test_raysession import user_env

TRACKING_CALL = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from lakeray.registry import configure_tracking
    from tests.support import settings_in

    tracking = configure_tracking(settings_in(Path(sys.argv[1])), "telemetry")
    with tracking.start_run("tune", {"probe": 1}):
        pass
    import mlflow.telemetry.utils as utils
    from mlflow.telemetry.client import get_telemetry_client
    print(json.dumps({"ci_or_testing": utils._IS_IN_CI_ENV_OR_TESTING, "disabled": utils.is_telemetry_disabled(),
                      "client": get_telemetry_client() is not None}))
""")


# variables by which MLflow 3.17 decides it runs in CI (mlflow.telemetry.utils._is_ci_env_or_testing) and
# then keeps its telemetry off by itself: a user's shell has none of them, and CI sets CI=true
MLFLOW_CI_MARKERS = ("CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
                     "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION",
                     "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME", "RUNBOT_WORKER_ID")


def _run(code: str, *args: str, env_extra: dict | None = None) -> dict:
    env = {k: v for k, v in user_env().items() if k not in MLFLOW_CI_MARKERS}
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env | (env_extra or {}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mlflow_telemetry_is_off_after_a_lakeray_tracking_call(tmp_path):
    out = _run(TRACKING_CALL, str(tmp_path))
    assert out == {"ci_or_testing": False, "disabled": True, "client": False}


def test_a_user_can_opt_in_to_mlflow_telemetry(tmp_path):
    out = _run("import lakeray, os, json; print(json.dumps(os.environ['MLFLOW_DISABLE_TELEMETRY']))",
               env_extra={"MLFLOW_DISABLE_TELEMETRY": "false"})
    assert out == "false"                         # lakeray's default never overrides the user's choice


def test_mlflow_imported_before_lakeray_is_silenced_by_the_tracking_call(tmp_path):
    first = "import mlflow.telemetry.client as c\nassert c.get_telemetry_client() is not None\n"   # started
    out = _run(first + TRACKING_CALL, str(tmp_path))
    assert out["client"] is False


def test_ray_usage_stats_are_off_in_a_lakeray_process():
    out = _run("import lakeray, json\nfrom ray._common.usage import usage_lib\n"
               "print(json.dumps(usage_lib.usage_stats_enabled()))")
    assert out is False
