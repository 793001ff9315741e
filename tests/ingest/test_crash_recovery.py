"""Kill the ingest job (SIGKILL) right after a bronze commit, rerun it: nothing is duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lakeray.lakehouse import Lakehouse
from tests.support import ROOT, stage_churn

pytestmark = pytest.mark.e2e


def _ingest_job(settings, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKERAY_LANDING": settings.path("landing"), "LAKERAY_LAKEHOUSE": settings.path("lakehouse"),
           "LAKERAY_CHECKPOINTS": settings.path("checkpoints")}
    env.pop("LAKERAY_CRASH_AT", None)
    if crash_at:
        env["LAKERAY_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "jobs/ingest.py", "--pipeline", "pipelines/churn.yaml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _bronze_counts(spark, lake, names):
    return {n: spark.read.format("delta").load(lake.bronze(n)).count() for n in names}


def test_reruns_after_kills_do_not_duplicate(spark, postgres, churn_spec, tmp_path):
    settings, truth = stage_churn(tmp_path, postgres, churn_spec)
    lake = Lakehouse.for_pipeline(settings, churn_spec)
    expected = {n: e["rows_in"] for n, e in truth.expected.items()}

    # 1. killed right after the JDBC MERGE into bronze (customers and subscriptions landed)
    crashed = _ingest_job(settings, "ingest.after_bronze_commit:subscriptions")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert "crash point ingest.after_bronze_commit reached" in crashed.stderr
    assert _bronze_counts(spark, lake, ["customers", "subscriptions"]) == {
        n: expected[n] for n in ["customers", "subscriptions"]}

    # 2. rerun, killed after the usage stream's Delta commit but before its checkpoint commit
    crashed = _ingest_job(settings, "ingest.after_bronze_commit:usage")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert _bronze_counts(spark, lake, expected) == expected

    # 3. rerun to completion: the stream replays its batch, Delta's txn id skips it
    rerun = _ingest_job(settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "source usage: batch 0 was already committed to bronze (replay after a crash): skipped" in rerun.stderr
    assert _bronze_counts(spark, lake, expected) == expected
