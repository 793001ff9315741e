"""The same jobs on a real two-node Ray cluster: `ray start --head` + `ray start --address`,
then tune, train and evaluate through `ray job submit`, as on any remote cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lakeray.registry import configure_tracking
from lakeray.registry.tracking import TAG
from tests.support import ROOT, free_port, settings_in

pytestmark = pytest.mark.e2e
RAY = str(Path(sys.executable).with_name("ray"))



def _stop(markers: list[str]) -> None:
    """Stop only this cluster's processes (`ray stop` would also stop the suite's own Ray)."""
    import psutil

    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(m in cmdline for m in markers):
            found.add(proc)
            found.update(proc.children(recursive=True))
    for proc in found:
        proc.terminate()
    _, alive = psutil.wait_procs(list(found), timeout=10)
    for proc in alive:
        proc.kill()


@pytest.fixture(scope="module")
def two_node_cluster():
    """Token auth on, as on any real cluster: every node, `ray job submit` and the jobs share the token."""
    from lakeray.raysession import TOKEN_FILE, ensure_auth_token

    temp_dir = tempfile.mkdtemp(prefix="lr2n-", dir="/tmp")      # short: Ray's socket paths have a length limit
    token = ensure_auth_token(Path(temp_dir) / TOKEN_FILE)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "OMP_WAIT_POLICY": "PASSIVE"}
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(var, None)
    gcs, dashboard = free_port(), free_port()
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
              f"--dashboard-agent-listen-port={free_port()}"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={gcs}", f"--temp-dir={temp_dir}", "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={dashboard}", f"--ray-client-server-port={free_port()}", *common],
                       env=env, check=True, capture_output=True, timeout=180)
        common[-1] = f"--dashboard-agent-listen-port={free_port()}"
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{gcs}", *common], env=env, check=True,
                       capture_output=True, timeout=180)
        yield {"gcs": f"127.0.0.1:{gcs}", "dashboard": f"http://127.0.0.1:{dashboard}", "env": env, "temp_dir": temp_dir}
    finally:
        _stop([temp_dir, f":{gcs}"])


def _submit(cluster, runtime_env: dict, job: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, "job", "submit", f"--address={cluster['dashboard']}",
                           f"--runtime-env-json={json.dumps(runtime_env)}", "--",
                           sys.executable, str(ROOT / "jobs" / f"{job}.py"), *args],
                          env=cluster["env"], capture_output=True, text=True, timeout=900)


def test_tune_train_evaluate_through_ray_job_submit(two_node_cluster, churn_world, tmp_path):
    import ray

    settings = settings_in(tmp_path)
    for key in ("landing", "lakehouse", "checkpoints"):
        settings["paths"][key] = churn_world["settings"]["paths"][key]
    paths = {"LAKERAY_LANDING": "landing", "LAKERAY_LAKEHOUSE": "lakehouse", "LAKERAY_CHECKPOINTS": "checkpoints",
             "LAKERAY_RAY_STORAGE": "ray_storage", "LAKERAY_MODELS": "models", "LAKERAY_MLFLOW_DIR": "mlflow"}
    runtime_env = {"env_vars": {var: settings["paths"][key] for var, key in paths.items()} | {"OMP_WAIT_POLICY": "PASSIVE"}}
    pipeline = str(ROOT / "pipelines" / "churn.yaml")
    gold = churn_world["prepared"].gold

    nodes = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{two_node_cluster['gcs']}', "
                            "logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"],
                           env=two_node_cluster["env"], capture_output=True, text=True, timeout=120)
    assert nodes.stdout.strip().splitlines()[-1] == "2", nodes.stderr[-2000:]
    no_token = {k: v for k, v in two_node_cluster["env"].items() if not k.startswith("RAY_AUTH")}
    refused = subprocess.run([RAY, "job", "list", f"--address={two_node_cluster['dashboard']}"],
                             env=no_token | {"HOME": two_node_cluster["temp_dir"]}, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "Missing authentication token" in refused.stderr, refused.stderr[-2000:]

    tuned = _submit(two_node_cluster, runtime_env, "tune", "--pipeline", pipeline, "--gold-version", str(gold.version),
                    "--conf", "tune.num_samples=4", "--conf", "tune.rounds_scale=0.2", "--conf", "tune.max_concurrent_trials=2")
    assert "succeeded" in tuned.stdout + tuned.stderr, (tuned.stdout + tuned.stderr)[-4000:]
    assert "leaderboard (churn, roc_auc on validation)" in tuned.stdout
    trained = _submit(two_node_cluster, runtime_env, "train", "--pipeline", pipeline,
                      "--conf", "train.cpus_per_worker=0.5")
    assert "succeeded" in trained.stdout + trained.stderr, (trained.stdout + trained.stderr)[-4000:]
    evaluated = _submit(two_node_cluster, runtime_env, "evaluate", "--pipeline", pipeline)

    tracking = configure_tracking(settings, "churn")
    tune_run, train_run = tracking.latest_run("tune"), tracking.latest_run("train")
    assert tune_run.data.tags[f"{TAG}gold_version"] == str(gold.version)
    board = tracking.load_json(tune_run.info.run_id, "leaderboard.json")
    assert len(board) == 4
    assert len({row["node_id"] for row in board}) == 2        # one CPU per node: concurrent trials ran on both nodes
    assert train_run.data.tags[f"{TAG}tune_run_id"] == tune_run.info.run_id
    evaluation = tracking.client.search_runs([tracking.experiment_id], filter_string=f"tags.`{TAG}stage` = 'evaluate'")
    assert len(evaluation) == 1
    gate = evaluation[0].data.tags[f"{TAG}gate"]
    output = evaluated.stdout + evaluated.stderr
    if gate == "passed":   # the real churn gate (AUC >= 0.70, recall >= 0.40, beat logistic) on 400 customers
        assert "succeeded" in output and re.search(r"^champion\s+version 1$", output, re.M), output[-4000:]
    else:
        assert "failed" in output.lower() and "not promoted. Failed:" in output, output[-4000:]
    assert ray.is_initialized() is False or ray.get_runtime_context().gcs_address != two_node_cluster["gcs"]
