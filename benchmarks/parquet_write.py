"""What Parquet's write settings cost on the tables an incremental rerun writes whole, in one run.

    .venv/bin/python benchmarks/parquet_write.py TABLE [TABLE ...] [--rounds 3]

TABLE: a Delta table of a lake ingest_prepare.py left (its work folder, e.g.
benchmarks/out/10000000/lakehouse/churn/silver/customers); a table with a `split` column is written
partitioned by it, as gold is. Each table's rows are cached first, so only the write is timed; every
round writes each table once per variant (Spark's defaults, dictionary encoding off, lz4_raw, no
compression), and the last rounds' times and sizes are printed with their ratio to the defaults (the
first round pays the JIT).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from pyspark import StorageLevel

from lakeray.cli import setup_logging
from lakeray.config import load_settings
from lakeray.lakehouse import write_table
from lakeray.spark import build_spark

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("parquet_write")
VARIANTS = {                     # Spark session settings, or Hadoop ones (parquet.*)
    "default": {},
    "no dictionary": {"parquet.enable.dictionary": "false"},
    "lz4_raw": {"spark.sql.parquet.compression.codec": "lz4_raw"},
    "uncompressed": {"spark.sql.parquet.compression.codec": "uncompressed"},
}


def _apply(spark, conf: dict[str, str], on: bool) -> None:
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in conf.items():
        store = spark.conf if key.startswith("spark.") else hadoop
        if on:
            store.set(key, value)
        else:
            store.unset(key)


def timed_write(frame, folder: Path) -> tuple[float, float]:
    """Seconds to write `frame` as a Delta table in `folder`, and the MB of its Parquet files."""
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    write_table(frame, str(folder), partition_by=["split"] if "split" in frame.columns else None)
    seconds = time.perf_counter() - start
    return seconds, sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup_logging("WARNING")
    log.setLevel(logging.INFO)
    spark = build_spark(load_settings(root=ROOT), app_name="parquet-write", extra_conf={"spark.driver.memory": "8g"})
    frames = {}
    for table in args.tables:
        frames[table] = spark.read.format("delta").load(table).persist(StorageLevel.MEMORY_ONLY)
        log.info("%s: %d rows cached", table, frames[table].count())
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="parquet-write-") as scratch:
        for round_ in range(args.rounds):
            for variant, conf in VARIANTS.items():
                _apply(spark, conf, on=True)
                try:
                    for table, frame in frames.items():
                        results.setdefault((variant, table), []).append(timed_write(frame, Path(scratch, "t")))
                finally:
                    _apply(spark, conf, on=False)
            log.info("round %d of %d done", round_ + 1, args.rounds)
    for table in frames:
        base = results[("default", table)][1:] or results[("default", table)]
        base_s, base_mb = min(s for s, _ in base), base[0][1]
        for variant in VARIANTS:
            runs = results[(variant, table)][1:] or results[(variant, table)]
            low, high, mb = min(s for s, _ in runs), max(s for s, _ in runs), runs[0][1]
            print(f"{table}  {variant:14s} {low:6.2f}-{high:6.2f} s ({low / base_s:4.2f}x)  "
                  f"{mb:6.1f} MB ({mb / base_mb:4.2f}x)", flush=True)


if __name__ == "__main__":
    main()
