"""Shared, session-scoped real services (one Spark with Delta, one PostgreSQL, one local Ray) and the
fast-tier check. Helpers that tests import live in tests/support.py."""

from __future__ import annotations

import os

import pytest

from lakeray.config import load_settings
from lakeray.spec import load_spec
from tests.support import ROOT, fast_violations, settings_in, stage_churn

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_collection_modifyitems(config, items):
    wrong = fast_violations(items)
    if wrong:
        raise pytest.UsageError("tests marked fast start heavy services:\n  " + "\n  ".join(wrong))


def pytest_sessionfinish(session, exitstatus):
    """`-m fast` promises no JVM and no Ray: fail the run where one was started after all."""
    if session.config.getoption("markexpr", "") != "fast" or exitstatus != 0:
        return
    import sys

    started = []
    if "pyspark" in sys.modules and sys.modules["pyspark"].SparkContext._active_spark_context is not None:
        started.append("a Spark session")
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        started.append("Ray")
    if started:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nthe fast tier started {' and '.join(started)}: mark the test that did so slow", file=sys.stderr)


@pytest.fixture(scope="session")
def spark():
    from lakeray.spark import build_spark

    session = build_spark(load_settings(root=ROOT), app_name="lakeray-tests",
                          extra_conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def postgres():
    from lakeray_examples.devtools.postgres import LocalPostgres

    with LocalPostgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def churn_spec():
    return load_spec(ROOT / "pipelines" / "churn.yaml")


@pytest.fixture(scope="session")
def telco_spec():
    return load_spec(ROOT / "pipelines" / "telco.yaml")


@pytest.fixture
def settings(tmp_path):
    return settings_in(tmp_path)


@pytest.fixture(scope="session")
def churn_world(tmp_path_factory, spark, postgres, churn_spec):
    """The churn pipeline ingested and prepared once, shared by the tests that inspect it."""
    from lakeray.ingest import run_ingest
    from lakeray.lakehouse import Lakehouse
    from lakeray.prepare import run_prepare

    settings, truth = stage_churn(tmp_path_factory.mktemp("churn"), postgres, churn_spec)
    ingested = run_ingest(spark, churn_spec, settings)
    prepared = run_prepare(spark, churn_spec, settings)
    return {"settings": settings, "spec": churn_spec, "truth": truth, "ingested": ingested,
            "prepared": prepared, "lake": Lakehouse.for_pipeline(settings, churn_spec)}


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """One local Ray for the suite: 4 logical CPUs on 2 cores (room for Ray Data beside the
    workers) and 2 logical GPUs to test GPU scheduling without a GPU. The session lakeray
    starts for a job: loopback only, token auth with its own token."""
    from lakeray.raysession import ray_session

    settings = settings_in(tmp_path_factory.mktemp("ray-local"))
    settings["ray"].update(address="local", num_cpus=4, num_gpus=2)
    with ray_session(settings, log_to_driver=False) as ray:
        yield ray


@pytest.fixture(scope="session")
def easy_spec(churn_world):
    """Churn with a gate any real model passes on 400 customers: AUC >= 0.55 and beat 'majority'."""
    from lakeray.spec.models import Baseline, Metric

    return churn_world["spec"].model_copy(update={
        "metric": Metric(primary="roc_auc", thresholds={"roc_auc": 0.55}),
        "baseline": Baseline(model="majority", margin=0.0, champion_margin=0.0)})


@pytest.fixture(scope="session")
def ml(churn_world, easy_spec, ray_local, tmp_path_factory):
    """tune -> train -> evaluate once on the churn gold (smoke sizes): a champion for the suite."""
    from lakeray.lifecycle import run_ml_stages
    from lakeray.registry import configure_tracking

    folder = tmp_path_factory.mktemp("ml")
    settings = settings_in(folder)
    for key in ("landing", "lakehouse", "checkpoints"):      # the prepared churn lakehouse, own MLflow/Ray/models
        settings["paths"][key] = churn_world["settings"]["paths"][key]
    gold = churn_world["prepared"].gold
    out = run_ml_stages(easy_spec, settings, ("tune", "train", "evaluate"), gold_version=gold.version, smoke=True)
    return {"settings": settings, "out": out, "gold": gold, "tracking": configure_tracking(settings, easy_spec.name)}


