"""Request and response models generated from the pipeline spec (pydantic, strict: unknown
fields are rejected, so a typo in a field name is a 422 naming it, not a silent default)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from lakeray.spec.models import PipelineSpec

TYPES = {"numeric": float, "categorical": str, "boolean": bool}


def row_model(spec: PipelineSpec) -> type[BaseModel]:
    """One row of features; every feature may be null (imputed as in training)."""
    fields = {name: (Optional[TYPES[kind]], Field(default=None)) for name, kind in spec.features.items()}
    return create_model(f"{spec.name.title()}Features", __config__=ConfigDict(extra="forbid", strict=False), **fields)


def batch_model(spec: PipelineSpec, row: type[BaseModel], max_rows: int) -> type[BaseModel]:
    return create_model(f"{spec.name.title()}Batch", __config__=ConfigDict(extra="forbid"),
                        rows=(list[row], Field(min_length=1, max_length=max_rows)))


class Prediction(BaseModel):
    request_id: str
    model_version: str
    prediction: float
    label: Optional[str] = None      # binary: the predicted class at the model's decision threshold


class BatchPrediction(BaseModel):
    request_id: str
    model_version: str
    predictions: list[Prediction]
