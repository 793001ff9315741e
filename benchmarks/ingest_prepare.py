"""Ingest + prepare throughput against a plain Spark copy of the same silos, in one run.

    .venv/bin/python benchmarks/ingest_prepare.py --rows 1000000 [--rows 10000000]

For each size: generate the churn silos (about 9 rows per customer across the four silos),
seed PostgreSQL, then time, in the same Spark session:
  baseline  spark.read.<format>(silo).write.parquet(...) for every silo (JDBC: spark.read.jdbc)
  handwritten  the same semantic work as lakeray, hand-written the obvious way in PySpark
            (benchmarks/handwritten_churn.py: cast, normalise, quarantine, dedupe, joins, Delta)
  lakeray   run_ingest (exactly-once streams + JDBC MERGE into bronze Delta)
            + run_prepare (typing, rules, dedupe, quarantine, joins, split, accounting, lineage)
and print rows/s and the ratio lakeray / baseline. Then `--change` (default 1%) of new and changed rows
lands (land_change: newer versions of existing customers, tickets and subscriptions, new customers,
late re-deliveries, rows that break rules, a usage drop, and UPDATE/INSERT on the PostgreSQL table),
and ingest + prepare run again: the incremental rerun, timed against the full run. The PostgreSQL
table is read from its `updated_at` cursor on the rerun (`--no-jdbc-cursor`: whole, as churn.yaml does).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

import handwritten_churn  # noqa: E402  (benchmarks/, beside this file)
import numpy as np
import pandas as pd

from lakeray.cli import setup_logging
from lakeray.config import load_settings
from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse
from lakeray.prepare import run_prepare
from lakeray.spark import build_spark
from lakeray.spec import load_spec
from lakeray.spec.models import JdbcCursor
from lakeray_examples.datagen import churn
from lakeray_examples.datagen.bundles import connection_env
from lakeray_examples.devtools.postgres import LocalPostgres

log = logging.getLogger("benchmark")
ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_CUSTOMER = 9.2


def plain_copy(spark, spec, lake, out: Path) -> None:
    """The baseline: read each silo as plainly as Spark allows and write it as Parquet."""
    for name, source in spec.sources.items():
        if source.format == "jdbc":
            conn = source.connection
            df = (spark.read.format("jdbc").option("url", os.environ[conn.url_env]).option("dbtable", source.table)
                  .option("user", os.environ[conn.user_env]).option("password", os.environ[conn.password_env])
                  .option("driver", conn.driver).option("fetchsize", "10000").load())
        elif source.format == "csv":
            df = spark.read.option("header", "true").csv(lake.landing(source.path))
        else:
            df = spark.read.format(source.format).load(lake.landing(source.path))
        df.write.mode("overwrite").parquet(str(out / name))


def land_change(gen, landing: Path, conninfo: str, fraction: float, seed: int = 7) -> int:
    """`fraction` of each silo's rows as a new drop: newer versions of existing keys (half), new keys (a
    quarter), late re-deliveries of rows already landed, and rows that break a rule. Returns the rows landed."""
    import psycopg

    rng = np.random.default_rng(seed)

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[rng.choice(len(frame), size=max(4, int(len(frame) * fraction)), replace=False)].copy()

    def later(values, days: int = 90):
        return (pd.to_datetime(values) + pd.Timedelta(days=days)).dt.strftime("%Y-%m-%d %H:%M:%S")

    customers = pick(gen.customers)
    q = len(customers) // 4
    customers["updated_at"] = later(customers["updated_at"])
    customers.iloc[:q, 0] = [f"N{i:07d}" for i in range(q)]                               # new customers
    customers.iloc[:q, 1] = [f"new{i}@example.com" for i in range(q)]
    customers.iloc[q:q + max(1, q // 20), 2] = "x"                                       # breaks allowed_values
    customers = pd.concat([customers, pick(gen.customers).iloc[:q]])                     # late re-deliveries
    customers.to_csv(landing / "customers" / "crm_export_0002.csv", index=False, columns=churn.CUSTOMER_COLUMNS)

    tickets = pick(gen.tickets)
    tickets["updated_at"] = later(tickets["updated_at"], 1)
    tickets.iloc[: len(tickets) // 4, 0] = [f"TN{i:08d}" for i in range(len(tickets) // 4)]
    tickets.iloc[-1:, 5] = 9                                                             # breaks range
    tickets.to_json(landing / "tickets" / "tickets_0002.json", orient="records", lines=True, date_format="iso")

    usage = pd.concat(gen.usage_drops)
    usage = pick(usage)
    usage["event_id"] = [f"EN{i:09d}" for i in range(len(usage))]
    usage.iloc[-1:, 3] = -1.0                                                            # breaks range
    churn.write_usage_drop(usage, landing / "usage" / "usage_day_9999.parquet")

    subs = pick(gen.subscriptions)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        # one statement: the seeded table has no index on customer_id (a row at a time took minutes at 10M)
        # the billing system stamps a change with its time, after every seeded value (2025-03-01 at the latest)
        cur.execute("UPDATE billing.subscriptions SET monthly_charges = monthly_charges + 5, "
                    "updated_at = '2025-06-01' WHERE customer_id = ANY(%s)",
                    [list(subs["customer_id"][q:])])
        cur.executemany("INSERT INTO billing.subscriptions (customer_id, contract, payment_method, monthly_charges, "
                        "total_charges, tenure_months, churned, updated_at) VALUES (%s, 'one year', 'card', 50, 50, 1, "
                        "false, '2025-06-01')", [(f"N{i:07d}",) for i in range(q)])
    return len(customers) + len(tickets) + len(usage) + len(subs)


def ingest_and_prepare(spark, spec, settings) -> tuple[float, float, object]:
    t = time.perf_counter()
    run_ingest(spark, spec, settings)
    ingest = time.perf_counter() - t
    t = time.perf_counter()
    result = run_prepare(spark, spec, settings)
    assert all(a.reconciled for a in result.accounting.values())
    return ingest, time.perf_counter() - t, result


def run_size(spark, spec, rows: int, work: Path, pg: LocalPostgres, change: float) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    settings = load_settings(root=ROOT, overrides={"paths": {k: str(work / k) for k in ("landing", "lakehouse", "checkpoints")},
                                                   # the rerun is incremental at every size: that is what is measured
                                                   "prepare": {"incremental_min_bronze_mb": 0, "incremental_max_change": 1}})
    lake = Lakehouse.for_pipeline(settings, spec)
    t = time.perf_counter()
    gen = churn.generate(n_customers=int(rows / ROWS_PER_CUSTOMER), seed=1)
    churn.write_landing(gen, Path(lake.landing_root))
    churn.seed_postgres(gen.subscriptions, pg.conninfo())
    total = sum(e["rows_in"] for e in gen.truth.expected.values())
    log.info("generated %d rows in %.1fs", total, time.perf_counter() - t)

    t = time.perf_counter()
    plain_copy(spark, spec, lake, work / "plain")
    baseline = time.perf_counter() - t
    t = time.perf_counter()
    handwritten_churn.run(spark, lake.landing_root, str(work / "handwritten"))
    handwritten = time.perf_counter() - t
    ingest, prepare, result = ingest_and_prepare(spark, spec, settings)
    assert result.mode == "full"
    changed = land_change(gen, Path(lake.landing_root), pg.conninfo(), change)
    ingest_again, prepare_again, again = ingest_and_prepare(spark, spec, settings)
    assert again.mode == "incremental"
    rerun = ingest_again + prepare_again
    return {"changed_rows": changed, "rerun_ingest_s": round(ingest_again, 1), "rerun_prepare_s": round(prepare_again, 1),
            "rerun_vs_full": round(rerun / (ingest + prepare), 3),
            "rows": total, "baseline_s": round(baseline, 1), "handwritten_s": round(handwritten, 1),
            "vs_handwritten": round((ingest + prepare) / handwritten, 2), "ingest_s": round(ingest, 1),
            "prepare_s": round(prepare, 1), "lakeray_s": round(ingest + prepare, 1),
            "baseline_rows_per_s": round(total / baseline), "lakeray_rows_per_s": round(total / (ingest + prepare)),
            "ratio": round((ingest + prepare) / baseline, 2), "ingest_ratio": round(ingest / baseline, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="generated rows across all silos (repeatable)")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--change", type=float, default=0.01, help="share of each silo's rows landed again, changed")
    parser.add_argument("--jdbc-cursor", action=argparse.BooleanOptionalAction, default=True,
                        help="read the PostgreSQL table incrementally (cursor: updated_at) on the rerun")
    args = parser.parse_args()
    setup_logging("WARNING")
    log.setLevel(logging.INFO)
    spec = load_spec(ROOT / "pipelines" / "churn.yaml")
    if args.jdbc_cursor:     # what a user whose billing table keeps updated_at configures
        jdbc = spec.sources["subscriptions"].model_copy(update={"cursor": JdbcCursor(column="updated_at")})
        spec = spec.model_copy(update={"sources": {**spec.sources, "subscriptions": jdbc}})
    log.info("subscriptions read %s", "from its updated_at cursor on a rerun" if args.jdbc_cursor else "whole on every run")
    spark = build_spark(load_settings(root=ROOT), app_name="lakeray-benchmark",
                        extra_conf={"spark.driver.memory": args.driver_memory})
    results = []
    with LocalPostgres() as pg:
        os.environ.update(connection_env(spec, pg))
        for rows in [20_000] + (args.rows or [1_000_000]):   # the first size warms up the JVM
            res = run_size(spark, spec, rows, Path(args.work) / str(rows), pg, args.change)
            if rows != 20_000 or not args.rows:
                results.append(res)
            print(json.dumps(res), flush=True)      # every size, the 20k warm-up too
    print("| rows | plain copy (s) | hand-written (s) | ingest (s) | prepare (s) | lakeray rows/s | plain rows/s "
          "| ratio (ingest+prepare)/plain | ratio (ingest+prepare)/hand-written | ratio ingest/plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['baseline_s']} | {r['handwritten_s']} | {r['ingest_s']} | {r['prepare_s']} "
              f"| {r['lakeray_rows_per_s']:,} | {r['baseline_rows_per_s']:,} | {r['ratio']} | {r['vs_handwritten']} "
              f"| {r['ingest_ratio']} |")
    print("| rows | changed rows | rerun ingest (s) | rerun prepare (s) | rerun / full ingest+prepare |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['changed_rows']:,} | {r['rerun_ingest_s']} | {r['rerun_prepare_s']} | {r['rerun_vs_full']} |")


if __name__ == "__main__":
    main()
