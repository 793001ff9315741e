"""The inference log: every prediction served, one row each, in a Delta table partitioned by date.

    request_id, ts (UTC), date, pipeline, model_version, train_run_id, variant (champion |
    canary | shadow), <each feature, typed from the spec>, prediction, latency_ms, label (null;
    rows written with a label keep it)

Labels arrive later, by request id, in a table of their own beside it (`<log>_labels`: request_id,
label, received_at; appended by merge_labels); the drift job joins each request's newest label.

Written in batches with delta-rs (no JVM in the serving path); read by the Spark drift job.
A row that does not convert is mended (writable_row) rather than failing the rows beside it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import pyarrow as pa

from lakeray.spec.models import PipelineSpec

log = logging.getLogger(__name__)

ARROW_TYPES = {"numeric": pa.float64(), "categorical": pa.string(), "boolean": pa.bool_()}
PREDICTION_COLUMN = "prediction"
PROBABILITIES_COLUMN = "probabilities"      # multiclass: every class's probability, in its model's class order
# Rows converted to Arrow per call: pa.Table.from_pylist holds the GIL for all of its rows (9 ms for
# 5,000 inference-log rows, a pause every request on a serving replica waited out); 500 at a time
# with the GIL offered between them keeps each hold under 1 ms
CHUNK_ROWS = 500


def inference_schema(spec: PipelineSpec) -> pa.Schema:
    return pa.schema([
        ("request_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("date", pa.string()),
        ("pipeline", pa.string()), ("model_version", pa.string()), ("train_run_id", pa.string()),
        ("variant", pa.string()),
        *[(name, ARROW_TYPES[kind]) for name, kind in spec.features.items()],
        (PREDICTION_COLUMN, pa.float64()),
        *([(PROBABILITIES_COLUMN, pa.list_(pa.float64()))] if spec.task == "multiclass" else []),
        ("latency_ms", pa.float64()), ("label", pa.string()),
    ])


def predictions_table(spec: PipelineSpec, rows: list[dict]) -> pa.Table:
    """Logged predictions (dicts with the schema's fields; date, pipeline and label are filled
    in) as an Arrow table of the inference-log schema. Raises if a value does not convert."""
    schema, chunks = inference_schema(spec), []
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS]
        for row in chunk:
            ts = row["ts"]
            row.setdefault("date", (ts if isinstance(ts, dt.datetime) else dt.datetime.fromisoformat(ts)).date().isoformat())
            row.setdefault("pipeline", spec.name)
            row.setdefault("label", None)
            if spec.task == "multiclass":
                row.setdefault(PROBABILITIES_COLUMN, None)
        chunks.append(pa.Table.from_pylist(chunk, schema=schema))
        time.sleep(0)        # let the serving thread have the GIL between chunks (see CHUNK_ROWS)
    return pa.concat_tables(chunks) if chunks else schema.empty_table()


def append_table(path: str, table: pa.Table) -> None:
    """Append to the log. A log written before a column it now has (a multiclass log before its
    class probabilities) takes the column on the first append that brings it; older rows read null."""
    from deltalake import write_deltalake
    from deltalake.exceptions import SchemaMismatchError

    try:
        write_deltalake(path, table, mode="append", partition_by=["date"])
    except SchemaMismatchError:
        write_deltalake(path, table, mode="append", partition_by=["date"], schema_mode="merge")


def append_predictions(path: str, spec: PipelineSpec, rows: list[dict]) -> None:
    """Append a batch of logged predictions (dicts with the schema's fields; date is derived)."""
    append_table(path, predictions_table(spec, rows))


def mended_text(value: str) -> str:
    """`value` as valid Unicode: lone surrogates (which UTF-8 cannot hold) become U+FFFD."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def writable_row(spec: PipelineSpec, row: dict) -> tuple[dict, list[str]] | None:
    """A row that did not convert, mended field by field: text that is not valid Unicode gets
    U+FFFD for the bad characters, any other value of the wrong type becomes null. Returns
    (the mended row, the names of the fields changed), or None if the row still does not convert
    (e.g. no usable ts): such a row is kept for an operator, never written half-right."""
    fixed, changed = dict(row), []
    for field in inference_schema(spec):
        if field.name not in fixed or field.name == "date":
            continue
        value = fixed[field.name]
        try:
            pa.array([value], type=field.type)
            continue
        except Exception:
            pass
        mended = mended_text(value) if isinstance(value, str) and pa.types.is_string(field.type) else None
        fixed[field.name] = mended
        changed.append(field.name)
    try:
        predictions_table(spec, [fixed])
    except Exception:
        return None
    return fixed, changed


def table_of(spec: PipelineSpec, rows: list[dict]) -> tuple[pa.Table | None, list[dict], list[dict]]:
    """(Arrow table, rows in it, rows that do not convert even mended). One conversion for the
    batch; only if it fails are rows converted (and mended) one by one."""
    try:
        return predictions_table(spec, rows), rows, []
    except Exception as exc:
        reason = exc
    good, bad = [], []
    for row in rows:
        mended = writable_row(spec, row)
        if mended is None:
            bad.append(row)
            continue
        good.append(mended[0])
        if mended[1]:
            log.error("inference log: request %s: field(s) %s could not be stored as sent (%s); logged mended",
                      row.get("request_id"), ", ".join(mended[1]), reason)
    return (predictions_table(spec, good) if good else None), good, bad


def append_rows(path: str, spec: PipelineSpec, rows: list[dict]) -> tuple[int, list[dict]]:
    """Append `rows` (mended where needed): (rows written, rows that could not be converted)."""
    table, _, bad = table_of(spec, rows)
    if table is not None:
        append_table(path, table)
    return (table.num_rows if table is not None else 0), bad


def labels_path(log_path: str) -> str:
    """Where the labels of an inference log are recorded: a sibling Delta table, `<log>_labels`."""
    return log_path.rstrip("/") + "_labels"


LABELS_SCHEMA = pa.schema([("request_id", pa.string()), ("label", pa.string()),
                           ("received_at", pa.timestamp("us", tz="UTC"))])


def merge_labels(path: str, labels: dict[str, object]) -> dict:
    """Labels that arrive later, by request id, recorded in the labels table beside the inference log
    at `path` (labels_path): an append, so it never races the serving replicas' appends to the log
    (a MERGE into the log itself failed on every try while they appended; measured). The drift job
    joins each request's newest label. A label whose request is not in the log yet (its prediction
    still buffered by a replica) is kept and joins once the prediction lands. Returns
    num_source_rows, num_target_rows_updated (requests found in the log) and unknown_request_ids."""
    from deltalake import DeltaTable, write_deltalake

    from lakeray.errors import LakerayError

    if not labels:
        return {"num_source_rows": 0, "num_target_rows_updated": 0, "unknown_request_ids": 0}
    try:
        table = DeltaTable(path)
    except Exception as exc:
        raise LakerayError(f"no inference log at {path}: nothing has been served yet ({exc})") from None
    received = dt.datetime.now(dt.timezone.utc)
    source = pa.table({"request_id": pa.array(list(labels), pa.string()),
                       "label": pa.array([None if v is None else str(v) for v in labels.values()], pa.string()),
                       "received_at": pa.array([received] * len(labels), LABELS_SCHEMA.field("received_at").type)},
                      schema=LABELS_SCHEMA)
    found = _logged(table, source.column("request_id"))
    write_deltalake(labels_path(path), source, mode="append")     # appends never conflict with appends
    if len(found) < len(labels):
        log.info("labels: %d of %d request id(s) are not in the inference log yet; recorded, they join when "
                 "their predictions land", len(labels) - len(found), len(labels))
    return {"num_source_rows": len(labels), "num_target_rows_updated": len(found),
            "unknown_request_ids": len(labels) - len(found)}


def _logged(table, request_ids: pa.Array) -> set[str]:
    """Which of `request_ids` the log holds (a scan of its request_id column only)."""
    import pyarrow.dataset as ds

    found = table.to_pyarrow_dataset().to_table(columns=["request_id"], filter=ds.field("request_id").isin(request_ids))
    return set(found.column("request_id").to_pylist())
