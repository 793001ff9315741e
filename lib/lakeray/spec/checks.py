"""Cross-field rules of a pipeline spec. Each returns (field path, message) problems."""

from __future__ import annotations

import datetime as dt
import re
from typing import Iterator

from lakeray.spec.models import BASELINES, METRICS, PipelineSpec

Problem = tuple[str, str]
NUMERIC = {"int", "bigint", "double"}
TIME_TYPES = {"date", "timestamp"}


def _unknown(where: str, column: str, known, owner: str) -> Problem:
    return where, f"unknown column '{column}'; {owner} has: {', '.join(sorted(known))}"


def joined_columns(spec: PipelineSpec) -> dict[str, str]:
    """Columns of the model-ready table (before the split column) and their types."""
    base = spec.sources.get(spec.dataset.base)
    cols = dict(base.columns) if base else {}
    for join in spec.dataset.joins:
        src = spec.sources.get(join.source)
        if src is None:
            continue
        if join.aggregate is not None:
            for name, agg in join.aggregate.items():
                if agg.fn in ("count", "count_distinct"):
                    cols[name] = "bigint"
                elif agg.fn in ("min", "max"):
                    cols[name] = src.columns.get(agg.column, "double")
                else:
                    cols[name] = "double"
        else:
            for name in join.select or [c for c in src.columns if c not in join.on]:
                if name not in join.on:
                    cols.setdefault(name, src.columns.get(name, "string"))
    return cols


def _source_problems(spec: PipelineSpec) -> Iterator[Problem]:
    for name, src in spec.sources.items():
        where = f"sources.{name}"
        cols = src.columns
        owner = f"source '{name}'"
        for i, key in enumerate(src.keys):
            if key not in cols:
                yield _unknown(f"{where}.keys[{i}]", key, cols, owner)
        if src.latest_by and src.latest_by not in cols:
            yield _unknown(f"{where}.latest_by", src.latest_by, cols, owner)
        if src.deletes is not None and src.deletes.column is not None:
            flag = src.deletes.column
            if flag not in cols:
                yield _unknown(f"{where}.deletes.column", flag, cols, owner)
            elif cols[flag] not in TIME_TYPES | {"boolean"}:
                yield f"{where}.deletes.column", (f"a delete marker is a boolean (true = deleted) or a date/timestamp "
                                                  f"(set = deleted); '{flag}' is {cols[flag]}")
            elif flag in src.keys:
                yield f"{where}.deletes.column", f"'{flag}' is a key of {owner}; a delete marker cannot be a key"
        for col in src.normalize:
            if col not in cols:
                yield _unknown(f"{where}.normalize.{col}", col, cols, owner)
            elif cols[col] != "string":
                yield f"{where}.normalize.{col}", f"normalize applies to string columns; '{col}' is {cols[col]}"
        for col in src.missing:
            if col not in cols:
                yield _unknown(f"{where}.missing.{col}", col, cols, owner)
        for i, exp in enumerate(src.expectations):
            ewhere = f"{where}.expectations[{i}]"
            if exp.column not in cols:
                yield _unknown(f"{ewhere}.column", exp.column, cols, owner)
            elif exp.rule == "range" and cols[exp.column] not in NUMERIC | TIME_TYPES:
                yield f"{ewhere}.rule", f"range needs a numeric or date column; '{exp.column}' is {cols[exp.column]}"
            elif exp.rule == "regex" and cols[exp.column] != "string":
                yield f"{ewhere}.rule", f"regex needs a string column; '{exp.column}' is {cols[exp.column]}"
            if exp.rule == "regex" and exp.pattern:
                try:
                    re.compile(exp.pattern)
                except re.error as err:
                    yield f"{ewhere}.pattern", f"not a valid regular expression: {err}"
        if src.partitioning and src.partitioning.column not in cols:
            yield _unknown(f"{where}.partitioning.column", src.partitioning.column, cols, owner)


def _dataset_problems(spec: PipelineSpec) -> Iterator[Problem]:
    known = ", ".join(sorted(spec.sources))
    if spec.dataset.base not in spec.sources:
        yield "dataset.base", f"unknown source '{spec.dataset.base}'; declared sources: {known}"
        return
    base = spec.sources[spec.dataset.base]
    base_cols = base.columns
    if spec.entity_key not in base_cols:
        yield _unknown("entity_key", spec.entity_key, base_cols, f"base source '{spec.dataset.base}'")
    elif base.keys != [spec.entity_key]:
        yield f"sources.{spec.dataset.base}.keys", (
            f"the base source must have one row per entity: keys {base.keys} should be ['{spec.entity_key}']")
    seen = dict(base_cols)
    for i, join in enumerate(spec.dataset.joins):
        where = f"dataset.joins[{i}]"
        src = spec.sources.get(join.source)
        if src is None:
            yield f"{where}.source", f"unknown source '{join.source}'; declared sources: {known}"
            continue
        for j, col in enumerate(join.on):
            if col not in src.columns:
                yield _unknown(f"{where}.on[{j}]", col, src.columns, f"source '{join.source}'")
            if col not in base_cols:
                yield _unknown(f"{where}.on[{j}]", col, base_cols, f"base source '{spec.dataset.base}'")
        new_cols = []
        if join.aggregate is not None:
            for name, agg in join.aggregate.items():
                if agg.column and agg.column not in src.columns:
                    yield _unknown(f"{where}.aggregate.{name}.column", agg.column, src.columns, f"source '{join.source}'")
                elif agg.fn in ("sum", "avg") and agg.column and src.columns[agg.column] not in NUMERIC | {"boolean"}:
                    yield f"{where}.aggregate.{name}.fn", f"{agg.fn} needs a numeric column; '{agg.column}' is {src.columns[agg.column]}"
                for col in agg.where:
                    if col not in src.columns:
                        yield _unknown(f"{where}.aggregate.{name}.where.{col}", col, src.columns, f"source '{join.source}'")
                new_cols.append(name)
            if join.as_of is not None:
                yield from _as_of_problems(f"{where}.as_of", join.as_of, src, join.source, base_cols, spec.dataset.base)
        else:
            if sorted(join.on) != sorted(src.keys):
                yield f"{where}.on", (
                    f"a join without 'aggregate' needs one row per key: 'on' {join.on} must be the keys "
                    f"of source '{join.source}' ({src.keys}); use 'aggregate' for one-to-many sources")
            for j, col in enumerate(join.select or []):
                if col not in src.columns:
                    yield _unknown(f"{where}.select[{j}]", col, src.columns, f"source '{join.source}'")
            new_cols = [c for c in (join.select or src.columns) if c not in join.on]
        for col in new_cols:
            if col in seen:
                yield where, (
                    f"column '{col}' of source '{join.source}' is already in the dataset; "
                    "list the columns to bring with 'select'"
                )
            seen[col] = True


def _as_of_problems(where: str, as_of, src, name: str, base_cols: dict, base: str) -> Iterator[Problem]:
    for field, column, cols, owner in (("event_time", as_of.event_time, src.columns, f"source '{name}'"),
                                       ("cutoff", as_of.cutoff, base_cols, f"base source '{base}'")):
        if column not in cols:
            yield _unknown(f"{where}.{field}", column, cols, owner)
        elif cols[column] not in TIME_TYPES:
            yield f"{where}.{field}", f"an as-of join needs a date or timestamp column; '{column}' of {owner} is {cols[column]}"


def _problem_definition(spec: PipelineSpec) -> Iterator[Problem]:
    cols = joined_columns(spec)
    owner = "the joined dataset"
    if spec.target not in cols:
        yield _unknown("target", spec.target, cols, owner)
    else:
        ttype = cols[spec.target]
        if spec.task == "regression" and ttype not in NUMERIC:
            yield "target", f"task 'regression' needs a numeric target; '{spec.target}' is {ttype}"
        if spec.task == "binary" and ttype in ("double", "date", "timestamp"):
            yield "target", f"task 'binary' needs a boolean, integer or string target; '{spec.target}' is {ttype}"
        if spec.task == "binary" and ttype == "string" and spec.positive_label is None:
            yield "positive_label", f"target '{spec.target}' is a string: name the class that counts as positive"
    for name in spec.features:
        if name not in cols:
            yield _unknown(f"features.{name}", name, cols, owner)
        elif name in (spec.target, spec.entity_key):
            yield f"features.{name}", f"'{name}' is the {'target' if name == spec.target else 'entity key'}, not a feature"
    for i, name in enumerate(spec.sensitive_attributes):
        if name not in cols:
            yield _unknown(f"sensitive_attributes[{i}]", name, cols, owner)
    for i, name in enumerate(spec.monitor.segments):
        if name not in spec.features:
            yield f"monitor.segments[{i}]", (f"'{name}' is not a feature: the inference log holds features only; "
                                            f"features: {', '.join(spec.features)}")
    metrics = METRICS[spec.task]
    allowed = ", ".join(metrics)
    if spec.metric.primary not in metrics:
        yield "metric.primary", f"metric '{spec.metric.primary}' does not fit task '{spec.task}'; use one of: {allowed}"
    for name in spec.metric.thresholds:
        if name not in metrics:
            yield f"metric.thresholds.{name}", f"metric '{name}' does not fit task '{spec.task}'; use one of: {allowed}"
    if spec.task != "binary" and spec.metric.decision_threshold != 0.5:
        yield "metric.decision_threshold", f"applies to binary tasks only, not '{spec.task}'"
    if spec.baseline.model not in BASELINES[spec.task]:
        yield "baseline.model", (
            f"baseline '{spec.baseline.model}' does not fit task '{spec.task}'; use one of: {', '.join(BASELINES[spec.task])}"
        )
    yield from _split_problems(spec, cols, owner)


def _split_value_fits(value, ctype: str) -> bool:
    if ctype == "string":
        return isinstance(value, str)
    if ctype in ("int", "bigint"):
        return isinstance(value, int) and not isinstance(value, bool)
    if ctype == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ctype == "boolean":
        return isinstance(value, bool)
    if ctype == "date":
        if isinstance(value, str):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return False
            return True
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    return False


def _split_problems(spec: PipelineSpec, cols: dict[str, str], owner: str) -> Iterator[Problem]:
    split = spec.split
    if not split.column:
        return
    if split.column not in cols:
        yield _unknown("split.column", split.column, cols, owner)
        return
    ctype = cols[split.column]
    if split.method == "time":
        integral = isinstance(split.validation_start, int)
        if ctype in TIME_TYPES and integral:
            yield "split.validation_start", (f"'{split.column}' is {ctype}: validation_start and test_start must be dates "
                                             f"(YYYY-MM-DD), not {split.validation_start!r}")
        elif ctype in ("int", "bigint") and not integral:
            yield "split.validation_start", (f"'{split.column}' is {ctype}: validation_start and test_start must be "
                                             f"integers (e.g. a year), not {split.validation_start!r}")
        elif ctype not in TIME_TYPES | {"int", "bigint"}:
            yield "split.column", f"a time split needs a date, timestamp or integer column; '{split.column}' is {ctype}"
    elif split.method == "column":
        if ctype == "timestamp":
            yield "split.column", f"a column split needs a string, integer, boolean or date column; '{split.column}' is {ctype}"
            return
        for part, values in (split.values or {}).items():
            for i, value in enumerate(values):
                if not _split_value_fits(value, ctype):
                    yield f"split.values.{part}[{i}]", f"{value!r} does not fit '{split.column}', which is {ctype}"


def cross_field_problems(spec: PipelineSpec) -> list[Problem]:
    return [*_source_problems(spec), *_dataset_problems(spec), *_problem_definition(spec)]
