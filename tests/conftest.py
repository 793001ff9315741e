"""Shared, session-scoped real services: one Spark (with Delta) and one PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakeray.config import load_settings
from lakeray.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def settings_in(folder: Path):
    """lakeray settings whose landing, lakehouse and checkpoints live under `folder`."""
    return load_settings(root=ROOT, overrides={"paths": {k: str(folder / k) for k in ("landing", "lakehouse", "checkpoints")}})


@pytest.fixture(scope="session")
def spark():
    from lakeray.spark import build_spark

    session = build_spark(load_settings(root=ROOT), app_name="lakeray-tests",
                          extra_conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def postgres():
    from lakeray.devtools.postgres import LocalPostgres

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
