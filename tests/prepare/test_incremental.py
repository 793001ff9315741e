"""The incremental prepare equals the full recompute, row for row.

Random sequences of drops (CSV people with re-deliveries, ties, unique clashes, delete markers and rows
that break rules; JSON events; a real PostgreSQL table whose rows change or are deleted, diffed by
deletes.snapshot) are ingested into one lake.
After each drop the lake's prepare runs incrementally, and a second lake whose bronze is the same
folder (a symlink) recomputes everything; silver, gold and quarantine must match (run ids and
timestamps of the run aside), and every run's accounting reconciles.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse, commit_info, latest_version, read_version
from lakeray.lakehouse.reset import reset
from lakeray.prepare import run_prepare
from lakeray.runs import append_run_metrics, last_note, metric_row
from lakeray.spec.loader import parse_spec
from tests.support import PG_CONNECTION, pg_sql, settings_in

PEOPLE = [f"p{i:02d}" for i in range(24)]
EVENTS = [f"e{i:02d}" for i in range(30)]

SPEC = parse_spec({
    "name": "incr", "task": "binary", "entity_key": "person_id", "target": "churned",
    "sources": {
        "people": {
            "format": "csv", "path": "people", "options": {"header": "true"},
            "columns": {"person_id": "string", "email": "string", "plan": "string", "age": "int",
                        "gone": "boolean", "updated_at": "timestamp"},
            "keys": ["person_id"], "latest_by": "updated_at",
            "normalize": {"plan": {"case": "lower"}},
            "expectations": [{"rule": "unique", "column": "email"},
                             {"rule": "allowed_values", "column": "plan", "values": ["a", "b"]},
                             {"rule": "range", "column": "age", "min": 0, "max": 120}],
            "deletes": {"column": "gone"},
            "max_quarantine_rate": 1.0,
        },
        "events": {
            "format": "json", "path": "events",
            "columns": {"event_id": "string", "person_id": "string", "minutes": "double", "day": "date"},
            "keys": ["event_id"],
            "expectations": [{"rule": "not_null", "column": "person_id"}, {"rule": "range", "column": "minutes", "min": 0}],
            "max_quarantine_rate": 1.0,
        },
        "accounts": {
            "format": "jdbc", "table": "incr.accounts", "connection": PG_CONNECTION,
            "columns": {"person_id": "string", "tier": "string", "churned": "boolean", "updated_at": "timestamp"},
            "keys": ["person_id"], "latest_by": "updated_at",
            "missing": {"churned": {"strategy": "quarantine"}},
            "deletes": {"snapshot": True},
            "max_quarantine_rate": 1.0,
        },
    },
    "dataset": {"base": "people", "joins": [
        {"source": "accounts", "on": "person_id", "select": ["tier", "churned"]},
        {"source": "events", "on": "person_id", "aggregate": {
            "n_events": {"fn": "count", "fill": 0}, "minutes": {"fn": "sum", "column": "minutes", "fill": 0},
            "avg_minutes": {"fn": "avg", "column": "minutes"}, "days": {"fn": "count_distinct", "column": "day"}}},
    ]},
    "features": {"plan": "categorical", "age": "numeric", "tier": "categorical", "n_events": "numeric",
                 "minutes": "numeric"},
    "metric": {"primary": "roc_auc"}, "baseline": {"model": "logistic"},
    "split": {"method": "hash", "seed": 5, "fractions": {"train": 0.5, "validation": 0.25, "test": 0.25}},
})

day = st.integers(1, 4).map(lambda d: f"2025-01-0{d} 00:00:00")
person = st.fixed_dictionaries({
    "person_id": st.sampled_from([*PEOPLE, "", " p01 "]),
    "email": st.sampled_from(["own", "own", "own", "shared@x.org", "other@x.org", "not-an-email", ""]),
    "plan": st.sampled_from(["a", "B", "b", "zz"]),
    "age": st.sampled_from(["30", "41", "-1", "x", ""]),
    "gone": st.sampled_from(["", "", "", "false", "true"]),
    "updated_at": day,
})
event = st.fixed_dictionaries({
    "event_id": st.sampled_from(EVENTS),
    "person_id": st.sampled_from([*PEOPLE[:8], None]),
    "minutes": st.sampled_from([0.5, 1.25, 2.0, -1.0, None]),      # exact in binary: sums do not depend on order
    "day": st.sampled_from(["2025-01-01", "2025-01-02", "2025-01-03"]),
})
account = st.fixed_dictionaries({
    "person_id": st.sampled_from(PEOPLE),
    "tier": st.sampled_from(["gold", "silver"]),
    "churned": st.sampled_from([True, False, None]),
    "updated_at": day,
    "deleted": st.sampled_from([False, False, True]),       # removed from the table: the snapshot diff marks it
})
drop = st.fixed_dictionaries({
    "people": st.lists(person, min_size=1, max_size=8),
    "events": st.lists(event, min_size=1, max_size=8),
    "accounts": st.lists(account, max_size=3),
})


@pytest.fixture(scope="module")
def pg_env(postgres):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T_PG_URL", postgres.jdbc_url)
        mp.setenv("T_PG_USER", postgres.user)
        mp.setenv("T_PG_PASSWORD", postgres.password)
        yield postgres


def _first_drop() -> dict:
    """Every person once (a live, valid row) and an account for each, so gold has rows in every split."""
    people = [{"person_id": p, "email": "own", "plan": "a", "age": "30", "gone": "", "updated_at": "2025-01-01 00:00:00"}
              for p in PEOPLE]
    accounts = [{"person_id": p, "tier": "gold", "churned": i % 2 == 0, "updated_at": "2025-01-01 00:00:00"}
                for i, p in enumerate(PEOPLE)]
    events = [{"event_id": "e00", "person_id": "p00", "minutes": 1.25, "day": "2025-01-01"}]
    return {"people": people, "events": events, "accounts": accounts}


class World:
    """One lake prepared incrementally, one recomputed in full from the same bronze folder."""

    def __init__(self, spark, postgres, folder: Path):
        self.spark, self.postgres, self.folder = spark, postgres, folder
        self.settings = {}
        for mode in ("incremental", "full"):
            s = settings_in(folder / mode)
            s["prepare"].update(min_split_rows=1, max_quarantine_rate=1.0, incremental_min_bronze_mb=0,
                                incremental_max_change=1.0)
            # the lake recomputed in full builds gold from the silver tables it wrote, as a big lake does;
            # the other one's first (full) run from the staged rows its silver writes cached, as a small
            # lake does: the first _check_same compares the two
            s["prepare"]["gold_from_staged_max_mb"] = 0 if mode == "full" else 12
            self.settings[mode] = s
        self.lake = {m: Lakehouse.for_pipeline(s, SPEC) for m, s in self.settings.items()}
        Path(self.lake["incremental"].root, "bronze").mkdir(parents=True)
        for name in ("people", "events"):
            Path(self.lake["incremental"].landing_root, name).mkdir(parents=True)
        Path(self.lake["full"].root).mkdir(parents=True)
        os.symlink(Path(self.lake["incremental"].root, "bronze"), Path(self.lake["full"].root, "bronze"))
        pg_sql(postgres, "CREATE SCHEMA IF NOT EXISTS incr; DROP TABLE IF EXISTS incr.accounts;"
                         "CREATE TABLE incr.accounts (person_id text PRIMARY KEY, tier text, churned boolean, updated_at timestamp)")
        self.n = 0

    def land(self, batch: dict) -> None:
        self.n += 1
        landing = Path(self.lake["incremental"].landing_root)
        if batch["people"]:
            path = landing / "people" / f"drop-{self.n:02d}.csv"
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(batch["people"][0]))
                writer.writeheader()
                for row in batch["people"]:
                    email = f"{row['person_id'].strip()}@x.org" if row["email"] == "own" else row["email"]
                    writer.writerow({**row, "email": email})
        if batch["events"]:
            path = landing / "events" / f"drop-{self.n:02d}.json"
            path.write_text("".join(json.dumps(e) + "\n" for e in batch["events"]))
        for a in batch["accounts"]:
            if a.get("deleted"):
                pg_sql(self.postgres, f"DELETE FROM incr.accounts WHERE person_id = '{a['person_id']}'")
                continue
            churned = "NULL" if a["churned"] is None else str(a["churned"]).lower()
            pg_sql(self.postgres, f"INSERT INTO incr.accounts VALUES ('{a['person_id']}', '{a['tier']}', {churned}, "
                                  f"'{a['updated_at']}') ON CONFLICT (person_id) DO UPDATE SET tier = EXCLUDED.tier, "
                                  "churned = EXCLUDED.churned, updated_at = EXCLUDED.updated_at")

    def step(self, batch: dict) -> dict:
        self.land(batch)
        run_ingest(self.spark, SPEC, self.settings["incremental"])
        results = {"incremental": run_prepare(self.spark, SPEC, self.settings["incremental"]),
                   "full": run_prepare(self.spark, SPEC, self.settings["full"], full=True)}
        for result in results.values():
            assert all(a.reconciled for a in result.accounting.values()), result.accounting
        return results

    def rows(self, mode: str, table: str) -> list:
        lake = self.lake[mode]
        path = {"gold": lake.gold, "quarantine": lake.quarantine}.get(table) or lake.silver(table)
        frame = read_version(self.spark, path, latest_version(self.spark, path))
        if table == "quarantine":     # the run's own columns; gold's rows carry the run's time
            frame = frame.drop("run_id", "quarantined_at").selectExpr(
                "*", "CASE WHEN source = 'dataset' THEN NULL ELSE _ingested_at END AS _at").drop("_ingested_at")
        return sorted((tuple(r) for r in frame.collect()), key=repr)


def _check_same(world: World) -> None:
    for table in [*SPEC.sources, "gold", "quarantine"]:
        incremental, full = world.rows("incremental", table), world.rows("full", table)
        assert incremental == full, f"{table}: incremental != full recompute"


def _check_lineage(spark, result) -> int:
    """Every commit of an incremental run names its own inputs (the silver MERGEs run at once, from
    threads, each in its own session clone), and the caller's session is left without the setting and
    with adaptive execution as it was.
    Returns how many silver tables this run committed to."""
    def meta(t):
        return commit_info(spark, t.path, t.version)["user_metadata"]

    expected = [(f"silver/{n}", t, {f"bronze/{n}": result.bronze_versions[n]}) for n, t in result.silver.items()]
    expected.append(("gold", result.gold, {f"silver/{n}": t.version for n, t in result.silver.items()}))
    ours = [(label, meta(table), inputs) for label, table, inputs in expected if meta(table)["run_id"] == result.run_id]
    for label, found, inputs in ours:
        assert found["inputs"] == inputs, label
    assert spark.conf.get("spark.databricks.delta.commitInfo.userMetadata", None) is None
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"      # put back after the run (off during it)
    return sum(label.startswith("silver/") for label, _, _ in ours)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(drops=st.lists(drop, min_size=2, max_size=2))
def test_incremental_equals_full_recompute(spark, pg_env, drops):
    folder = Path(tempfile.mkdtemp(prefix="incr-"))
    try:
        world = World(spark, pg_env, folder)
        first = world.step(_first_drop())
        assert first["incremental"].mode == "full"          # nothing to continue from yet
        _check_same(world)
        merged = 0
        for n, batch in enumerate(drops):
            # the first drop MERGEs every table it changes, the second writes each of them whole
            rewrite = n % 2 == 1
            world.settings["incremental"]["prepare"]["rewrite_rows_per_file"] = 0 if rewrite else 1e9
            # adaptive execution off for the run (the default), then on: the same tables either way
            world.settings["incremental"]["prepare"]["incremental_adaptive"] = rewrite
            results = world.step(batch)
            assert results["incremental"].mode == "incremental" and results["full"].mode == "full"
            _check_same(world)
            merged += _check_lineage(spark, results["incremental"])
            for table in [results["incremental"].gold, *results["incremental"].silver.values()]:
                info = commit_info(spark, table.path, table.version)
                if info["user_metadata"]["run_id"] == results["incremental"].run_id and info["operation"] != "WRITE":
                    assert not rewrite and info["operation"] == "MERGE", (table.path, info["operation"])
                elif info["user_metadata"]["run_id"] == results["incremental"].run_id and not rewrite:
                    # written, not MERGEd, while MERGE was asked for: only an append of new keys does that
                    assert info["metrics"].get("numRemovedFiles", "0") == "0", table.path
        assert merged >= 2          # silver MERGEs ran (their lineage was checked)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_rerun_without_new_rows_commits_nothing_and_a_changed_spec_recomputes(spark, pg_env, caplog):
    folder = Path(tempfile.mkdtemp(prefix="incr-"))
    try:
        world = World(spark, pg_env, folder)
        world.step(_first_drop())
        settings, lake = world.settings["incremental"], world.lake["incremental"]
        tables = [*(lake.silver(n) for n in SPEC.sources), lake.gold, lake.quarantine]
        before = [latest_version(spark, t) for t in tables]
        # a row appended by hand (no commit note): the last run's state is then read from the table itself
        append_run_metrics(spark, lake.run_metrics, [metric_row("by-hand", "audit", "t", rows_in=0)])
        assert last_note(spark, lake.run_metrics, "prepare") == (None, False)
        again = run_prepare(spark, SPEC, settings)
        assert again.mode == "incremental"
        assert [latest_version(spark, t) for t in tables] == before          # no source moved: no commit at all
        assert again.gold.version == before[-2] and {a.rows_in for a in again.accounting.values()} == {0}
        # a spec that differs (a tighter rule) cannot continue from the old state: full, and the log says why
        events = SPEC.sources["events"]
        rules = [events.expectations[0], events.expectations[1].model_copy(update={"min": 1})]
        stricter = SPEC.model_copy(update={"sources": {**SPEC.sources, "events": events.model_copy(update={"expectations": rules})}})
        with caplog.at_level("INFO", logger="lakeray.prepare"):
            result = run_prepare(spark, stricter, settings)
        assert result.mode == "full" and "the pipeline spec changed since the last run" in caplog.text
        # a table moved behind the job's back (here: gold rewritten): full again
        spark.read.format("delta").load(lake.gold).write.format("delta").mode("overwrite").save(lake.gold)
        caplog.clear()
        with caplog.at_level("INFO", logger="lakeray.prepare"):
            result = run_prepare(spark, stricter, settings)
        assert result.mode == "full" and "gold is not at the version the last run left" in caplog.text
        # conf's defaults: a bronze this small is cheaper to recompute, and the log says so
        world.land({"people": [], "events": [{"event_id": "e01", "person_id": "p01", "minutes": 0.5,
                                              "day": "2025-01-02"}], "accounts": []})
        run_ingest(spark, SPEC, settings)
        defaults = settings_in(folder / "incremental")
        defaults["prepare"].update(min_split_rows=1, max_quarantine_rate=1.0)
        caplog.clear()
        with caplog.at_level("INFO", logger="lakeray.prepare"):
            result = run_prepare(spark, stricter, defaults)
        assert result.mode == "full" and "under prepare.incremental_min_bronze_mb = 1024" in caplog.text
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_deleted_rows_flow_through_and_a_lost_feed_or_reset_bronze_recomputes(spark, pg_env, caplog):
    """A row removed from the PostgreSQL table (deletes.snapshot) leaves silver and gold's join on the
    incremental path as on the full one; a bronze table whose change feed was switched off, or that
    was reset and re-ingested, makes the next run recompute in full and say why."""
    folder = Path(tempfile.mkdtemp(prefix="incr-"))
    try:
        world = World(spark, pg_env, folder)
        world.step(_first_drop())
        deletion = {"person_id": "p03", "tier": "gold", "churned": None, "updated_at": "2025-01-01 00:00:00",
                    "deleted": True}
        results = world.step({"people": [], "events": [], "accounts": [deletion]})
        assert results["incremental"].mode == "incremental"
        assert results["incremental"].accounting["accounts"].deleted == 1
        _check_same(world)
        accounts = [r[0] for r in world.rows("incremental", "accounts")]
        assert "p03" not in accounts and len(accounts) == len(PEOPLE) - 1
        # p03 stays in gold (people is the base) without its account: no target, so gold quarantines it
        gold = [r for r in world.rows("incremental", "quarantine") if r[0] == "dataset"]
        assert any('"p03"' in r[1] for r in gold), gold
        # events with keys silver does not hold (one breaks a rule): events' silver is appended to, no MERGE
        fresh = [{"event_id": "e20", "person_id": "p04", "minutes": 2.0, "day": "2025-01-02"},
                 {"event_id": "e21", "person_id": None, "minutes": 1.25, "day": "2025-01-02"}]
        results = world.step({"people": [], "events": fresh, "accounts": []})
        assert results["incremental"].mode == "incremental"
        _check_same(world)
        events = results["incremental"].silver["events"]
        assert commit_info(spark, events.path, events.version)["operation"] == "WRITE"
        assert results["incremental"].accounting["events"].quarantined == 1
        # one rebuilt entity (p04), fewer than gold's files: a MERGE rewrites only its file
        gold = results["incremental"].gold
        assert commit_info(spark, gold.path, gold.version)["operation"] == "MERGE"
        # an event for every person: more rebuilt entities than gold has files, so gold is written whole
        world.settings["incremental"]["prepare"]["rewrite_rows_per_file"] = 1
        everyone = [{"event_id": f"e{30 + i}", "person_id": p, "minutes": 0.5, "day": "2025-01-03"}
                    for i, p in enumerate(PEOPLE)]
        results = world.step({"people": [], "events": everyone, "accounts": []})
        assert results["incremental"].mode == "incremental"
        _check_same(world)
        gold = results["incremental"].gold
        assert commit_info(spark, gold.path, gold.version)["operation"] == "WRITE"
        settings, lake = world.settings["incremental"], world.lake["incremental"]

        def rerun(batch: dict) -> str:
            world.land(batch)
            run_ingest(spark, SPEC, settings)
            caplog.clear()
            with caplog.at_level("INFO", logger="lakeray.prepare"):
                result = run_prepare(spark, SPEC, settings)
            assert result.mode == "full" and all(a.reconciled for a in result.accounting.values())
            return caplog.text

        event = {"event_id": "e05", "person_id": "p02", "minutes": 2.0, "day": "2025-01-02"}
        spark.sql(f"ALTER TABLE delta.`{lake.bronze('events')}` SET TBLPROPERTIES (delta.enableChangeDataFeed = false)")
        assert "bronze/events has no change data feed" in rerun({"people": [], "events": [event], "accounts": []})
        spark.sql(f"ALTER TABLE delta.`{lake.bronze('events')}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
        reset(lake, SPEC, "ingest", ["events"])
        assert "bronze/events is not the table the last run read (was it reset?)" in rerun(
            {"people": [], "events": [{**event, "event_id": "e06"}], "accounts": []})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
