"""The real entry points: spark-submit jobs/*.py and the lakeray command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import said

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def _run(cmd, env_extra=None, **kw):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env_extra or {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, **kw)


def test_spark_submit_prepare_smoke_test():
    # no --jars: the install step writes lakeray's spark-defaults.conf in the project (.jars/conf),
    # read by a bare spark-submit through SPARK_CONF_DIR; pyspark's own conf folder is left alone
    import pyspark

    assert not (Path(pyspark.__file__).parent / "conf" / "spark-defaults.conf").exists()
    defaults = ROOT / ".jars" / "conf" / "spark-defaults.conf"
    assert defaults.read_text().splitlines()[1].startswith("spark.jars ")
    proc = _run([str(BIN / "spark-submit"), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                 "jobs/prepare.py", "--pipeline", "pipelines/churn.yaml", "--smoke-test"],
                env_extra={"SPARK_CONF_DIR": str(defaults.parent)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout   # spark-submit's PythonRunner merges the driver's stderr into its stdout
    assert said(out, "ingested usage (parquet)")
    assert "lakeray prepare churn" in out and said(out, "wrote gold ")              # the closing summary
    assert said(out, "accounting dataset: in ") and "[reconciled]" in out
    assert "MISMATCH" not in out


def test_spark_submit_with_explicit_jars_and_without_them():
    jars = _run([str(BIN / "lakeray"), "spark-args"])
    assert jars.returncode == 0 and jars.stdout.startswith("--jars ")
    ok = _run([str(BIN / "spark-submit"), "--master", "local[1]", *jars.stdout.split(),
               "jobs/ingest.py", "--pipeline", "pipelines/telco.yaml", "--smoke-test"])
    assert ok.returncode == 0, ok.stdout[-3000:]
    # a Spark whose classpath lacks Delta (no jars given, no defaults file) gets a clear error
    empty_conf = Path(ROOT / "data" / "empty-spark-conf")
    empty_conf.mkdir(parents=True, exist_ok=True)
    proc = _run([str(BIN / "spark-submit"), "--master", "local[1]", "jobs/ingest.py", "--pipeline",
                 "pipelines/telco.yaml", "--smoke-test"], env_extra={"SPARK_CONF_DIR": str(empty_conf)})
    assert proc.returncode == 2
    assert "Delta Lake is not on the Spark driver's classpath" in proc.stdout


def test_python_job_ingest_smoke_test_on_real_data():
    proc = _run([sys.executable, "jobs/ingest.py", "--pipeline", "pipelines/telco.yaml", "--smoke-test"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    for source in ("customers (csv)", "services (json)", "billing (parquet)"):
        assert said(proc.stderr, f"ingested {source}: 600 new row(s)")


def test_train_job_smoke_test_runs_every_stage_before_it():
    """jobs/train.py --smoke-test: ingest -> prepare -> tune -> train on the small real data."""
    proc = _run([sys.executable, "jobs/train.py", "--pipeline", "pipelines/telco.yaml", "--smoke-test",
                 "--conf", "tune.smoke.num_samples=3"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert said(proc.stderr, "gold table ") and "@ version 0" in proc.stderr
    board = proc.stdout.split("leaderboard (telco, roc_auc on validation):\n", 1)[1].split("lakeray train telco", 1)[0]
    assert {line.split()[1] for line in board.strip().splitlines()[1:]} == {"xgboost", "random_forest", "logistic"}
    trained = next(line for line in proc.stdout.splitlines() if line.startswith("trained "))
    assert " -> /tmp/lakeray-smoke-" in trained and "(MLflow run " in trained
    assert "on 1 worker(s)" in proc.stderr          # train.num_workers auto: one per Ray node, all its CPUs


def test_validate_command_reports_every_problem(tmp_path):
    good = _run([str(BIN / "lakeray"), "validate", "pipelines/churn.yaml", "pipelines/telco.yaml"])
    assert good.returncode == 0 and "pipelines/telco.yaml: ok (telco, binary, 3 sources" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "pipelines" / "churn.yaml").read_text()
                   .replace("primary: roc_auc", "primary: rmse").replace("  tenure_months: numeric", "  tenure: numeric"))
    proc = _run([str(BIN / "lakeray"), "validate", str(bad)])
    assert proc.returncode == 2
    assert f"invalid pipeline spec {bad} (2 problem(s))" in proc.stderr
    assert "metric.primary: metric 'rmse' does not fit task 'binary'" in proc.stderr
    assert "features.tenure: unknown column 'tenure'" in proc.stderr


def test_job_on_a_missing_bronze_table_says_what_to_run(tmp_path):
    env_paths = {"LAKERAY_LANDING": str(tmp_path / "l"), "LAKERAY_LAKEHOUSE": str(tmp_path / "h"),
                 "LAKERAY_CHECKPOINTS": str(tmp_path / "c")}
    proc = subprocess.run([sys.executable, "jobs/prepare.py", "--pipeline", "pipelines/telco.yaml"], cwd=ROOT,
                          env={**os.environ, **env_paths}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "source 'customers': no bronze table at" in proc.stderr and "run the ingest job first" in proc.stderr


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_lakeray_serve_command_serves_the_champion_until_stopped(ml, easy_spec, tmp_path, stop):
    """`lakeray serve` as a user runs it: its own local Ray (loopback only), the champion over HTTP;
    Ctrl-C (SIGINT) and `kill` (SIGTERM) both stop it cleanly: exit 0, Serve and Ray shut down."""
    import signal
    import threading
    import time

    import psutil

    from lakeray.features import load_splits
    from lakeray.models import load_bundle
    from lakeray.serve.client import call, request_rows
    from tests.support import free_port, haproxy_pids, write_spec
    from tests.test_raysession import is_loopback, listening, open_to_the_network

    spec_file = write_spec(easy_spec, tmp_path)
    haproxies_before = haproxy_pids()
    port = free_port()
    conf = [f"paths.{k}={v}" for k, v in ml["settings"]["paths"].items()]
    conf += [f"serve.port={port}", "serve.replica_cpus=0.5", "serve.require_api_key=true", "ray.num_cpus=2"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PATH=f"{BIN}:{os.environ['PATH']}", LAKERAY_API_KEY="e2e-key")
    proc = subprocess.Popen([str(BIN / "lakeray"), "serve", "--pipeline", str(spec_file),
                             *[arg for c in conf for arg in ("--conf", c)]],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 240
        while not any(f"serving {spec_file} at {url}" in line for line in lines):    # serve.run has returned
            assert proc.poll() is None, f"lakeray serve exited early:\n{''.join(lines)[-4000:]}"
            assert time.time() < deadline, f"lakeray serve did not start within 240 s:\n{''.join(lines)[-4000:]}"
            time.sleep(1)
        assert call(f"{url}/healthz", timeout=5)[0] == 200
        test = load_splits(ml["gold"].path, ml["gold"].version, splits=("test",)).frames["test"].head(3)
        rows = request_rows(test, list(easy_spec.features))
        assert call(f"{url}/predict/batch", {"rows": rows})[0] == 401                      # the key is required
        status, body = call(f"{url}/predict/batch", {"rows": rows}, {"x-api-key": "e2e-key"})
        assert status == 200 and body["model_version"] == "1"
        expected = load_bundle(ml["out"]["train"]["bundle_dir"]).predict_frame(test)
        assert [p["prediction"] for p in body["predictions"]] == pytest.approx(list(expected), rel=1e-5)
        ray_procs = psutil.Process(proc.pid).children(recursive=True)
        assert {p.name() for p in ray_procs} >= {"gcs_server", "raylet"}
        sockets = listening([psutil.Process(proc.pid), *ray_procs])
        assert [s for s in sockets if not is_loopback(s[1]) and not s[0].startswith("ray::ServeReplica")] == []
        assert open_to_the_network([psutil.Process(proc.pid), *ray_procs]) == []   # Serve's "::" port wants the token
        proc.send_signal(getattr(signal, stop))
        proc.wait(timeout=120)
        reader.join(timeout=30)
        out = "".join(lines)
        assert proc.returncode == 0, out[-4000:]
        assert "stopping: shutting Serve down" in out, out[-3000:]
        assert "SIGTERM received" not in out and "Traceback" not in out, out[-4000:]   # no Ray stack dump
        with pytest.raises(OSError):
            call(f"{url}/healthz", timeout=5)
        _, alive = psutil.wait_procs(ray_procs, timeout=30)
        assert [p.name() for p in alive] == []                                      # Ray went down with it
        deadline = time.time() + 30            # and every HAProxy it started, a reload's included
        while haproxy_pids() - haproxies_before and time.time() < deadline:
            time.sleep(0.5)
        assert haproxy_pids() - haproxies_before == set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
