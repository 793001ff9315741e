"""Re-staging from silver (restage.py) equals staging the whole history, on random histories: the new
rows get the status a full run gives them and silver ends with the same rows; a new row that ties with
its key's silver row on every order column is found (that source is then re-staged from bronze)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from lakeray.prepare.dedupe import STATUS
from lakeray.prepare.restage import from_silver, from_silver_ok, ties
from lakeray.prepare.steps import clean_rows, stage_source
from lakeray.prepare.validate import validate_rows
from lakeray.spec.models import Source

SOURCE = Source.model_validate({
    "format": "csv", "path": "x", "keys": ["id"], "latest_by": "updated_at",
    "columns": {"id": "string", "v": "int", "updated_at": "timestamp"},
    "expectations": [{"rule": "range", "column": "v", "min": 0}],
})
T = [dt.datetime(2025, 1, d) for d in (1, 2, 3)]
row = st.tuples(st.sampled_from(["a", "b", "c", "", None]), st.sampled_from(["1", "2", "-1", "x", None]),
                st.sampled_from(["2025-01-01 00:00:00", "2025-01-02 00:00:00", "", None]),
                st.sampled_from(["f0", "f1"]))


def _bronze(spark, rows, ingested):
    """Bronze-like rows; `_batch_id` names each row (the dedupe's order never reads it)."""
    data = [(i, v, u, None, f"file:/landing/{f}.csv", at, tag) for (i, v, u, f), at, tag in rows]
    return spark.createDataFrame(data, "id string, v string, updated_at string, _corrupt_record string, "
                                       "_file string, _ingested_at timestamp, _batch_id string")


def _tagged(rows, when, prefix):
    return [(r, when[n % len(when)], f"{prefix}{n}") for n, r in enumerate(rows)]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(old=st.lists(row, min_size=1, max_size=8), new=st.lists(row, min_size=1, max_size=6),
       tie_prone=st.booleans())
def test_from_silver_equals_staging_the_whole_history(spark, old, new, tie_prone):
    assert from_silver_ok(SOURCE)
    old_rows = _tagged(old, T[:2], "o")
    # new rows land later; tie-prone ones at the old rows' ingestion times (a tie is then possible)
    new_rows = _tagged(new, T[:2] if tie_prone else T[2:], "n")
    full = stage_source(_bronze(spark, old_rows + new_rows, None), SOURCE)
    silver_old = clean_rows(stage_source(_bronze(spark, old_rows, None), SOURCE), SOURCE)
    fresh = validate_rows(_bronze(spark, new_rows, None), SOURCE)
    touched = fresh.where(F.col("id").isNotNull()).select("id").distinct()
    held = silver_old.join(touched, "id", "left_semi")
    found = ties(fresh, held, SOURCE).select("_batch_id").collect()
    full_status = {r["_batch_id"]: r[STATUS] for r in full.select("_batch_id", STATUS).collect()}
    assert tie_prone or not found
    if found:       # a new valid row equal to its key's silver row on latest_by, _ingested_at and _file
        for r in found:
            assert full_status[r["_batch_id"]] != "quarantined"
        return
    staged = from_silver(fresh, held, SOURCE)
    mine = {r["_batch_id"]: r[STATUS] for r in staged.where(~F.col("_old")).select("_batch_id", STATUS).collect()}
    assert mine == {tag: s for tag, s in full_status.items() if tag.startswith("n")}
    after = silver_old.join(touched, "id", "left_anti").unionByName(clean_rows(staged, SOURCE))
    assert sorted(map(tuple, after.collect())) == sorted(map(tuple, clean_rows(full, SOURCE).collect()))


def test_a_tie_on_every_order_column_is_found(spark):
    old_rows = [(("a", "1", "2025-01-01 00:00:00", "f0"), T[0], "o0")]
    same = [(("a", "2", "2025-01-01 00:00:00", "f0"), T[0], "n0")]          # same key, order columns equal
    later = [(("a", "2", "2025-01-01 00:00:00", "f0"), T[1], "n1")]         # ingested later: no tie
    silver_old = clean_rows(stage_source(_bronze(spark, old_rows, None), SOURCE), SOURCE)
    for rows, expected in ((same, ["n0"]), (later, [])):
        fresh = validate_rows(_bronze(spark, rows, None), SOURCE)
        assert [r["_batch_id"] for r in ties(fresh, silver_old, SOURCE).collect()] == expected
    assert not from_silver_ok(Source.model_validate({**SOURCE.model_dump(exclude_none=True),
                                                     "expectations": [{"rule": "unique", "column": "v"}]}))


KEYED = {
    "normalised text key": Source.model_validate({
        "format": "csv", "path": "x", "keys": ["id"], "columns": {"id": "string", "v": "int", "updated_at": "timestamp"},
        "normalize": {"id": {"case": "lower"}}}),
    "integer key, filled": Source.model_validate({
        "format": "csv", "path": "x", "keys": ["id"], "columns": {"id": "int", "v": "int", "updated_at": "timestamp"},
        "missing": {"id": {"strategy": "fill", "value": 0}}}),
}
raw_key = st.sampled_from(["a", " A ", "A", "", None, "1", " 01 ", "0", "x1", "2"])


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(keys=st.lists(raw_key, min_size=1, max_size=10), touched=st.lists(raw_key, min_size=1, max_size=4),
       which=st.sampled_from(sorted(KEYED)))
@example(keys=[" A ", "a", "A", "", None, "x1"], touched=["a"], which="normalised text key")     # three spellings of a
@example(keys=[" 01 ", "1", "", None, "x1", "0"], touched=["1", ""], which="integer key, filled")    # 1 twice; "" fills to 0
def test_bronze_is_filtered_on_its_keys_as_validation_types_them(spark, keys, touched, which):
    """bronze_rows filters bronze on each key typed, normalised and filled as validate_rows leaves it,
    before validating: the same rows as validating all of bronze and then keeping R's keys."""
    from lakeray.prepare.restage import bronze_rows

    source = KEYED[which]
    bronze = _bronze(spark, _tagged([(k, "1", "2025-01-01 00:00:00", "f0") for k in keys], T[:1], "b"), None)
    keys_r = validate_rows(_bronze(spark, _tagged([(k, "1", None, "f1") for k in touched], T[:1], "t"), None), source)
    keys_r = keys_r.where(F.col("id").isNotNull()).select("id").distinct()
    no_new = validate_rows(bronze.limit(0), source)
    got = bronze_rows(bronze, no_new, source, keys_r).select("_batch_id", "id").collect()
    want = validate_rows(bronze, source).join(keys_r, ["id"], "left_semi").select("_batch_id", "id").collect()
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(wanted=st.lists(st.tuples(st.sampled_from(["a", "k03", "k17", "k39", "z"]), st.sampled_from([0, 1, 2, 9])),
                       max_size=5))
def test_rows_of_keys_equals_the_join_and_reads_no_file_for_new_keys(spark, tmp_path_factory, wanted):
    """The key-range filter never changes the rows (a two-column key, keys inside, between and outside
    the table's range, none at all); keys beyond every file's statistics read no file."""
    from lakeray.lakehouse import stats_property
    from lakeray.prepare.restage import rows_of_keys

    path = str(tmp_path_factory.mktemp("silver"))
    rows = [(f"k{i:02d}", i % 3, f"v{i}") for i in range(40)]
    (spark.createDataFrame(rows, "id string, part int, v string").repartition(4, "id").write.format("delta")
     .option(*stats_property(["id", "part"])).save(path))
    table = spark.read.format("delta").load(path)
    keys_r = spark.createDataFrame(wanted, "id string, part int").distinct()
    found = sorted(tuple(r) for r in rows_of_keys(table, keys_r, ["id", "part"]).collect())
    assert found == sorted(tuple(r) for r in table.join(keys_r, ["id", "part"], "left_semi").collect())
    new_only = rows_of_keys(table, spark.createDataFrame([("z1", 0), ("z2", 1)], "id string, part int"), ["id", "part"])
    assert len(table.inputFiles()) == 4 and new_only.inputFiles() == [] and new_only.count() == 0


UNIQUE = Source.model_validate({
    "format": "csv", "path": "x", "keys": ["id"], "latest_by": "updated_at",
    "columns": {"id": "string", "email": "string", "updated_at": "timestamp"},
    "expectations": [{"rule": "unique", "column": "email"}],
})


def _people(spark, rows):
    data = [(i, e, "2025-01-01 00:00:00", None, "file:/landing/p.csv", T[0], f"b{n}") for n, (i, e) in enumerate(rows)]
    return spark.createDataFrame(data, "id string, email string, updated_at string, _corrupt_record string, "
                                       "_file string, _ingested_at timestamp, _batch_id string")


def _shuffled(frame) -> bool:
    """Whether the executed plan joins by sorting both sides (a sort-merge join: silver shuffled)."""
    plan = frame._jdf.queryExecution().executedPlan().toString()
    return "SortMergeJoin" in plan


def test_touched_keys_take_the_clashing_silver_rows_and_the_held_ones_without_shuffling_silver(spark):
    """R for a source with a `unique` rule: the new rows' keys, silver's rows sharing a value with a new
    row, and the rows the rule holds in quarantine (their clash may be gone). Silver is probed through
    the new rows' broadcast (a small checkpoint), not shuffled against them."""
    from lakeray.lakehouse.merge import checkpointed
    from lakeray.prepare.quarantine import key_json
    from lakeray.prepare.restage import touched_keys

    staged = stage_source(_people(spark, [("a", "a@x.org"), ("b", "b@x.org"), ("c", "dup@x.org"), ("d", "dup@x.org"),
                                          ("e", "e@x.org")]), UNIQUE)
    silver_old = clean_rows(staged, UNIQUE)
    assert sorted(r["id"] for r in silver_old.collect()) == ["a", "b", "e"]         # c and d clash: held
    held = (staged.where(F.col(STATUS) == "quarantined")
            .select(F.lit("people").alias("source"), key_json(["id"]).alias("key"), F.lit("unique:email").alias("rule")))
    # a new version of a frees its value; f takes b's value; g is new and alone
    new = checkpointed(validate_rows(_people(spark, [("a", "other@x.org"), ("f", "b@x.org"), ("g", "g@x.org")]), UNIQUE))
    keys = touched_keys("people", UNIQUE, new, silver_old, held)
    assert sorted(r["id"] for r in keys.collect()) == ["a", "b", "c", "d", "f", "g"]
    assert not _shuffled(keys)

