"""Writing 1% of changed and new keys into a 1M-row Delta table whose keys the change spreads over
every file: lakeray's MERGE (an update only where a column differs), a MERGE on the key alone (deletion
vectors, so only the key column of the target is read), and a rewrite of the whole table.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/silver_merge.py [--rows 1000000] [--rounds 3]

The table: a string key and 12 other columns in 8 files, deletion vectors on, statistics on the key (as
silver is written). The change: 0.75% of the rows updated (one column) and 0.25% new keys, computed
into a local checkpoint first (as the incremental prepare's MERGE source is). Each round restores the
table and times each write; the first round (the JIT's) is printed but left out of the best.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakeray.config import load_settings
from lakeray.lakehouse.delta import write_table
from lakeray.lakehouse.merge import checkpointed, merge_rows
from lakeray.spark import build_spark


def frame(spark, n: int, seed: int, offset: int = 0):
    df = spark.range(offset, offset + n).withColumn("customer_id", F.format_string("C%08d", "id"))
    for i in range(6):
        df = df.withColumn(f"s{i}", F.concat(F.lit("val"), (F.rand(seed + i) * 1000).cast("int").cast("string")))
    for i in range(4):
        df = df.withColumn(f"d{i}", F.rand(seed + 10 + i) * 100)
    return df.withColumn("updated_at", F.current_timestamp()).withColumn("email", F.format_string("u%d@x.io", "id")).drop("id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spark = build_spark(load_settings(), app_name="lakeray-bench-silver-merge")
    work = Path(tempfile.mkdtemp(prefix="silver-merge-"))
    base, target = str(work / "base"), str(work / "target")
    write_table(frame(spark, args.rows, 1).repartition(8), base, stats_columns=["customer_id"], deletion_vectors=True)
    changed = spark.read.format("delta").load(base).sample(0.0075, seed=3).withColumn("d0", F.lit(-1.0))
    rows = checkpointed(changed.unionByName(frame(spark, args.rows // 400, 5, offset=10 * args.rows)))
    values = {f"`{c}`": f"s.`{c}`" for c in rows.columns}

    def key_only():
        (DeltaTable.forPath(spark, target).alias("t").merge(rows.alias("s"), "t.customer_id = s.customer_id")
         .whenMatchedUpdate(set=values).whenNotMatchedInsert(values=values).execute())

    def rewrite():
        after = spark.read.format("delta").load(target).join(rows.select("customer_id"), "customer_id", "left_anti")
        write_table(after.unionByName(rows), target, stats_columns=["customer_id"], deletion_vectors=True)

    writes = {"merge_rows": lambda: merge_rows(spark, target, rows, spark.createDataFrame([], "customer_id string"),
                                               ["customer_id"]),
              "key-only MERGE": key_only, "rewrite": rewrite}
    times: dict[str, list[float]] = {name: [] for name in writes}
    for _ in range(args.rounds):
        for name, write in writes.items():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(base, target)
            start = time.perf_counter()
            write()
            times[name].append(time.perf_counter() - start)
            assert spark.read.format("delta").load(target).count() == args.rows + args.rows // 400
    print(f"{rows.count():,} changed or new rows into {args.rows:,}")
    print("| write | rounds (s) | best after the first (s) |\n|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {' / '.join(f'{x:.2f}' for x in t)} | {min(t[1:] or t):.2f} |")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
