"""Self-contained HTML evaluation report: metric comparison, gate checks, lineage, embedded plots and extra tables."""

from __future__ import annotations

import base64
import html
import json
import logging
import numbers
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from lakeray.errors import LakerayError
from lakeray.evaluate import plots

log = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#11772b;font-weight:bold}.fail{color:#b00020;font-weight:bold}
figure{display:inline-block;margin:.5rem;vertical-align:top}figure img{max-width:100%;border:1px solid #eee}
figcaption{text-align:center;font-size:.85rem;color:#555}pre{margin:0;white-space:pre-wrap}
"""


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, bool, numbers.Number, np.generic))


def _text(value) -> str:
    """Display text (unescaped) for a cell: floats to 4 decimals, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, numbers.Integral):
        return str(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def _cell(value, tag: str = "td") -> str:
    numeric = isinstance(value, (numbers.Number, np.number)) and not isinstance(value, bool)
    css = ' class="num"' if numeric and tag == "td" else ""
    body = html.escape(_text(value))
    if not _is_scalar(value):
        body = f"<pre>{body}</pre>"
    return f"<{tag}{css}>{body}</{tag}>"


def _table(headers: Iterable, rows: Iterable[Iterable]) -> str:
    head = "".join(_cell(h, "th") for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_values(mapping: Mapping) -> str:
    return _table(["key", "value"], [(k, v) for k, v in mapping.items()])


def _metrics_table(metrics: Mapping[str, Mapping]) -> str:
    """One row per scalar metric (first-seen order), one column per model; non-scalar values are skipped."""
    names: list[str] = []
    for values in metrics.values():
        names += [k for k, v in values.items() if _is_scalar(v) and k not in names]
    return _table(["metric", *metrics], [(name, *(m.get(name) for m in metrics.values())) for name in names])


def _gate_table(gate: list[dict]) -> str:
    rows = []
    for check in gate:
        verdict = '<span class="pass">PASS</span>' if check.get("passed") else '<span class="fail">FAIL</span>'
        rows.append(f"<tr>{_cell(check.get('check', ''))}<td>{verdict}</td>{_cell(check.get('detail', ''))}</tr>")
    return f"<table><thead><tr><th>check</th><th>result</th><th>detail</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _rows_table(rows: list[dict]) -> str:
    headers: list[str] = []
    for row in rows:
        headers += [k for k in row if k not in headers]
    return _table(headers, [[row.get(h) for h in headers] for row in rows])


def _image(name: str, image: bytes) -> str:
    """A PNG, or an SVG (lakeray.evaluate.svg), as a data URI."""
    data = base64.b64encode(image).decode("ascii")
    kind = "svg+xml" if image.lstrip().startswith(b"<svg") else "png"
    label = html.escape(name)
    return f'<figure><img src="data:image/{kind};base64,{data}" alt="{label}"><figcaption>{label}</figcaption></figure>'


def render_report(*, title: str, summary: dict, metrics: dict[str, dict], gate: list[dict], lineage: dict,
                  images: dict[str, bytes], tables: dict[str, list[dict]] | None = None) -> str:
    """A self-contained HTML page (inline CSS, base64 PNG or SVG data URIs, all text escaped)."""
    passed = sum(bool(c.get("passed")) for c in gate)
    verdict = "PASS" if passed == len(gate) else "FAIL"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p>Gate: <span class="{verdict.lower()}">{verdict}</span> ({passed} of {len(gate)} checks passed)</p>',
        "<h2>Summary</h2>", _key_values(summary or {}),
        "<h2>Metrics</h2>", _metrics_table(metrics or {}),
        "<h2>Gate</h2>", _gate_table(gate or []),
    ]
    if images:
        parts += ["<h2>Plots</h2>", *(_image(name, png) for name, png in images.items())]
    for name, rows in (tables or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", _rows_table(rows) if rows else "<p>(empty)</p>"]
    parts += ["<h2>Lineage</h2>", _key_values(lineage or {}), "</body></html>"]
    return "\n".join(parts)


def fairness_tables(fairness: Mapping[str, Mapping]) -> dict[str, list[dict]]:
    """Report tables for `{attribute: fairness_audit(...) or group_audit(...)}`: one summary row per
    attribute (the differences are over groups of at least min_group_size rows only), then every
    group per attribute, the small ones marked as left out of the differences."""
    if not fairness:
        return {}
    summary, tables = [], {}
    for attribute, audit in fairness.items():
        groups, small = dict(audit.get("groups", {})), dict(audit.get("small_groups", {}))
        minimum = audit.get("min_group_size")
        row = {"attribute": attribute, "min group size": minimum, "groups compared": len(groups),
               "small groups (rows)": ", ".join(f"{g} ({v.get('count')})" for g, v in small.items()) or "none"}
        for key, value in audit.items():
            if key.endswith("_difference") or key.endswith("_gap"):
                row[key] = value if value is not None else "n/a: fewer than 2 groups of enough rows"
        summary.append(row)
        tables[f"fairness by group: {attribute}"] = [
            {"group": g, **v, "in differences": "yes" if g in groups else f"no: {v.get('count')} rows < {minimum}"}
            for g, v in [*groups.items(), *small.items()]]
    return {"fairness": summary, **tables}


def write_report(html_text: str, path: str | Path) -> Path:
    """Write the page as UTF-8, creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_text, encoding="utf-8")
    log.info("wrote evaluation report %s (%d bytes)", path, len(html_text))
    return path


def _confusion_rows(confusion) -> list[list[int]]:
    """A list-of-lists matrix, also from binary_metrics' {"tn", "fp", "fn", "tp"} dict."""
    if isinstance(confusion, Mapping):
        return [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]
    return np.asarray(confusion, dtype=int).tolist()


def _empty(value) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def evaluation_images(task: str, y_true, scores, *, calibration: dict | None = None, fairness: dict | None = None,
                      importance: dict[str, float] | None = None, confusion=None, labels: list | None = None,
                      others: dict | None = None) -> dict[str, bytes]:
    """The plots that fit `task` ("binary", "multiclass" or "regression") as {name: PNG bytes}.
    Plots whose inputs are None/empty are skipped; a plot that fails is logged and skipped."""
    if task not in ("binary", "multiclass", "regression"):
        raise LakerayError(f"unknown task {task!r}: expected binary, multiclass or regression")
    has_scores = not _empty(y_true) and not _empty(scores)
    plan: dict[str, Callable[[], bytes] | None] = {}
    if task == "binary":
        plan["roc"] = (lambda: plots.roc_png(y_true, scores, others)) if has_scores else None
        plan["pr"] = (lambda: plots.pr_png(y_true, scores, others)) if has_scores else None
    if task in ("binary", "multiclass") and not _empty(confusion):
        matrix = _confusion_rows(confusion)
        names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(len(matrix))]
        plan["confusion"] = lambda: plots.confusion_png(matrix, names)
    if task == "binary" and calibration and calibration.get("bins"):
        plan["calibration"] = lambda: plots.calibration_png(calibration)
    if task == "regression":
        plan["regression"] = (lambda: plots.regression_png(y_true, scores)) if has_scores else None
    if importance:
        plan["importance"] = lambda: plots.importance_png(importance)
    if task != "regression" and fairness:
        plan["fairness"] = lambda: plots.group_bars_png(fairness)
    images = {}
    for name, draw in plan.items():
        if draw is None:
            continue
        try:
            images[name] = draw()
        except Exception:  # one bad plot must not sink the whole report
            log.warning("skipped the %s plot for the %s report", name, task, exc_info=True)
    return images
