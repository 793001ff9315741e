"""The same job, unchanged, on a real Spark standalone cluster (master + worker on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakeray_examples.devtools.postgres import free_port
from tests.support import said

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    env = {**os.environ, "LAKERAY_VENV": str(BIN.parent), "LAKERAY_SPARK_RUN": str(tmp_path_factory.mktemp("standalone")),
           "SPARK_WORKER_CORES": "1", "SPARK_WORKER_MEMORY": "1g"}
    script = ROOT / "cluster" / "local" / "spark-standalone.sh"
    start = subprocess.run([str(script), "start", str(free_port())], env=env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr
    yield start.stdout.strip()
    subprocess.run([str(script), "stop"], env=env, timeout=60)


def test_prepare_job_runs_on_a_standalone_cluster(standalone, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable}
    jars = subprocess.run([str(BIN / "lakeray"), "spark-args"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.split()
    proc = subprocess.run(
        [str(BIN / "spark-submit"), "--master", standalone, "--executor-memory", "768m", *jars,
         "jobs/prepare.py", "--pipeline", "pipelines/telco.yaml", "--smoke-test"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    assert f"master {standalone}" in out
    assert said(out, "accounting dataset: in 600 = clean 600 + quarantined 0 + duplicates 0 [reconciled]")
