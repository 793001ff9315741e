"""Request and response models generated from the pipeline spec (pydantic, strict: unknown
fields are rejected, so a typo in a field name is a 422 naming it, not a silent default).

Every value that passes is one the model and the inference log can take as sent: numbers are
finite and within float32 (XGBoost computes in float32, where a larger number is inf: it made
the whole prediction call raise, and clipped it would be silently another number), strings are
valid Unicode (a lone surrogate such as "\\ud800" cannot be written as UTF-8, so it could never
reach the inference log). 422 answers name the field and are themselves valid JSON."""

from __future__ import annotations

import math
from typing import Annotated, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from lakeray.errors import ConfigError
from lakeray.features.values import FLOAT32_MAX
from lakeray.monitor.inference_log import mended_text
from lakeray.spec.models import PipelineSpec


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode: {exc.reason} at character {exc.start} "
                         f"(U+{ord(value[exc.start]):04X}); send the text as valid UTF-8") from None
    return value


# checked inside pydantic-core (no Python call per value); validation_errors words the range error
Numeric = Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
OUT_OF_RANGE = f"out of range: numbers beyond ±{FLOAT32_MAX:.6g} overflow float32, in which the model computes"
Text = Annotated[str, AfterValidator(_valid_unicode)]
TYPES = {"numeric": Numeric, "categorical": Text, "boolean": bool}


def row_model(spec: PipelineSpec) -> type[BaseModel]:
    """One row of features; every feature may be null (imputed as in training)."""
    fields = {name: (Optional[TYPES[kind]], Field(default=None)) for name, kind in spec.features.items()}
    return create_model(f"{spec.name.title()}Features", __config__=ConfigDict(extra="forbid", strict=False), **fields)


def batch_model(spec: PipelineSpec, row: type[BaseModel], max_rows: int) -> type[BaseModel]:
    return create_model(f"{spec.name.title()}Batch", __config__=ConfigDict(extra="forbid"),
                        rows=(list[row], Field(min_length=1, max_length=max_rows)))


def max_body_bytes(spec: PipelineSpec, conf: dict) -> int:
    """serve.max_body_bytes, or with `auto` (the default) one derived from the row limit: room for
    serve.max_batch_rows rows of this spec, each field with its name and serve.body_bytes_per_value
    bytes of value, plus 64 KiB: a full batch of ordinary values is never refused for its size."""
    setting = conf.get("max_body_bytes", "auto")
    for key, value, auto in (("max_body_bytes", setting, True), ("body_bytes_per_value", conf.get("body_bytes_per_value", 64), False),
                             ("max_batch_rows", conf["max_batch_rows"], False)):
        if not (auto and value in (None, "auto")) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"setting serve.{key} must be a positive whole number{' or auto' if auto else ''}, not {value!r}")
    if setting not in (None, "auto"):
        return setting
    per_value = conf.get("body_bytes_per_value", 64)
    per_row = 2 + sum(len(name) + 6 + per_value for name in spec.features)     # {"name": value, ...}
    return int(conf["max_batch_rows"]) * per_row + 65536


def _plain(value, depth: int = 0):
    """`value` as JSON can carry it: non-finite numbers as text, text as valid Unicode (U+FFFD for
    lone surrogates), containers cut short; anything else as its repr."""
    if value is None or isinstance(value, (bool, int)):
        return value if not isinstance(value, int) or abs(value) < 10 ** 30 else f"{str(value)[:30]}... ({len(str(value))} digits)"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = mended_text(value)
        return text if len(text) <= 200 else text[:200] + "..."
    if isinstance(value, (list, tuple)) and depth < 3:
        return [_plain(v, depth + 1) for v in value[:20]]
    if isinstance(value, dict) and depth < 3:
        return {str(_plain(k, 3)): _plain(v, depth + 1) for k, v in list(value.items())[:20]}
    return _plain(repr(value)[:200], 3)


def validation_errors(errors) -> list[dict]:
    """Pydantic's errors for a 422, each naming where (loc), what (msg, type) and the value sent,
    made safe to answer in JSON: FastAPI's own handler fails with a 500 when the value is
    Infinity or NaN (JSON has neither) or text with a lone surrogate (UTF-8 cannot hold it)."""
    def message(e) -> str:
        if e.get("type") in ("less_than_equal", "greater_than_equal") and (e.get("ctx") or {}).get(
                "le" if e["type"] == "less_than_equal" else "ge") in (FLOAT32_MAX, -FLOAT32_MAX):
            return OUT_OF_RANGE
        if e.get("type") == "float_type" and isinstance(e.get("input"), int) and not isinstance(e["input"], bool):
            return OUT_OF_RANGE                        # a whole number too large for any float
        return str(e.get("msg", ""))

    return [{"type": e.get("type"), "loc": [_plain(part, 3) for part in e.get("loc", ())],
             "msg": _plain(message(e)), "input": _plain(e.get("input"))} for e in errors]


async def validation_error_handler(request, exc):
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": validation_errors(exc.errors())}, status_code=422)


class Prediction(BaseModel):
    request_id: str
    model_version: str
    prediction: float                # binary: P(positive); multiclass: the predicted class's index; regression: the value
    label: Optional[str] = None      # binary: the class at the model's decision threshold; multiclass: the most probable
    # multiclass: every class's probability (left out of the other tasks' answers)
    probabilities: Optional[dict[str, float]] = Field(default=None, exclude_if=lambda v: v is None)


class BatchPrediction(BaseModel):
    request_id: str
    model_version: str
    predictions: list[Prediction]
