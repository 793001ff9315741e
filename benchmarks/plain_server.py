"""The Serve benchmark's baseline: the same model bundle behind plain uvicorn + FastAPI.

    BENCH_SPEC=pipelines/churn.yaml BENCH_BUNDLE=/path/to/bundle \
        .venv/bin/python -m uvicorn --factory --app-dir benchmarks plain_server:build --port 8001

Same request model (generated from the spec), same preprocessing and booster
(ModelBundle.predict_frame), one row per call; no batching, no inference log, no Ray.
"""
# no `from __future__ import annotations`: FastAPI resolves the generated request model at definition time

import os
import uuid

import pandas as pd
from fastapi import FastAPI

from lakeray.models import load_bundle
from lakeray.serve.schema import Prediction, row_model
from lakeray.spec import load_spec


def build() -> FastAPI:
    spec = load_spec(os.environ["BENCH_SPEC"])
    bundle = load_bundle(os.environ["BENCH_BUNDLE"])
    Row = row_model(spec)
    columns = list(spec.features)
    app = FastAPI(title=f"plain {spec.name}")

    @app.post("/predict", response_model=Prediction)
    async def predict(row: Row) -> Prediction:
        score = float(bundle.predict_frame(pd.DataFrame([row.model_dump()], columns=columns))[0])
        return Prediction(request_id=uuid.uuid4().hex, model_version="plain", prediction=score)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model_version": "plain"}

    return app
