"""The churn pipeline's ingest + prepare as a data engineer would hand-write it in PySpark: no
lakeray code, no bookkeeping (no exactly-once streams, no accounting, no lineage, no run metrics).

Read each silo, cast to the declared types, trim/lower-case and map the spelled-out values, fill
region, flag the rule violations and write those rows to one quarantine table with their reasons,
keep the latest valid row per key (window), write silver Delta per source, then join and aggregate
into gold with a hash split, written as Delta partitioned by split. The fair baseline of
benchmarks/ingest_prepare.py (issue 13): the same semantic work, the obvious way.
"""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

EMAIL = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"


def _jdbc(spark, table: str) -> DataFrame:
    return (spark.read.format("jdbc").option("url", os.environ["LAKERAY_BILLING_JDBC_URL"]).option("dbtable", table)
            .option("user", os.environ["LAKERAY_BILLING_USER"]).option("password", os.environ["LAKERAY_BILLING_PASSWORD"])
            .option("driver", "org.postgresql.Driver").option("fetchsize", "10000").load())


def _norm(column: str, mapping: dict | None = None):
    value = F.lower(F.trim(F.col(column)))
    for raw, clean in (mapping or {}).items():
        value = F.when(value == raw, F.lit(clean)).otherwise(value)
    return value


def _cast(frame: DataFrame, types: dict) -> tuple[DataFrame, dict]:
    """Each declared column cast with try_cast (Spark 4's ANSI casts fail the job on one bad value),
    the raw text kept as _raw_<name>; and a rule per column: present raw text must cast."""
    out = frame.select(*[F.col(c).alias(f"_raw_{c}") for c in types],
                       *[F.col(c).cast("string").try_cast(t).alias(c) if t != "string" else F.col(c) for c, t in types.items()])
    rules = {f"{c}_type": F.col(f"_raw_{c}").isNull() | F.col(c).isNotNull() for c, t in types.items() if t != "string"}
    return out, rules


def _split_rules(frame: DataFrame, rules: dict, key: list[str], latest: str | None) -> tuple[DataFrame, DataFrame]:
    """(clean latest-per-key rows, quarantined rows with their reasons)."""
    reasons = F.array_compact(F.array(*[F.when(~F.coalesce(cond, F.lit(False)), F.lit(name)) for name, cond in rules.items()]))
    raw = [c for c in frame.columns if c.startswith("_raw_")]
    tagged = frame.withColumn("_reasons", reasons).drop(*raw)
    bad = tagged.where(F.size("_reasons") > 0)
    good = tagged.where(F.size("_reasons") == 0).drop("_reasons")
    order = [F.col(latest).desc_nulls_last()] if latest else [F.lit(1)]
    window = Window.partitionBy(*key).orderBy(*order)
    latest_rows = good.withColumn("_n", F.row_number().over(window)).where("_n = 1").drop("_n")
    return latest_rows, bad


def _quarantine(bad: DataFrame, source: str, key: list[str]) -> DataFrame:
    return bad.select(F.lit(source).alias("source"), F.concat_ws("|", *[F.col(k).cast("string") for k in key]).alias("key"),
                      F.concat_ws(",", "_reasons").alias("reasons"), F.to_json(F.struct(*[c for c in bad.columns if c != "_reasons"])).alias("row"))


def run(spark, landing: str, out: str) -> dict:
    """landing: <landing>/churn; out: a folder for silver/, gold, quarantine. Returns row counts."""
    raw, typing = _cast(spark.read.option("header", "true").csv(f"{landing}/customers"), {
        "customer_id": "string", "email": "string", "gender": "string", "senior_citizen": "int", "region": "string",
        "plan": "string", "signup_date": "date", "updated_at": "timestamp"})
    customers = raw.select(
        *[c for c in raw.columns if c.startswith("_raw_")],
        F.trim("customer_id").alias("customer_id"), F.lower(F.trim("email")).alias("email"),
        _norm("gender", {"f": "female", "m": "male"}).alias("gender"), "senior_citizen",
        F.coalesce(_norm("region", {"n.": "north", "s.": "south", "e.": "east", "w.": "west"}), F.lit("unknown")).alias("region"),
        _norm("plan", {"std": "standard", "prem": "premium"}).alias("plan"), "signup_date", "updated_at")
    customers = customers.withColumn("_emails", F.count("*").over(Window.partitionBy("email")))
    customers, bad_customers = _split_rules(customers, {
        **typing, "gender": F.col("gender").isin("female", "male"), "senior_citizen": F.col("senior_citizen").between(0, 1),
        "email": F.col("email").rlike(EMAIL), "unique_email": F.col("_emails") == 1,
        "signup_date": F.col("signup_date").isNotNull()}, ["customer_id"], "updated_at")
    customers, bad_customers = customers.drop("_emails"), bad_customers.drop("_emails")

    raw, typing = _cast(_jdbc(spark, "billing.subscriptions"), {
        "customer_id": "string", "contract": "string", "payment_method": "string", "monthly_charges": "double",
        "total_charges": "double", "tenure_months": "int", "churned": "boolean", "updated_at": "timestamp"})
    subs = raw.withColumn("contract", _norm("contract", {
        "month to month": "month-to-month", "m2m": "month-to-month", "one year": "one-year", "1yr": "one-year",
        "two year": "two-year", "2yr": "two-year"}))
    subs, bad_subs = _split_rules(subs, {
        **typing, "churned": F.col("churned").isNotNull(), "monthly_charges": F.col("monthly_charges") >= 0,
        "tenure_months": F.col("tenure_months").between(0, 120),
        "contract": F.col("contract").isin("month-to-month", "one-year", "two-year")}, ["customer_id"], "updated_at")

    raw, typing = _cast(spark.read.json(f"{landing}/tickets"), {
        "ticket_id": "string", "customer_id": "string", "created_at": "timestamp", "category": "string",
        "status": "string", "satisfaction": "int", "updated_at": "timestamp"})
    tickets = raw.withColumn("category", _norm("category", {"tech": "technical"})).withColumn("status", _norm("status"))
    tickets, bad_tickets = _split_rules(tickets, {
        **typing, "customer_id": F.col("customer_id").isNotNull(),
        "category": F.col("category").isin("billing", "technical", "account"),
        "satisfaction": F.col("satisfaction").isNull() | F.col("satisfaction").between(1, 5)}, ["ticket_id"], "updated_at")

    raw, typing = _cast(spark.read.parquet(f"{landing}/usage"), {
        "event_id": "string", "customer_id": "string", "event_date": "date", "minutes": "double", "data_gb": "double",
        "sessions": "int"})
    usage, bad_usage = _split_rules(raw, {**typing, "customer_id": F.col("customer_id").isNotNull(),
                                          "minutes": F.col("minutes") >= 0}, ["event_id"], None)

    silver = {"customers": customers, "subscriptions": subs, "tickets": tickets, "usage": usage}
    for name, frame in silver.items():
        frame.write.format("delta").mode("overwrite").save(f"{out}/silver/{name}")
    silver = {name: spark.read.format("delta").load(f"{out}/silver/{name}") for name in silver}
    quarantine = (_quarantine(bad_customers, "customers", ["customer_id"])
                  .unionByName(_quarantine(bad_subs, "subscriptions", ["customer_id"]))
                  .unionByName(_quarantine(bad_tickets, "tickets", ["ticket_id"]))
                  .unionByName(_quarantine(bad_usage, "usage", ["event_id"])))
    quarantine.write.format("delta").mode("overwrite").partitionBy("source").save(f"{out}/quarantine")

    t = silver["tickets"].groupBy("customer_id").agg(
        F.count("*").alias("n_tickets"), F.count(F.when(F.col("status") == "open", 1)).alias("n_open_tickets"),
        F.avg("satisfaction").alias("avg_satisfaction"))
    u = silver["usage"].groupBy("customer_id").agg(
        F.sum("minutes").alias("total_minutes"), F.avg("data_gb").alias("avg_data_gb"),
        F.sum("sessions").alias("n_sessions"), F.countDistinct("event_date").alias("active_days"))
    gold = (silver["customers"]
            .join(silver["subscriptions"].select("customer_id", "contract", "payment_method", "monthly_charges",
                                                 "total_charges", "tenure_months", "churned"), "customer_id", "left")
            .join(t, "customer_id", "left").join(u, "customer_id", "left")
            .fillna({"n_tickets": 0, "n_open_tickets": 0, "total_minutes": 0.0, "n_sessions": 0, "active_days": 0})
            .where(F.col("churned").isNotNull()))
    bucket = F.abs(F.xxhash64(F.col("customer_id"), F.lit(7))) % 100
    gold = gold.withColumn("split", F.when(bucket < 70, "train").when(bucket < 85, "validation").otherwise("test"))
    gold.write.format("delta").mode("overwrite").partitionBy("split").save(f"{out}/gold")
    return {"gold": spark.read.format("delta").load(f"{out}/gold").count()}
