"""Shared, session-scoped real services: one Spark (with Delta) and one PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakeray.config import load_settings
from lakeray.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def free_port() -> int:
    """A TCP port free on loopback right now (for servers the tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_spec(spec, folder: Path) -> Path:
    """`spec` (an in-memory PipelineSpec) as a file, for code that loads specs by path (Serve, the CLI)."""
    import json

    path = Path(folder) / f"{spec.name}.yaml"
    path.write_text(json.dumps(json.loads(spec.model_dump_json())))     # JSON is YAML
    return path


def settings_in(folder: Path):
    """lakeray settings whose every location (lakehouse, Ray storage, MLflow, models...) is under `folder`."""
    from lakeray.lifecycle import SCRATCH_PATHS

    return load_settings(root=ROOT, overrides={"paths": {k: str(folder / k) for k in SCRATCH_PATHS}})


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


CHURN_ROWS, CHURN_SEED = 400, 11


def stage_churn(folder: Path, postgres, spec):
    """Generate the churn silos (always the same for CHURN_ROWS/CHURN_SEED) under `folder`,
    seed PostgreSQL, and export the connection variables. Returns (settings, truth)."""
    from lakeray.datagen import churn
    from lakeray.datagen.bundles import connection_env
    from lakeray.lakehouse import Lakehouse

    settings = settings_in(folder)
    gen = churn.generate(n_customers=CHURN_ROWS, seed=CHURN_SEED)
    churn.write_landing(gen, Path(Lakehouse.for_pipeline(settings, spec).landing_root))
    churn.seed_postgres(gen.subscriptions, postgres.conninfo())
    os.environ.update(connection_env(spec, postgres))
    return settings, gen.truth


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


def synthetic_snapshot(spec, rows: int = 1500, seed: int = 0, version: int = 3):
    """A GoldSnapshot with the spec's feature columns and a learnable binary target (no Spark):
    the target depends on the first two numeric features and the first categorical one."""
    import numpy as np
    import pandas as pd

    from lakeray.features import GoldSnapshot

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({spec.entity_key: [f"e{i}" for i in range(rows)]})
    logit = np.zeros(rows)
    numeric = [n for n, k in spec.features.items() if k == "numeric"]
    for name, kind in spec.features.items():
        if kind == "numeric":
            values = rng.normal(size=rows)
            logit += 1.5 * values if name in numeric[:2] else 0.0
            frame[name] = np.where(rng.random(rows) < 0.05, np.nan, values)
        elif kind == "categorical":
            frame[name] = rng.choice(["a", "b", "c"], size=rows)
        else:
            frame[name] = rng.random(rows) < 0.5
    first_cat = next((n for n, k in spec.features.items() if k == "categorical"), None)
    if first_cat:
        logit += np.where(frame[first_cat] == "a", 1.0, -0.5)
    positive = rng.random(rows) < 1 / (1 + np.exp(-logit))
    if spec.positive_label is not None:
        frame[spec.target] = np.where(positive, str(spec.positive_label), "other")
    else:
        frame[spec.target] = positive
    which = rng.random(rows)
    splits = {"train": which < 0.6, "validation": (which >= 0.6) & (which < 0.8), "test": which >= 0.8}
    return GoldSnapshot("/nowhere/gold", version, {k: frame[m].reset_index(drop=True) for k, m in splits.items()})


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


