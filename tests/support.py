"""Helpers the tests share: the project root, free ports, specs as files, settings in a folder,
the churn silos, and a synthetic gold snapshot (no Spark). Fixtures stay in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

from lakeray.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
# Fixtures that start a JVM, Ray or PostgreSQL: a test marked `fast` may not use them, directly or
# through another fixture (a collected item's fixturenames is the whole closure).
HEAVY_FIXTURES = frozenset({"spark", "postgres", "ray_local"})


def fast_violations(items) -> list[str]:
    """'<test id> uses <fixtures>' for each collected test marked fast that needs a heavy fixture."""
    return [f"{item.nodeid} uses {', '.join(sorted(HEAVY_FIXTURES & set(item.fixturenames)))}"
            for item in items if item.get_closest_marker("fast") and HEAVY_FIXTURES & set(item.fixturenames)]


def said(text: str, phrase: str) -> bool:
    """Whether a command's output contains `phrase`, whatever the column padding (tests check what
    was said, not how the console lines it up)."""
    return " ".join(phrase.split()) in " ".join(text.split())


def free_port() -> int:
    """A TCP port free on loopback right now (for servers the tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_pids() -> set[int]:
    """The pids of the HAProxy processes running now (zombies left to a PID 1 that reaps none aside)."""
    import psutil

    pids = set()
    for proc in psutil.process_iter(["name", "status"]):
        if proc.info["name"] == "haproxy" and proc.info["status"] != psutil.STATUS_ZOMBIE:
            pids.add(proc.pid)
    return pids


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


def delta_rows(spark, path: str) -> list:
    """A Delta table's latest rows, sorted, without the run's own columns (run id, times)."""
    from lakeray.lakehouse import latest_version, read_version

    frame = read_version(spark, path, latest_version(spark, path))
    if "quarantined_at" in frame.columns:
        frame = frame.drop("run_id", "quarantined_at", "_ingested_at")
    return sorted((tuple(r) for r in frame.collect()), key=repr)


class TwinLakes:
    """Two lakes over one bronze, for one spec: `incremental` prepares as a daily run does (the
    incremental path forced at any size), `full` recomputes everything. Files land in `landing`."""

    def __init__(self, folder: Path, spec):
        from lakeray.lakehouse import Lakehouse

        self.spec = spec
        self.settings = {m: settings_in(folder / m) for m in ("incremental", "full")}
        for s in self.settings.values():
            s["prepare"].update(incremental_min_bronze_mb=0, incremental_max_change=1.0)
        self.lake = {m: Lakehouse.for_pipeline(s, spec) for m, s in self.settings.items()}
        self.landing = Path(self.lake["incremental"].landing_root)
        for name in spec.sources:
            (self.landing / name).mkdir(parents=True)
        Path(self.lake["incremental"].root, "bronze").mkdir(parents=True)
        Path(self.lake["full"].root).mkdir(parents=True)
        os.symlink(Path(self.lake["incremental"].root, "bronze"), Path(self.lake["full"].root, "bronze"))

    def step(self, spark, silver: tuple[str, ...] = ()) -> dict:
        """Ingest what landed, prepare both lakes, and check both reconciled and equal row for row
        (gold, the quarantine and the `silver` tables named). The two runs' results by lake."""
        from lakeray.ingest import run_ingest
        from lakeray.prepare import run_prepare

        run_ingest(spark, self.spec, self.settings["incremental"])
        results = {"incremental": run_prepare(spark, self.spec, self.settings["incremental"]),
                   "full": run_prepare(spark, self.spec, self.settings["full"], full=True)}
        for result in results.values():
            assert result.gold is not None and all(a.reconciled for a in result.accounting.values()), result
        inc, full = self.lake["incremental"], self.lake["full"]
        for table in silver:
            assert delta_rows(spark, inc.silver(table)) == delta_rows(spark, full.silver(table)), table
        for path in ("gold", "quarantine"):
            assert delta_rows(spark, getattr(inc, path)) == delta_rows(spark, getattr(full, path)), path
        return results


CHURN_ROWS, CHURN_SEED = 400, 11


def stage_churn(folder: Path, postgres, spec):
    """Generate the churn silos (always the same for CHURN_ROWS/CHURN_SEED) under `folder`,
    seed PostgreSQL, and export the connection variables. Returns (settings, truth)."""
    from lakeray.lakehouse import Lakehouse
    from lakeray_examples.datagen import churn
    from lakeray_examples.datagen.bundles import connection_env

    settings = settings_in(folder)
    gen = churn.generate(n_customers=CHURN_ROWS, seed=CHURN_SEED)
    churn.write_landing(gen, Path(Lakehouse.for_pipeline(settings, spec).landing_root))
    churn.seed_postgres(gen.subscriptions, postgres.conninfo())
    os.environ.update(connection_env(spec, postgres))
    return settings, gen.truth


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


PG_CONNECTION = {"url_env": "T_PG_URL", "user_env": "T_PG_USER", "password_env": "T_PG_PASSWORD"}


def pg_table(postgres, monkeypatch, *statements: str):
    """Point the T_PG_* variables (PG_CONNECTION) at the test PostgreSQL and run `statements` there."""
    monkeypatch.setenv("T_PG_URL", postgres.jdbc_url)
    monkeypatch.setenv("T_PG_USER", postgres.user)
    monkeypatch.setenv("T_PG_PASSWORD", postgres.password)
    return pg_sql(postgres, *statements)


def pg_sql(postgres, *statements: str):
    """Run `statements` on the test PostgreSQL (autocommit)."""
    import psycopg

    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
    return postgres


def _slow(predict, delay_s: float, rows):
    import time

    time.sleep(delay_s)
    return predict(rows)


class SlowBundleLoader:
    """lakeray.serve.model.BundleLoader whose model takes `delay_s` per prediction call (it holds the
    replica's event loop, as a heavy model does): a replica that is easy to overload. Here, not in a
    test module, so Serve's replicas can import it (the repository root is on their sys.path)."""

    def __init__(self, bundle_dir, delay_s: float):
        from lakeray.serve.model import BundleLoader

        self.inner, self.delay_s = BundleLoader(bundle_dir), float(delay_s)

    def load(self, alias: str):
        import functools

        model = self.inner.load(alias)
        if model is not None:
            model.bundle.predict_rows = functools.partial(_slow, model.bundle.predict_rows, self.delay_s)
        return model

    def version(self, alias: str):
        return self.inner.version(alias)
