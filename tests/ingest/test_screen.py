"""The CSV header rules, without Spark: by name, whatever the order, case, spacing or BOM."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakeray.ingest.screen import match_header, other_separator, parse_header, same_file
from lakeray.spec.models import Source

pytestmark = pytest.mark.fast

DECLARED = ["id", "gender", "plan", "monthly_charges"]
CSV = Source.model_validate({"format": "csv", "path": "crm", "keys": ["id"], "columns": {c: "string" for c in DECLARED}})


@given(st.permutations(DECLARED), st.lists(st.sampled_from(["", " ", "\t"]), min_size=8, max_size=8), st.booleans())
def test_any_order_case_and_spacing_maps_each_position_to_its_column(order, pads, upper):
    header = [f"{pads[2 * i]}{c.upper() if upper else c}{pads[2 * i + 1]}" for i, c in enumerate(order)]
    assert match_header(header, DECLARED) == list(order)


def test_missing_unknown_and_duplicated_columns_are_named():
    assert match_header(["id", "gender", "plan"], DECLARED).startswith("missing column(s) monthly_charges")
    assert "unknown column(s) 'region'" in match_header([*DECLARED, "region"], DECLARED)
    assert "duplicated column(s) ID, id" in match_header([*DECLARED, "ID"], DECLARED)
    assert "unknown column(s) ''" in match_header([*DECLARED, ""], DECLARED)        # a trailing comma
    # an unnamed first column: the row index pandas' to_csv and R's write.csv write by default
    assert "row.names=FALSE" in match_header(["", *DECLARED], DECLARED)
    assert "row.names" not in match_header([*DECLARED, "region"], DECLARED)


@given(st.permutations([*DECLARED, "", "region", " "]))
def test_extra_columns_ignored_get_placeholders_the_read_drops(order):
    matched = match_header(order, DECLARED, ignore_unknown=True)
    assert [m for m in matched if m in DECLARED] == [c for c in order if c in DECLARED]
    assert [m for m in matched if m not in DECLARED] == [f"_unread_{i}" for i, c in enumerate(order) if c not in DECLARED]
    # what is still wrong is still named: a declared column missing, or one given twice
    assert match_header(["id", "x"], DECLARED, ignore_unknown=True).startswith("missing column(s) gender")
    assert "duplicated column(s) ID, id" in match_header([*DECLARED, "ID", ""], DECLARED, ignore_unknown=True)
    assert match_header(["_unread_0", "b"], ["_unread_0", "a", "b"], ignore_unknown=False).startswith("missing column(s) a")
    assert match_header(["x", "_unread_0"], ["_unread_0"], ignore_unknown=True) == ["__unread_0", "_unread_0"]


def test_header_parsing_follows_the_source_options():
    assert parse_header('\ufeff"id","gender",plan,monthly_charges\r\n', CSV) == DECLARED
    semi = CSV.model_copy(update={"options": {"sep": ";"}})
    assert parse_header("id;gender;plan;monthly_charges", semi) == DECLARED
    assert parse_header("a\x00b,c", CSV) == ["a\x00b", "c"]                     # not text: no crash, no match


def test_spark_spellings_of_one_file_are_the_same_file():
    assert same_file("file:/tmp/x/drop[1].csv", "file:///tmp/x/drop%5B1%5D.csv")
    assert not same_file("file:/tmp/x/a.csv", "file:/tmp/x/b.csv")


def test_a_header_that_splits_on_another_delimiter_names_it():
    assert other_separator("id;gender;plan;monthly_charges\r\n", CSV) == ";"          # Excel in most of Europe
    assert other_separator('"id"\t"gender"\tplan\tmonthly_charges', CSV) == "\t"
    assert other_separator("id|GENDER|plan|monthly_charges", CSV) == "|"
    assert other_separator("id,gender,plan,monthly_charges", CSV.model_copy(update={"options": {"sep": ";"}})) == ","
    assert other_separator("id;gender;plan", CSV) is None                              # a column missing either way
    assert other_separator("id,gender,plan", CSV) is None
