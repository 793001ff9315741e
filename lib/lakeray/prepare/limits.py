"""The quarantine limits a prepare run is judged against before it writes, and the failure line of a
source over its limit: its counts, the rules most broken, the values most often rejected, and the
setting that would read them when the values say why (a missing-value marker, a date layout, a
decimal comma)."""

from __future__ import annotations

import re

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeray.config import Settings
from lakeray.lakehouse import Lakehouse
from lakeray.prepare.steps import Accounting
from lakeray.prepare.validate import datetime_pattern
from lakeray.spec.models import NULL_LOOKING, PipelineSpec

DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")


def offending_values(rows: DataFrame, rules: list[str], per_rule: int = 2) -> dict[str, list[tuple[str, int]]]:
    """The most frequent values the quarantine rows `rows` were rejected for, per rule in `rules` (each
    row's first broken rule, as the accounting counts them): one small job on the rejected rows, run
    only for the failure line of a source over its limit."""
    counted = (rows.where(F.col("rule").isin(rules)).groupBy("rule", "value").count()
               .orderBy(F.col("count").desc(), F.col("value")).limit(50 * per_rule).collect())
    out: dict[str, list[tuple[str, int]]] = {}
    for row in counted:
        values = out.setdefault(row["rule"], [])
        if len(values) < per_rule:
            values.append((row["value"], row["count"]))
    return out


def looks_missing(value: str | None) -> bool:
    return value is not None and value.strip().lower() in NULL_LOOKING


def check_limits(spec: PipelineSpec, settings: Settings, accounting: dict[str, Accounting], lake: Lakehouse,
                 rejected: dict[str, DataFrame] | None = None) -> list[str]:
    """A failure line per source over its quarantine limit. `rejected`: each source's quarantine rows,
    from which a failing source's line names the values most often rejected (and, when a type rule's
    top value is a missing-value marker such as NA, the setting that declares it)."""
    default = float(settings.get("prepare", {}).get("max_quarantine_rate", 0.1))
    failures = []
    for name, acct in accounting.items():
        limit = spec.sources[name].max_quarantine_rate if name in spec.sources else None
        setting = f"sources.{name}.max_quarantine_rate" if limit is not None else "prepare.max_quarantine_rate in conf/"
        limit = default if limit is None else limit
        if acct.quarantine_rate > limit:
            rules = acct.quarantine_by_rule if acct.new_rows is None else acct.new_by_rule
            top = sorted(rules.items(), key=lambda kv: -kv[1])[:5]
            values = offending_values(rejected[name], [r for r, _ in top]) if rejected and name in rejected else {}
            counts = (f"{acct.quarantined} of {acct.rows_in} rows quarantined" if acct.new_rows is None else
                      f"{acct.new_quarantined} of the {acct.new_rows} rows new in this run quarantined")
            failures.append(
                f"source '{name}': {counts} "
                f"({acct.quarantine_rate:.1%}) > limit {limit:.1%} ({setting}); "
                f"top rules: {', '.join(_rule_line(r, n, values.get(r, [])) for r, n in top)}; "
                f"rows are in {lake.quarantine}{_hints(spec, name, values)}"
            )
    return failures


def _rule_line(rule: str, count: int, values: list[tuple[str, int]]) -> str:
    if not values:
        return f"{rule}={count}"
    shown = ", ".join(f"{_short(v)} x{n}" for v, n in values)
    return f"{rule}={count} (most often {shown})"


def _short(value: str | None) -> str:
    return "null" if value is None else repr(value if len(value) <= 40 else value[:37] + "...")


def _hints(spec: PipelineSpec, name: str, values: dict[str, list[tuple[str, int]]]) -> str:
    """What to set when a type rule's most frequent value says why: a missing-value marker (NA), a date
    or timestamp in a layout Spark's cast does not read (03/15/2024), or a decimal comma (3,14)."""
    source = spec.sources.get(name)
    if source is None:
        return ""
    hints = []
    tops = {rule.split(":", 1)[1]: top[0][0] for rule, top in values.items() if rule.startswith("type:") and top}
    markers = sorted({v for v in tops.values() if looks_missing(v)})
    if markers:
        hints.append(f"{', '.join(map(repr, markers))} looks like a missing-value marker: if it means missing, "
                     f"list it in sources.{name}.null_values")
    dated = sorted(c for c, v in tops.items() if source.columns.get(c) in ("date", "timestamp") and not looks_missing(v))
    for column in dated:
        kind = source.columns[column]
        now = datetime_pattern(source, kind)
        hints.append(f"{column} {tops[column]!r} is not a {kind} " + (f"in options.{kind}Format {now!r}" if now else
                     "Spark reads as is") + f": give its layout in sources.{name}.options.{kind}Format "
                     "(a Spark datetime pattern, e.g. MM/dd/yyyy)")
    commas = sorted(c for c, v in tops.items() if source.columns.get(c) == "double" and v is not None
                    and DECIMAL_COMMA.match(v.strip()) and source.decimal_separator == ".")
    if commas:
        hints.append(f"{', '.join(f'{c} {tops[c]!r}' for c in commas)} has a decimal comma: if the silo writes "
                     f"them so, set sources.{name}.decimal_separator: ','")
    return "".join(f". {h}" for h in hints)
