"""Typed model of a pipeline spec. Field-level rules live here; cross-field rules in checks.py."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from lakeray.spec.names import column_names_problem, name_problem, relative_path_problem

ColumnType = Literal["string", "int", "bigint", "double", "boolean", "date", "timestamp"]
FeatureType = Literal["numeric", "categorical", "boolean"]
Task = Literal["binary", "multiclass", "regression"]

# metric -> higher is better, per task
METRICS: dict[str, dict[str, bool]] = {
    "binary": {
        "roc_auc": True, "pr_auc": True, "accuracy": True, "precision": True,
        "recall": True, "f1": True, "log_loss": False,
    },
    "multiclass": {"accuracy": True, "f1_macro": True, "f1_weighted": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True},
}
BASELINES: dict[str, tuple[str, ...]] = {
    "binary": ("majority", "logistic"),
    "multiclass": ("majority", "logistic"),
    "regression": ("mean", "linear"),
}


# texts that usually mean "missing" in an export (R, Excel, SAS, database dumps, pandas); in a text
# column only the unambiguous ones (a category may well be called "None" or "-")
NULL_LOOKING = frozenset({"na", "n/a", "#n/a", "null", "none", "nan", "nil", "-", ".", "?", "\\n", "missing", "<na>"})
NULL_LOOKING_TEXT = frozenset({"na", "n/a", "#n/a", "null", "nan", "<na>", "\\n"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connection(_Strict):
    """Where a JDBC silo lives. Only environment variable *names* appear in the spec."""

    url_env: str
    user_env: str
    password_env: str
    driver: str = "org.postgresql.Driver"


class JdbcPartitioning(_Strict):
    column: str
    lower: int
    upper: int
    num_partitions: int = Field(ge=1)


class Expectation(_Strict):
    rule: Literal["not_null", "range", "allowed_values", "unique", "regex"]
    column: str
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    pattern: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _arguments(self):
        if self.rule == "range" and self.min is None and self.max is None:
            raise ValueError("rule 'range' needs min, max or both")
        if self.rule == "range" and self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"rule 'range' has min {self.min} > max {self.max}")
        if self.rule == "allowed_values" and not self.values:
            raise ValueError("rule 'allowed_values' needs a non-empty 'values' list")
        if self.rule == "regex" and not self.pattern:
            raise ValueError("rule 'regex' needs 'pattern'")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.rule}:{self.column}"


class Normalize(_Strict):
    """Category clean-up after trimming: case folding, then a mapping of spellings."""

    case: Literal["lower", "upper", "keep"] = "lower"
    map: dict[str, str] = Field(default_factory=dict)


class MissingPolicy(_Strict):
    """keep: leave null (imputed later, fitted on train only); fill: a constant; quarantine."""

    strategy: Literal["keep", "fill", "quarantine"]
    value: Any = None

    @model_validator(mode="after")
    def _value(self):
        if self.strategy == "fill" and self.value is None:
            raise ValueError("strategy 'fill' needs a 'value'")
        return self


class Deletes(_Strict):
    """Deletions in the silo that must reach silver and gold (bronze keeps every version): a row whose
    `column` is true (boolean) or set (a date/timestamp such as deleted_at) marks its key deleted when it
    is the key's latest version; a later live version brings the key back. `snapshot` (jdbc sources):
    a key that was in the table and is no longer in the snapshot ingest reads gets a delete marker of
    its own in bronze (lakeray.ingest.jdbc); both may be on."""

    column: str | None = None
    snapshot: bool = False

    @model_validator(mode="after")
    def _some(self):
        if self.column is None and not self.snapshot:
            raise ValueError("deletes needs 'column' (a soft-delete flag) and/or 'snapshot: true' (a jdbc snapshot diff)")
        return self


class JdbcCursor(_Strict):
    """Incremental reads of a jdbc source: each run asks the database only for the rows whose `column`
    is at or after the greatest value already landed from the table, less `lookback` (seconds for a
    timestamp or date column, units for a numeric one), so a transaction that committed late with an
    older value is still read. Rows read again are skipped by the row-hash MERGE, and rows whose
    cursor is NULL are read on every run. The silo must move the column on every change it wants
    seen (an `updated_at`); a row removed from the table is not seen (use deletes.column)."""

    column: str
    lookback: float = Field(default=0, ge=0)


CURSOR_TYPES = ("int", "bigint", "double", "date", "timestamp")


class Source(_Strict):
    format: Literal["csv", "json", "parquet", "jdbc"]
    path: str | None = None
    table: str | None = None
    connection: Connection | None = None
    partitioning: JdbcPartitioning | None = None
    options: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, ColumnType] = Field(min_length=1)
    # text that means "missing" in this silo's values, besides the empty text: compared after trimming,
    # case-sensitive (R's write.csv writes NA, Excel #N/A, database dumps NULL or \N). Applied when
    # prepare types a value read as text (CSV, JSON) and to string columns of any format; bronze keeps
    # the text as landed.
    null_values: list[str] = Field(default_factory=list)
    # a CSV header column that is none of the declared ones (an extra column, the unnamed row index of
    # pandas' to_csv or R's write.csv, a trailing delimiter): `reject` sets the file aside naming it,
    # `ignore` reads the declared columns only. JSON keys and Parquet columns not declared are never read.
    extra_columns: Literal["reject", "ignore"] = "reject"
    # the silo's name for a declared column, where it is not one a table can hold: {"Body Mass (g)":
    # body_mass_g} reads the CSV header, JSON key, Parquet column or database column "Body Mass (g)"
    # (matched as a declared name is in that format: a file's trimmed, in any case; a table's exactly)
    # into the column body_mass_g. In a JSON source, a dotted name that no record has as a key is a path
    # into nested objects: {"address.city": city}
    rename: dict[str, str] = Field(default_factory=dict)
    # the decimal mark of `double` values read as text (CSV, JSON): "," for exports in a locale that
    # writes 3,14 (Excel in most of Europe, with `options.sep: ";"`); such a value holding a "." as well
    # (a thousands mark) is a type error, not a guess
    decimal_separator: Literal[".", ","] = "."
    keys: list[str] = Field(min_length=1)
    latest_by: str | None = None
    normalize: dict[str, Normalize] = Field(default_factory=dict)
    missing: dict[str, MissingPolicy] = Field(default_factory=dict)
    expectations: list[Expectation] = Field(default_factory=list)
    max_quarantine_rate: float | None = Field(default=None, ge=0, le=1)
    deletes: Deletes | None = None
    cursor: JdbcCursor | None = None

    @model_validator(mode="after")
    def _location(self):
        if self.format == "jdbc":
            if not self.table:
                raise ValueError("a jdbc source needs 'table'")
            if self.connection is None:
                raise ValueError("a jdbc source needs 'connection' (url_env, user_env, password_env)")
        elif not self.path:
            raise ValueError(f"a {self.format} source needs 'path' (a folder under the landing area)")
        if self.deletes is not None and self.deletes.snapshot and self.format != "jdbc":
            raise ValueError(f"deletes.snapshot needs a jdbc source (a {self.format} drop is not a snapshot of "
                             "the whole silo); mark deletions with deletes.column")
        if self.cursor is not None:
            self._check_cursor(self.cursor)
        if self.decimal_separator != "." and self.format not in ("csv", "json"):
            raise ValueError(f"decimal_separator applies to values read as text (csv, json); a {self.format} "
                             "source's numbers are typed in the file")
        if self.extra_columns != "reject" and self.format != "csv":
            raise ValueError(f"extra_columns applies to a csv source's header (a {self.format} source reads the "
                             "declared columns only, whatever else its files hold)")
        return self

    def _check_cursor(self, cursor: JdbcCursor) -> None:
        if self.format != "jdbc":
            raise ValueError(f"cursor needs a jdbc source (a {self.format} source reads each landed file once anyway)")
        kind = self.columns.get(cursor.column)
        if kind is None:
            raise ValueError(f"cursor.column '{cursor.column}' is not one of the declared columns")
        if kind not in CURSOR_TYPES:
            raise ValueError(f"cursor.column '{cursor.column}' is {kind}; a cursor must be one of {', '.join(CURSOR_TYPES)}")
        if self.deletes is not None and self.deletes.snapshot:
            raise ValueError("cursor and deletes.snapshot do not go together: a snapshot diff needs the whole table "
                             "on every run; mark deletions with deletes.column (a soft-delete that moves the cursor)")

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value):
        bad = column_names_problem(value)
        if bad:
            raise ValueError(bad)
        return value

    @model_validator(mode="after")
    def _renames(self):
        seen: dict[str, str] = {}
        for silo, column in self.rename.items():
            if column not in self.columns:
                raise ValueError(f"rename: {silo!r} -> {column!r}: {column!r} is not one of the declared columns")
            if list(self.rename.values()).count(column) > 1:
                raise ValueError(f"rename: two names in the silo are read into {column!r}")
            key = silo.strip().casefold()
            if key in seen:
                raise ValueError(f"rename: {seen[key]!r} and {silo!r} are one name (matched trimmed, in any case)")
            seen[key] = silo
        return self

    def in_silo(self, column: str) -> str:
        """The name a declared column has in the silo's files or table (`rename`), else its own."""
        return next((silo for silo, declared in self.rename.items() if declared == column), column)

    @field_validator("null_values", mode="before")
    @classmethod
    def _null_texts(cls, value):
        if not isinstance(value, list):
            return value
        for i, text in enumerate(value):
            if text is None:
                raise ValueError(f"null_values[{i}] is YAML's null, not a text: write it quoted ('null', 'NULL', '~')")
            if not isinstance(text, str):
                raise ValueError(f"null_values[{i}] is {text!r}, not a text: write it quoted as it appears in the "
                                 f"files ('{text}')")
            if text != text.strip() or not text:
                raise ValueError(f"null_values[{i}] {text!r}: values are compared after trimming, so it must be "
                                 "non-empty without surrounding spaces (the empty text is always missing)")
        return value

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value):
        problem = None if value is None else relative_path_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def is_file(self) -> bool:
        return self.format != "jdbc"


class Aggregate(_Strict):
    fn: Literal["count", "sum", "avg", "min", "max", "count_distinct"]
    column: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    fill: float | None = None

    @model_validator(mode="after")
    def _column(self):
        if self.fn != "count" and not self.column:
            raise ValueError(f"aggregate '{self.fn}' needs 'column'")
        return self


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)")


def duration_seconds(text: str) -> int:
    """Seconds of a duration written as a whole number and a unit: "30s", "90m", "6h", "7d", "2w"
    (or the unit's word: "6 hours")."""
    found = _DURATION.fullmatch(str(text).strip().lower())
    if not found or int(found[1]) == 0:
        raise ValueError(f"'{text}' is not a duration: write a whole number above 0 and a unit, "
                         "s, m, h, d or w (e.g. \"6h\", \"90m\", \"7d\")")
    return int(found[1]) * _UNITS[found[2][0]]


class AsOf(_Strict):
    """A point-in-time join: a joined row counts for a base row only when its `event_time` is before
    the base row's `cutoff` (or equal, with inclusive: true), and no older than the lookback
    (`lookback: 6h`, a duration; or `lookback_days: N`). Rows with no event time, and base rows with
    no cutoff, match nothing (nothing leaks)."""

    event_time: str
    cutoff: str
    inclusive: bool = False
    lookback_days: int | None = Field(default=None, gt=0)
    lookback: str | None = None

    @field_validator("lookback")
    @classmethod
    def _duration(cls, value):
        if value is not None:
            duration_seconds(value)
        return value

    @model_validator(mode="after")
    def _one_lookback(self):
        if self.lookback is not None and self.lookback_days is not None:
            raise ValueError("'lookback' and 'lookback_days' say the same thing: keep one")
        return self

    @property
    def lookback_micros(self) -> int | None:
        """The lookback in microseconds (None: every earlier row counts)."""
        if self.lookback is not None:
            return duration_seconds(self.lookback) * 1_000_000
        return self.lookback_days * 86_400_000_000 if self.lookback_days else None


class Join(_Strict):
    source: str
    on: list[str] = Field(min_length=1)
    how: Literal["left", "inner"] = "left"
    select: list[str] | None = None
    aggregate: dict[str, Aggregate] | None = None
    as_of: AsOf | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shape(self):
        if self.select is not None and self.aggregate is not None:
            raise ValueError("a join takes either 'select' (one row per key) or 'aggregate' (many rows), not both")
        if self.as_of is not None and self.aggregate is None:
            raise ValueError("'as_of' needs 'aggregate': silver keeps the latest row per key, so a one-row-per-key "
                             "join has no history to read as of a cutoff")
        return self


class Dataset(_Strict):
    base: str
    joins: list[Join] = Field(default_factory=list)


SplitPart = Literal["train", "validation", "test"]


class Split(_Strict):
    """How gold rows are assigned to train / validation / test.

    hash    a seeded hash of the entity key (or of `column`: all rows with one value go to one part)
    time    `column` (date, timestamp or integer, e.g. a year) against validation_start / test_start
    column  the dataset's own split: `values` lists the values of `column` that make each part;
            without a validation list, validation_fraction of the train rows (by a seeded hash of
            the entity key) become validation. Rows whose value is in no list (or null) are
            quarantined (`unlisted: quarantine`, within the gold quarantine limit) or refused.
    """

    method: Literal["hash", "time", "column"] = "hash"
    column: str | None = None
    seed: int = 42
    fractions: dict[SplitPart, float] = Field(
        default_factory=lambda: {"train": 0.7, "validation": 0.15, "test": 0.15}
    )
    validation_start: int | dt.date | None = None
    test_start: int | dt.date | None = None
    values: dict[SplitPart, list[bool | int | float | dt.date | str]] | None = None
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    unlisted: Literal["quarantine", "refuse"] = "quarantine"

    @model_validator(mode="after")
    def _consistent(self):
        if self.method != "column" and (self.values is not None or self.validation_fraction is not None):
            raise ValueError(f"values and validation_fraction belong to method 'column', not '{self.method}'")
        if self.method == "hash":
            if set(self.fractions) != {"train", "validation", "test"}:
                raise ValueError("fractions needs train, validation and test")
            if any(v < 0 for v in self.fractions.values()) or abs(sum(self.fractions.values()) - 1) > 1e-9:
                raise ValueError(f"fractions must be >= 0 and sum to 1, got {dict(self.fractions)}")
        elif self.method == "time":
            if self.column is None or self.validation_start is None or self.test_start is None:
                raise ValueError("a time split needs column, validation_start and test_start")
            kinds = {isinstance(v, int) for v in (self.validation_start, self.test_start)}
            if len(kinds) > 1:
                raise ValueError(f"validation_start ({self.validation_start!r}) and test_start ({self.test_start!r}) "
                                 "must both be dates or both be integers")
            if self.validation_start >= self.test_start:
                raise ValueError("validation_start must be before test_start")
        else:
            self._column_split()
        return self

    def _column_split(self) -> None:
        values = self.values or {}
        if self.column is None or not values.get("train") or not values.get("test"):
            raise ValueError("a column split needs column and values with non-empty train and test lists, "
                             "e.g. values: {train: [train], validation: [valid], test: [test]}")
        if values.get("validation") and self.validation_fraction is not None:
            raise ValueError("give either values.validation or validation_fraction (validation carved from train), not both")
        if not values.get("validation") and self.validation_fraction is None:
            raise ValueError("a column split needs values.validation, or validation_fraction to carve validation "
                             "rows from the train rows")
        seen: dict = {}
        for part, listed in values.items():
            for value in listed:
                key = (type(value).__name__, value)
                if key in seen and seen[key] != part:
                    raise ValueError(f"value {value!r} is listed for both {seen[key]} and {part}")
                seen[key] = part

    def listed_values(self) -> list:
        return [v for listed in (self.values or {}).values() for v in listed]


class Metric(_Strict):
    primary: str
    thresholds: dict[str, float] = Field(default_factory=dict)
    # binary tasks: the probability above which a row is predicted positive; "max_f1" picks the
    # one that maximises F1 on the validation split at training time (stored with the model)
    decision_threshold: float | Literal["max_f1"] = 0.5

    @field_validator("decision_threshold")
    @classmethod
    def _threshold_range(cls, value):
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"must be between 0 and 1 (exclusive) or 'max_f1', got {value}")
        return value


class Baseline(_Strict):
    model: str
    margin: float = Field(default=0.0, ge=0)
    champion_margin: float = Field(default=0.0, ge=0)


def _source_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


SourceName = Annotated[str, AfterValidator(_source_name)]   # a folder: bronze/<name>, silver/<name>, ...


class Monitor(_Strict):
    """Drift by segment: each value of these feature columns (and of the sensitive attributes that
    are features) is monitored on its own, against the training rows of that value."""
    segments: list[str] = Field(default_factory=list)
    max_segment_values: int = Field(default=20, ge=1, le=1000)   # the most frequent at training; the rest as __other__


class PipelineSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    task: Task
    entity_key: str
    target: str
    positive_label: Any = None   # binary tasks with a string target: the class that counts as 1
    sources: dict[SourceName, Source] = Field(min_length=1)
    dataset: Dataset
    features: dict[str, FeatureType] = Field(min_length=1)
    sensitive_attributes: list[str] = Field(default_factory=list)
    metric: Metric
    baseline: Baseline
    split: Split = Field(default_factory=Split)
    monitor: Monitor = Field(default_factory=Monitor)
    _file: str | None = PrivateAttr(default=None)   # the file load_spec read it from, for hints in messages

    @property
    def file(self) -> str:
        """The spec's file as the command was given it (for the commands a message suggests)."""
        return self._file or f"pipelines/{self.name}.yaml"

    @property
    def segment_columns(self) -> list[str]:
        """The columns drift is also measured within: the sensitive attributes that are features
        (the inference log holds features only), then monitor.segments, each once."""
        return list(dict.fromkeys([a for a in self.sensitive_attributes if a in self.features] + self.monitor.segments))

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.task][self.metric.primary]

    def source(self, name: str) -> Source:
        return self.sources[name]

    def selected_sources(self, only: list[str] | None, option: str = "--sources") -> list[str]:
        """The sources a command names with `option` (all when none), each once; an unknown name is a
        SpecError naming the option and the declared sources."""
        from lakeray.errors import SpecError

        if not only:
            return list(self.sources)
        unknown = [s for s in only if s not in self.sources]
        if unknown:
            raise SpecError(option, [f"unknown source(s) {', '.join(unknown)}; the spec declares {', '.join(self.sources)}"])
        return list(dict.fromkeys(only))
