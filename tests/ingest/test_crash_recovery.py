"""Kill the ingest job (SIGKILL) right after a bronze commit, rerun it: nothing is duplicated. The
first kills run the sources one after another (ingest.parallel_sources=1), so which ones landed is
known; the last kill comes while the sources run side by side, as they do by default."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakeray.lakehouse import Lakehouse
from tests.support import ROOT, stage_churn

pytestmark = pytest.mark.e2e


def _ingest_job(settings, crash_at: str | None = None, workers: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKERAY_LANDING": settings.path("landing"), "LAKERAY_LAKEHOUSE": settings.path("lakehouse"),
           "LAKERAY_CHECKPOINTS": settings.path("checkpoints")}
    env.pop("LAKERAY_CRASH_AT", None)
    if crash_at:
        env["LAKERAY_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "jobs/ingest.py", "--pipeline", "pipelines/churn.yaml",
                           "--conf", f"ingest.parallel_sources={workers}"], cwd=ROOT, env=env,
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

    # 4. side by side: a re-delivered file in every file source, the job killed at the JDBC MERGE's
    # commit while the file streams run; the rerun lands each new file once, whatever the kill left
    for name in ("customers", "tickets", "usage"):
        folder = Path(lake.landing(churn_spec.sources[name].path, name))
        first = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))[0]
        shutil.copy(first, folder / f"again_{first.name}")
        rows = spark.read.format("delta").load(lake.bronze(name)).where(F.col("_file").endswith(f"/{first.name}")).count()
        assert rows > 0, first
        expected[name] += rows
    crashed = _ingest_job(settings, "ingest.after_bronze_commit:subscriptions", workers=4)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    rerun = _ingest_job(settings, workers=4)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _bronze_counts(spark, lake, expected) == expected
