"""Stage the bundled data of a pipeline into its landing area (and its database silos).

Used by `lakeray demo`, by every job's --smoke-test and by the tests. A spec with JDBC
sources gets a throwaway local PostgreSQL, whose credentials are exported under the
environment variable names that the spec's `connection` declares.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from lakeray.errors import LakerayError
from lakeray.lakehouse import Lakehouse
from lakeray.spec.models import PipelineSpec
from lakeray_examples.devtools.postgres import LocalPostgres

log = logging.getLogger(__name__)

SIZES = {"smoke": {"churn": 300, "telco": 600}, "default": {"churn": 5000, "telco": None}}


def connection_env(spec: PipelineSpec, pg: LocalPostgres) -> dict[str, str]:
    env = {}
    for source in spec.sources.values():
        if source.format == "jdbc":
            conn = source.connection
            env.update({conn.url_env: pg.jdbc_url, conn.user_env: pg.user, conn.password_env: pg.password})
    return env


@contextlib.contextmanager
def bundled_data(spec: PipelineSpec, lake: Lakehouse, size: str = "default", seed: int = 42, rows: int | None = None,
                 world: str = "base"):
    """Write the bundled data for `spec` and keep its database silos running inside the block.

    Yields a dict describing what was written (for the churn case, the exact ground truth).
    world="shifted" (churn only) is the same customers later on: only the billing database has
    changed, so the file silos are left as they are and the database holds the new rows.
    """
    landing = Path(lake.landing_root)
    n = rows or SIZES[size].get(spec.name)
    if world != "base" and spec.name != "churn":
        raise LakerayError(f"pipeline '{spec.name}' has no '{world}' world (only churn's bundled data can shift)")
    if spec.name == "churn":
        from lakeray_examples.datagen import churn

        gen = churn.generate(n_customers=n, seed=seed, world=world)
        if world == "base":
            churn.write_landing(gen, landing)
        with LocalPostgres() as pg:
            seeded = churn.seed_postgres(gen.subscriptions, pg.conninfo())
            log.info("seeded billing.subscriptions with %d rows in a local PostgreSQL on port %d", seeded, pg.port)
            env = connection_env(spec, pg)
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                yield {"truth": gen.truth, "postgres": pg}
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    elif spec.name == "telco":
        from lakeray_examples.datagen import telco

        yield {"summary": telco.write_landing(landing, limit=n)}
    else:
        raise LakerayError(f"pipeline '{spec.name}' has no bundled data (bundled: churn, telco)")
