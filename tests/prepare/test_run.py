"""The prepare job on the generated churn silos: exact counts against the generator's truth,
a reconciling accounting, quarantine reasons, lineage, independent reads, quality limits."""

from __future__ import annotations

import json

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import DeltaProtocolError

from lakeray.errors import DataQualityError
from lakeray.lakehouse import commit_info, latest_version, read_version
from lakeray.prepare import run_prepare


def test_counts_match_the_ground_truth(churn_world):
    truth, acct = churn_world["truth"], churn_world["prepared"].accounting
    for name, expected in truth.expected.items():
        got = acct[name]
        assert (got.rows_in, got.clean, got.quarantined, got.duplicates) == (
            expected["rows_in"], expected["clean"], expected["quarantined"], expected["duplicates"]), name
        assert got.quarantine_by_rule == expected["quarantine_by_rule"], name
    assert (acct["dataset"].rows_in, acct["dataset"].quarantined, acct["dataset"].clean) == (
        truth.gold["rows_in"], truth.gold["missing_target"], truth.gold["clean"])


def test_run_metrics_table_reconciles(spark, churn_world):
    lake, run_id = churn_world["lake"], churn_world["prepared"].run_id
    rows = spark.read.format("delta").load(lake.run_metrics).where(f"run_id = '{run_id}'").collect()
    assert {r["table"] for r in rows} == {"customers", "subscriptions", "tickets", "usage", "dataset"}
    for r in rows:
        assert r["reconciled"] and r["status"] == "ok"
        assert r["rows_in"] == r["rows_clean"] + r["rows_quarantined"] + r["rows_duplicate"]
    ingest = spark.read.format("delta").load(lake.run_metrics).where("stage = 'ingest'").collect()
    assert {r["table"]: r["rows_in"] for r in ingest} == {
        f"bronze/{n}": e["rows_in"] for n, e in churn_world["truth"].expected.items()}


def test_quarantine_keeps_every_rejected_row_with_its_reason(spark, churn_world):
    lake, truth = churn_world["lake"], churn_world["truth"]
    q = spark.read.format("delta").load(lake.quarantine)
    by_rule = {(r["source"], r["rule"]): r["count"] for r in q.groupBy("source", "rule").count().collect()}
    expected = {(s, rule): n for s, e in truth.expected.items() for rule, n in e["quarantine_by_rule"].items()}
    expected[("dataset", "missing_target")] = truth.gold["missing_target"]
    assert by_rule == expected
    bad_type = q.where("rule = 'type:senior_citizen'").first()
    assert bad_type["value"] == "two" and bad_type["column"] == "senior_citizen"
    assert json.loads(bad_type["record"])["senior_citizen"] == "two"
    assert bad_type["_file"].endswith("customers/crm_export_0001.csv")
    malformed = q.where("source = 'customers' AND rule = 'malformed_record'").collect()
    assert all(r["value"].startswith(("garbage line", "C9")) for r in malformed)


def test_silver_is_typed_normalised_and_unique(spark, churn_world):
    lake = churn_world["lake"]
    customers = spark.read.format("delta").load(lake.silver("customers"))
    assert customers.schema["signup_date"].dataType.simpleString() == "date"
    assert {r[0] for r in customers.select("gender").distinct().collect()} == {"female", "male"}
    assert {r[0] for r in customers.select("region").distinct().collect()} <= {"north", "south", "east", "west", "unknown"}
    assert customers.count() == customers.select("customer_id").distinct().count()
    contracts = spark.read.format("delta").load(lake.silver("subscriptions")).select("contract").distinct().collect()
    assert {r[0] for r in contracts} == {"month-to-month", "one-year", "two-year"}


def test_lineage_pins_input_versions(spark, churn_world):
    result = churn_world["prepared"]
    for name, table in result.silver.items():
        meta = commit_info(spark, table.path, table.version)["user_metadata"]
        assert meta["inputs"] == {f"bronze/{name}": result.bronze_versions[name]}
        assert meta["run_id"] == result.run_id and len(meta["spec_hash"]) == 64
    gold_meta = commit_info(spark, result.gold.path, result.gold.version)["user_metadata"]
    assert gold_meta["inputs"] == {f"silver/{n}": t.version for n, t in result.silver.items()}


def test_independent_reader_sees_recorded_versions(spark, churn_world):
    """Gold (what training reads without a JVM) opens in delta-rs; silver and the quarantine have deletion
    vectors (an incremental MERGE marks rows instead of rewriting files), which Spark reads at the
    recorded versions and delta-rs refuses by name rather than misreading."""
    result = churn_world["prepared"]
    gold = DeltaTable(result.gold.path, version=result.gold.version)
    assert gold.to_pyarrow_dataset().count_rows() == result.accounting["dataset"].clean
    assert gold.metadata().partition_columns == ["split"]
    assert "deletionVectors" not in (gold.protocol().reader_features or [])
    for name, table in result.silver.items():
        rows = read_version(spark, table.path, table.version).count()
        assert rows == result.accounting[name].clean, name
        assert "deletionVectors" in DeltaTable(table.path).protocol().reader_features
    q = read_version(spark, result.quarantine.path, result.quarantine.version).count()
    assert q == sum(a.quarantined for a in result.accounting.values())
    with pytest.raises(DeltaProtocolError, match="deletionVectors"):
        DeltaTable(result.quarantine.path).to_pyarrow_dataset()


def test_gold_has_features_target_and_split(spark, churn_world):
    spec, result = churn_world["spec"], churn_world["prepared"]
    gold = spark.read.format("delta").load(result.gold.path)
    assert set(spec.features) | {spec.target, spec.entity_key, "split"} <= set(gold.columns)
    assert gold.where(f"{spec.target} IS NULL").count() == 0
    splits = {r["split"]: r["count"] for r in gold.groupBy("split").count().collect()}
    assert set(splits) == {"train", "validation", "test"}
    assert 0.6 < splits["train"] / sum(splits.values()) < 0.8
    # customers without tickets get the declared fill, not null
    assert gold.where("n_tickets IS NULL OR total_minutes IS NULL").count() == 0


def test_quarantine_limit_fails_the_job_and_keeps_silver(spark, churn_world):
    settings, spec, lake = churn_world["settings"], churn_world["spec"], churn_world["lake"]
    truth = churn_world["truth"].expected
    tickets_rate = truth["tickets"]["quarantined"] / truth["tickets"]["rows_in"]
    assert tickets_rate > 0
    # customers (a unique rule: staged whole) and tickets (row rules only: its rejected rows counted apart)
    strict = spec.model_copy(update={"sources": {
        **spec.sources, "customers": spec.sources["customers"].model_copy(update={"max_quarantine_rate": 0.01}),
        "tickets": spec.sources["tickets"].model_copy(update={"max_quarantine_rate": tickets_rate / 2})}})
    silver_before = latest_version(spark, lake.silver("customers"))
    gold_before = latest_version(spark, lake.gold)
    q_before = latest_version(spark, lake.quarantine)
    runs_before = {r["run_id"] for r in spark.read.format("delta").load(lake.run_metrics).select("run_id").collect()}
    with pytest.raises(DataQualityError) as info:
        run_prepare(spark, strict, settings)
    msg = str(info.value)
    assert "source 'customers'" in msg and "> limit 1.0% (sources.customers.max_quarantine_rate)" in msg
    assert "silver and gold were not updated" in msg and lake.quarantine in msg
    assert latest_version(spark, lake.silver("customers")) == silver_before
    assert latest_version(spark, lake.gold) == gold_before
    assert latest_version(spark, lake.quarantine) == q_before + 1     # the rejected rows are still kept
    assert "source 'tickets'" in msg and "(sources.tickets.max_quarantine_rate)" in msg
    failed = [r for r in spark.read.format("delta").load(lake.run_metrics).where("status = 'failed'").collect()
              if r["run_id"] not in runs_before]
    assert sorted(r["table"] for r in failed) == sorted(spec.sources)
    for r in failed:        # a stopped run still counts every status of every source
        assert r["reconciled"], r["table"]
        assert (r["rows_in"], r["rows_clean"], r["rows_quarantined"], r["rows_duplicate"]) == tuple(
            truth[r["table"]][k] for k in ("rows_in", "clean", "quarantined", "duplicates")), r["table"]


def test_gold_quarantine_limit_comes_from_conf(spark, churn_world):
    settings, spec, lake = churn_world["settings"], churn_world["spec"], churn_world["lake"]
    lenient = spec.model_copy(update={"sources": {n: s.model_copy(update={"max_quarantine_rate": 1.0})
                                                  for n, s in spec.sources.items()}})
    strict_conf = type(settings)({**settings, "prepare": {**settings["prepare"], "max_quarantine_rate": 0.001}})
    gold_before = latest_version(spark, lake.gold)
    with pytest.raises(DataQualityError) as info:
        run_prepare(spark, lenient, strict_conf)
    msg = str(info.value)
    assert "gold was not updated (silver was)" in msg
    assert "source 'dataset'" in msg and "(prepare.max_quarantine_rate in conf/)" in msg and "missing_target=" in msg
    assert latest_version(spark, lake.gold) == gold_before


def test_a_small_lake_joins_gold_from_the_staged_rows_a_big_one_from_silver(spark, churn_world):
    """prepare.gold_from_staged_max_mb: under it (the suite's lakes) gold joins the rows the silver writes
    cached; at 0 every lake reads the silver tables just written (test_incremental.py's recomputed lake
    does, and its gold matches the other lake's, built from the staged rows, row for row)."""
    from lakeray.prepare.run import gold_from_staged

    settings, spec, lake = churn_world["settings"], churn_world["spec"], churn_world["lake"]
    assert gold_from_staged(spark, settings, lake, spec)
    assert not gold_from_staged(spark, {**settings, "prepare": {**settings["prepare"], "gold_from_staged_max_mb": 0}},
                                lake, spec)
