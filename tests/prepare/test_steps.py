"""The full run's two-pass accounting (the rejected rows counted first, the other statuses observed by
the silver write) against the one-pass accounting of every staged row, on random inline bronze."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from lakeray.prepare.dedupe import STATUS
from lakeray.prepare.steps import (
    Accounting,
    account,
    account_rejected,
    clean_rows,
    complete_accounting,
    keeps_every_row,
    observe_statuses,
    rejected_by_validation,
    stage_source,
)
from lakeray.spec.models import Source

SOURCE = Source.model_validate({
    "format": "csv", "path": "x", "keys": ["id"], "latest_by": "updated_at",
    "columns": {"id": "string", "age": "int", "plan": "string", "gone": "boolean", "updated_at": "timestamp"},
    "expectations": [{"rule": "range", "column": "age", "min": 0, "max": 120},
                     {"rule": "allowed_values", "column": "plan", "values": ["basic", "pro"]}],
    "deletes": {"column": "gone"},
})
SCHEMA = ("id string, age string, plan string, gone string, updated_at string, _corrupt_record string, "
          "_source string, _file string, _ingested_at timestamp, _batch_id string")
TS = dt.datetime(2025, 1, 1)

rows = st.lists(st.tuples(
    st.sampled_from(["a", "b", "c", " a ", "", None]),                       # keys repeat; blank and null keys
    st.sampled_from(["30", "-1", "x", None, " 7 ", "1e400"]),                 # in range, out, not a number
    st.sampled_from(["basic", "pro", "gold", None, "ｐｒｏ"]),                  # allowed, not, null, full-width
    st.sampled_from(["false", "true", None, "maybe"]),                        # live, deleted, not a boolean
    st.sampled_from(["2025-01-01 00:00:00", "2025-02-01 00:00:00", None, "soon"]),
    st.sampled_from([None, "{broken"]),                                       # a malformed line
), max_size=14)


def _bronze(spark, data):
    return spark.createDataFrame(
        [(*r, "src", f"file:/landing/f{i % 3}.csv", TS, "b1") for i, r in enumerate(data)], SCHEMA)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows)
def test_two_pass_accounting_matches_the_staged_rows(spark, data):
    bronze = _bronze(spark, data)
    staged = stage_source(bronze, SOURCE)
    one_pass, _ = account("t", len(data), staged)

    rejected = rejected_by_validation(bronze, SOURCE)
    acct = account_rejected("t", len(data), rejected)
    frame, observation = observe_statuses(stage_source(bronze, SOURCE), "t")
    silver = clean_rows(frame, SOURCE).collect()
    complete_accounting(acct, observation.get)

    assert acct == one_pass and acct.reconciled
    assert len(silver) == acct.clean
    raw = F.to_json("_raw").alias("raw")
    assert sorted(r["raw"] for r in rejected.select(raw).collect()) == sorted(
        r["raw"] for r in staged.where(F.col(STATUS) == "quarantined").select(raw).collect())


def test_a_unique_rule_keeps_every_staged_row():
    unique = Source.model_validate({**SOURCE.model_dump(exclude_none=True),
                                    "expectations": [{"rule": "unique", "column": "plan"}]})
    assert keeps_every_row(unique) and not keeps_every_row(SOURCE)


def test_a_write_that_saw_other_rejected_rows_does_not_reconcile():
    acct = Accounting("usage", 10, 0, 3, 0, {"range:minutes": 3})
    with pytest.raises(RuntimeError, match="usage: 3 rows rejected before the silver write, 2 seen by it"):
        complete_accounting(acct, {"clean": 6, "quarantined": 2, "duplicate": 2, "deleted": 0})
    with pytest.raises(RuntimeError, match=r"usage: in 10 = clean 6 \+ quarantined 3 \+ duplicates 2 \[MISMATCH\]"):
        complete_accounting(Accounting("usage", 10, 0, 3, 0, {}), {"clean": 6, "quarantined": 3, "duplicate": 2, "deleted": 0})
