"""Ingest + prepare throughput against a plain Spark copy of the same silos, in one run.

    .venv/bin/python benchmarks/ingest_prepare.py --rows 1000000 [--rows 10000000]

For each size: generate the churn silos (about 9 rows per customer across the four silos),
seed PostgreSQL, then time, in the same Spark session:
  baseline  spark.read.<format>(silo).write.parquet(...) for every silo (JDBC: spark.read.jdbc)
  handwritten  the same semantic work as lakeray, hand-written the obvious way in PySpark
            (benchmarks/handwritten_churn.py: cast, normalise, quarantine, dedupe, joins, Delta)
  lakeray   run_ingest (exactly-once streams + JDBC MERGE into bronze Delta)
            + run_prepare (typing, rules, dedupe, quarantine, joins, split, accounting, lineage)
and print rows/s and the ratio lakeray / baseline.
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

from lakeray.cli import setup_logging
from lakeray.config import load_settings
from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse
from lakeray.prepare import run_prepare
from lakeray.spark import build_spark
from lakeray.spec import load_spec
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


def run_size(spark, spec, rows: int, work: Path, pg: LocalPostgres) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    settings = load_settings(root=ROOT, overrides={"paths": {k: str(work / k) for k in ("landing", "lakehouse", "checkpoints")}})
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
    t = time.perf_counter()
    run_ingest(spark, spec, settings)
    ingest = time.perf_counter() - t
    t = time.perf_counter()
    result = run_prepare(spark, spec, settings)
    prepare = time.perf_counter() - t
    assert all(a.reconciled for a in result.accounting.values())
    return {"rows": total, "baseline_s": round(baseline, 1), "handwritten_s": round(handwritten, 1),
            "vs_handwritten": round((ingest + prepare) / handwritten, 2), "ingest_s": round(ingest, 1),
            "prepare_s": round(prepare, 1), "lakeray_s": round(ingest + prepare, 1),
            "baseline_rows_per_s": round(total / baseline), "lakeray_rows_per_s": round(total / (ingest + prepare)),
            "ratio": round((ingest + prepare) / baseline, 2), "ingest_ratio": round(ingest / baseline, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="generated rows across all silos (repeatable)")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    setup_logging("WARNING")
    log.setLevel(logging.INFO)
    spec = load_spec(ROOT / "pipelines" / "churn.yaml")
    spark = build_spark(load_settings(root=ROOT), app_name="lakeray-benchmark",
                        extra_conf={"spark.driver.memory": args.driver_memory})
    results = []
    with LocalPostgres() as pg:
        os.environ.update(connection_env(spec, pg))
        for rows in [20_000] + (args.rows or [1_000_000]):   # the first size warms up the JVM
            res = run_size(spark, spec, rows, Path(args.work) / str(rows), pg)
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


if __name__ == "__main__":
    main()
