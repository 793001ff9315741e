"""The pipeline spec: valid specs load; every kind of mistake is named with file and field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from lakeray.errors import SpecError
from lakeray.spec import load_spec
from lakeray.spec.loader import parse_spec

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]



def raw_spec():
    from lakeray.yamlio import load_yaml

    return load_yaml((ROOT / "pipelines" / "churn.yaml").read_text())


def problems_of(data, path="pipelines/bad.yaml"):
    with pytest.raises(SpecError) as info:
        parse_spec(data, path)
    assert path in str(info.value)
    return info.value.problems


@pytest.mark.parametrize("name", ["churn", "telco"])
def test_bundled_specs_are_valid(name):
    spec = load_spec(ROOT / "pipelines" / f"{name}.yaml")
    assert spec.name == name
    assert spec.task == "binary"
    assert spec.entity_key in spec.sources[spec.dataset.base].columns


def test_join_key_named_on_is_a_string_not_a_boolean():
    spec = load_spec(ROOT / "pipelines" / "churn.yaml")
    assert spec.dataset.joins[0].on == ["customer_id"]


def test_wrong_metric_for_task():
    data = raw_spec()
    data["metric"]["primary"] = "rmse"
    data["metric"]["thresholds"] = {"r2": 0.5}
    problems = problems_of(data)
    assert any(p.startswith("metric.primary: metric 'rmse' does not fit task 'binary'") for p in problems)
    assert any(p.startswith("metric.thresholds.r2:") for p in problems)


def test_decision_threshold_is_a_probability_or_max_f1_and_binary_only():
    data = raw_spec()
    data["metric"]["decision_threshold"] = 1.5
    assert any(p.startswith("metric.decision_threshold:") and "between 0 and 1" in p for p in problems_of(data))
    data["metric"]["decision_threshold"] = "best"
    assert any(p.startswith("metric.decision_threshold:") for p in problems_of(data))
    data = raw_spec()
    data["task"], data["metric"] = "regression", {"primary": "rmse", "decision_threshold": 0.3}
    assert "metric.decision_threshold: applies to binary tasks only, not 'regression'" in problems_of(data)


def test_unknown_columns_are_named_with_their_field():
    data = raw_spec()
    data["sources"]["customers"]["expectations"][0]["column"] = "gendr"
    data["features"]["tenure_mnths"] = "numeric"
    data["sensitive_attributes"] = ["gender", "age"]
    problems = problems_of(data)
    assert any(p.startswith("sources.customers.expectations[0].column: unknown column 'gendr'") for p in problems)
    assert any(p.startswith("features.tenure_mnths: unknown column 'tenure_mnths'") for p in problems)
    assert any(p.startswith("sensitive_attributes[1]: unknown column 'age'") for p in problems)


def test_missing_source_in_join_and_base():
    data = raw_spec()
    data["dataset"]["joins"][1]["source"] = "tikets"
    problems = problems_of(data)
    assert any(p.startswith("dataset.joins[1].source: unknown source 'tikets'") for p in problems)
    data = raw_spec()
    data["dataset"]["base"] = "crm"
    assert any(p.startswith("dataset.base: unknown source 'crm'") for p in problems_of(data))


def test_jdbc_source_needs_table_and_file_source_needs_path():
    data = raw_spec()
    del data["sources"]["subscriptions"]["table"]
    del data["sources"]["tickets"]["path"]
    problems = problems_of(data)
    assert any(p.startswith("sources.subscriptions: a jdbc source needs 'table'") for p in problems)
    assert any(p.startswith("sources.tickets: a json source needs 'path'") for p in problems)


def test_field_level_errors_are_all_reported_at_once():
    data = raw_spec()
    data["task"] = "clustering"
    data["sources"]["usage"]["format"] = "xlsx"
    data["sources"]["usage"]["expectations"][1]["rule"] = "positive"
    data["split"]["fractions"] = {"train": 0.9, "validation": 0.2, "test": 0.1}
    data["owner"] = "someone"
    problems = problems_of(data)
    assert len(problems) >= 5
    fields = [p.split(":")[0] for p in problems]
    for field in ["task", "sources.usage.format", "sources.usage.expectations[1].rule", "split", "owner"]:
        assert field in fields, (field, problems)


def test_rule_arguments_and_types_are_checked():
    data = raw_spec()
    data["sources"]["customers"]["expectations"][1] = {"rule": "range", "column": "senior_citizen"}
    assert problems_of(data) == ["sources.customers.expectations[1]: rule 'range' needs min, max or both"]
    data = raw_spec()
    data["sources"]["customers"]["expectations"].append({"rule": "range", "column": "email", "min": 0})
    data["sources"]["customers"]["expectations"].append({"rule": "regex", "column": "email", "pattern": "(["})
    problems = problems_of(data)
    assert any("range needs a numeric or date column; 'email' is string" in p for p in problems)
    assert any(p.startswith("sources.customers.expectations[6].pattern: not a valid regular expression") for p in problems)


def test_string_target_needs_positive_label():
    from lakeray.yamlio import load_yaml

    data = load_yaml((ROOT / "pipelines" / "telco.yaml").read_text())
    del data["positive_label"]
    assert any(p.startswith("positive_label:") for p in problems_of(data))


def test_column_collisions_in_joins_are_reported():
    data = raw_spec()
    del data["dataset"]["joins"][0]["select"]   # would bring subscriptions.updated_at next to customers.updated_at
    assert any("column 'updated_at' of source 'subscriptions' is already in the dataset" in p for p in problems_of(data))


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="(?s)missing.yaml.*cannot read the file"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="(?s)broken.yaml.*not valid YAML"):
        load_spec(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SpecError, match="(?s)empty.yaml.*expected a mapping"):
        load_spec(empty)


def test_spec_hash_changes_with_content():
    from lakeray.spec import spec_hash

    a = parse_spec(raw_spec())
    data = raw_spec()
    data["metric"]["thresholds"]["roc_auc"] = 0.71
    b = parse_spec(data)
    assert spec_hash(a) == spec_hash(parse_spec(copy.deepcopy(raw_spec())))
    assert spec_hash(a) != spec_hash(b)


def test_joins_must_not_multiply_rows():
    data = raw_spec()
    data["dataset"]["joins"][1] = {"source": "tickets", "on": "customer_id", "select": ["category"]}
    assert any(p.startswith("dataset.joins[1].on: a join without 'aggregate' needs one row per key")
               for p in problems_of(data))
    data = raw_spec()
    data["sources"]["customers"]["keys"] = ["email"]
    assert any(p.startswith("sources.customers.keys: the base source must have one row per entity")
               for p in problems_of(data))


def _usage_join(data):
    return next(j for j in data["dataset"]["joins"] if j["source"] == "usage")


def test_as_of_join_loads_and_names_its_columns_and_types():
    data = raw_spec()
    _usage_join(data)["as_of"] = {"event_time": "event_date", "cutoff": "updated_at", "lookback_days": 90}
    spec = parse_spec(copy.deepcopy(data))
    as_of = spec.dataset.joins[2].as_of
    assert (as_of.event_time, as_of.cutoff, as_of.inclusive, as_of.lookback_days) == ("event_date", "updated_at", False, 90)

    _usage_join(data)["as_of"] = {"event_time": "minutes", "cutoff": "last_seen"}
    problems = problems_of(data)
    assert any(p.startswith("dataset.joins[2].as_of.event_time:") and "'minutes' of source 'usage' is double" in p
               for p in problems)
    assert any(p.startswith("dataset.joins[2].as_of.cutoff: unknown column 'last_seen'; base source 'customers' has:")
               for p in problems)
    _usage_join(data)["as_of"] = {"event_time": "event_date", "cutoff": "updated_at", "lookback_days": 0}
    assert any(p.startswith("dataset.joins[2].as_of.lookback_days") for p in problems_of(data))


@pytest.mark.parametrize(("text", "micros"), [("6h", 6 * 3_600_000_000), ("90 min", 5_400_000_000), ("2w", 14 * 86_400_000_000),
                                              (" 30 Seconds ", 30_000_000), ("1d", 86_400_000_000)])
def test_as_of_lookback_is_a_duration(text, micros):
    data = raw_spec()
    _usage_join(data)["as_of"] = {"event_time": "event_date", "cutoff": "updated_at", "lookback": text}
    assert parse_spec(data).dataset.joins[2].as_of.lookback_micros == micros


@pytest.mark.parametrize(("as_of", "said"), [
    ({"lookback": "6"}, "'6' is not a duration: write a whole number above 0 and a unit"),
    ({"lookback": "0h"}, "'0h' is not a duration"),
    ({"lookback": "1.5h"}, "'1.5h' is not a duration"),
    ({"lookback": "6 months"}, "'6 months' is not a duration"),     # not a fixed length
    ({"lookback": "6h", "lookback_days": 1}, "'lookback' and 'lookback_days' say the same thing"),
])
def test_as_of_lookback_refused_names_the_setting(as_of, said):
    data = raw_spec()
    _usage_join(data)["as_of"] = {"event_time": "event_date", "cutoff": "updated_at", **as_of}
    problems = problems_of(data)
    assert any(p.startswith("dataset.joins[2].as_of") and said in p for p in problems), problems


def test_as_of_needs_an_aggregate_join():
    data = raw_spec()
    data["dataset"]["joins"][0]["as_of"] = {"event_time": "updated_at", "cutoff": "updated_at"}
    problems = problems_of(data)
    assert any(p.startswith("dataset.joins[0]") and "'as_of' needs 'aggregate'" in p for p in problems)


def test_deletes_marker_column_must_be_declared_and_a_flag_or_time():
    data = raw_spec()
    data["sources"]["subscriptions"]["deletes"] = {"column": "is_deleted"}
    assert any(p.startswith("sources.subscriptions.deletes.column: unknown column 'is_deleted'") for p in problems_of(data))
    data["sources"]["subscriptions"]["deletes"] = {"column": "contract"}
    assert any(p.startswith("sources.subscriptions.deletes.column:") and "'contract' is string" in p for p in problems_of(data))
    data["sources"]["subscriptions"]["deletes"] = {"column": "updated_at"}
    assert parse_spec(copy.deepcopy(data)).sources["subscriptions"].deletes.column == "updated_at"


def test_a_snapshot_diff_of_deletes_is_for_jdbc_sources_only():
    data = raw_spec()
    assert data["sources"]["subscriptions"]["format"] == "jdbc" and data["sources"]["tickets"]["format"] == "json"
    data["sources"]["subscriptions"]["deletes"] = {"snapshot": True}
    data["sources"]["tickets"]["deletes"] = {"snapshot": True}
    problems = problems_of(data)
    assert [p for p in problems if "deletes" in p] == [
        p for p in problems if p.startswith("sources.tickets: ") and "deletes.snapshot needs a jdbc source" in p]
    data["sources"]["tickets"]["deletes"] = {}
    assert any(p.startswith("sources.tickets.deletes: ") and "deletes needs 'column'" in p for p in problems_of(data))
    del data["sources"]["tickets"]["deletes"]
    assert parse_spec(copy.deepcopy(data)).sources["subscriptions"].deletes.snapshot is True


def test_monitor_segments_must_be_features(tmp_path):
    from tests.support import ROOT

    text = (ROOT / "pipelines" / "churn.yaml").read_text() + "\nmonitor: {segments: [region, customer_id]}\n"
    path = tmp_path / "churn.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=r"monitor\.segments\[1\].*'customer_id' is not a feature"):
        load_spec(path)
    path.write_text((ROOT / "pipelines" / "churn.yaml").read_text() + "\nmonitor: {segments: [region, gender]}\n")
    assert load_spec(path).segment_columns == ["gender", "senior_citizen", "region"]
