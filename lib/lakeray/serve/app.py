"""The Ray Serve application: the champion model behind a FastAPI ingress.

    serve run lakeray.serve.app:app_builder pipeline=pipelines/churn.yaml
    lakeray serve --pipeline pipelines/churn.yaml

POST /predict (one row) and /predict/batch (rows), GET /healthz; OpenAPI docs at /docs. The
request models come from the spec (unknown or mistyped fields -> 422 naming the field); bodies
over serve.max_body_bytes -> 413; an API key (header x-api-key, from the environment variable
serve.api_key_env) when serve.require_api_key. Single requests are batched with @serve.batch
into one vectorised prediction. Every prediction is logged to the inference-log Delta table
off the request path.
"""
# no `from __future__ import annotations` here: FastAPI resolves the generated request models
# from the endpoint annotations at definition time

import asyncio
import datetime as dt
import hmac
import logging
import os
import time
import uuid

import numpy as np
import pandas as pd

from lakeray.errors import ConfigError

log = logging.getLogger(__name__)
OPEN_PATHS = ("/healthz", "/docs", "/openapi.json", "/-/")


def _predicted_label(bundle, score: float):
    if bundle.task != "binary":
        return None
    positive = bundle.target.positive
    return str(positive) if score >= bundle.threshold else f"not {positive}"


class Guard:
    """Before validation: 413 over max_body_bytes (Content-Length), 401 without the API key.
    A plain ASGI middleware: Starlette's BaseHTTPMiddleware (@app.middleware) costs a task group
    and memory streams per request, measurable at 1,000 requests/s."""

    def __init__(self, app, max_body_bytes: int, api_key: str | None):
        self.app, self.max_body_bytes = app, max_body_bytes
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        refusal = None
        if length.isdigit() and int(length) > self.max_body_bytes:
            refusal = (413, f"request body of {int(length)} bytes exceeds {self.max_body_bytes}")
        elif self.api_key is not None:
            path, root = scope.get("path", ""), scope.get("root_path", "")
            path = path[len(root):] if root and path.startswith(root) else path
            if not path.startswith(OPEN_PATHS) and not hmac.compare_digest(headers.get(b"x-api-key", b""), self.api_key):
                refusal = (401, "missing or wrong x-api-key")
        if refusal:
            from fastapi.responses import JSONResponse

            return await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send)
        return await self.app(scope, receive, send)


def build_app(pipeline: str, env: str | None = None, overrides: dict | None = None, settings=None):
    """The bound Serve application for `pipeline`; `settings` (already loaded) wins over env/overrides."""
    from fastapi import FastAPI
    from ray import serve

    from lakeray.config import load_settings
    from lakeray.lakehouse import Lakehouse
    from lakeray.serve.schema import BatchPrediction, Prediction, batch_model, row_model
    from lakeray.spec import load_spec

    spec = load_spec(pipeline)
    settings = settings or load_settings(env, overrides=overrides)
    conf = settings["serve"]
    Row = row_model(spec)
    Batch = batch_model(spec, Row, int(conf["max_batch_rows"]))
    api_key = None
    if conf.get("require_api_key"):
        api_key = os.environ.get(conf["api_key_env"])
        if not api_key:
            raise ConfigError(f"serve.require_api_key is on but environment variable {conf['api_key_env']} is not set")
    api = FastAPI(title=f"lakeray {spec.name}", description=spec.description)
    api.add_middleware(Guard, max_body_bytes=int(conf["max_body_bytes"]), api_key=api_key)

    lake = Lakehouse.for_pipeline(settings, spec)
    batching = conf["batch"]
    columns = list(spec.features)

    @serve.deployment(name=f"{spec.name}-predictor", max_ongoing_requests=int(conf["max_ongoing_requests"]),
                      max_queued_requests=int(conf.get("max_queued_requests", -1)),
                      num_replicas=conf.get("num_replicas", 1) if not conf.get("autoscaling") else "auto",
                      autoscaling_config=conf.get("autoscaling") or None,
                      ray_actor_options={"num_cpus": float(conf["replica_cpus"])})
    @serve.ingress(api)
    class Predictor:
        def __init__(self):
            from lakeray.serve.logger import InferenceLogger
            from lakeray.serve.model import load_champion

            self.model = load_champion(settings, spec.name)
            self.logger = InferenceLogger(lake.monitor("inference_log"), spec, int(conf["log"]["flush_rows"]),
                                          float(conf["log"]["flush_s"]))
            self._watcher = None
            self.challenge = dict(conf.get("challenger") or {})
            self.challenger = None
            if self.challenge.get("mode") in ("canary", "shadow"):
                from lakeray.serve.model import load_alias

                self.challenger = load_alias(settings, spec.name, self.challenge.get("alias", "challenger"))
                if self.challenger is None:
                    log.warning("serve.challenger.mode is %s but no version has alias '%s': champion only",
                                self.challenge["mode"], self.challenge.get("alias", "challenger"))
            self._rng = np.random.default_rng()

        async def _watch_champion(self):
            """Hot swap: poll the registry; when `champion` moves, load the new version in a thread
            and swap it in with one assignment, so in-flight and new requests never fail."""
            import asyncio

            from lakeray.registry.gate import current_champion
            from lakeray.registry.tracking import configure_tracking
            from lakeray.serve.model import load_champion

            tracking = configure_tracking(settings, spec.name)
            while True:
                await asyncio.sleep(float(conf["reload_s"]))
                try:
                    latest = await asyncio.to_thread(current_champion, tracking.client, tracking.model_name)
                    if latest is not None and str(latest.version) != self.model.version:
                        fresh = await asyncio.to_thread(load_champion, settings, spec.name)
                        log.info("champion moved: version %s -> %s", self.model.version, fresh.version)
                        self.model = fresh
                except Exception as exc:   # keep serving the current model; try again next time
                    log.error("champion check failed (still serving version %s): %s", self.model.version, exc)

        def _ensure_watcher(self):
            import asyncio

            if self._watcher is None and float(conf.get("reload_s") or 0) > 0:
                self._watcher = asyncio.get_running_loop().create_task(self._watch_champion())

        @serve.batch(max_batch_size=int(batching["max_batch_size"]), batch_wait_timeout_s=float(batching["wait_timeout_s"]))
        async def score(self, requests: list[list[dict]]) -> list[tuple]:
            """One DataFrame and one prediction for all rows of the batch's requests (building a
            frame per request and concatenating them cost more than the prediction itself)."""
            model = self.model   # one model for the whole batch, even if a swap happens meanwhile
            rows = [row for request in requests for row in request]
            scores = model.bundle.predict_frame(pd.DataFrame(rows, columns=columns))
            bounds = np.cumsum([0] + [len(r) for r in requests])
            return [(model, scores[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

        async def _predict(self, rows: list[dict]) -> tuple[str, list[Prediction]]:
            self._ensure_watcher()
            began = time.perf_counter()
            request_id = uuid.uuid4().hex
            variant, challenger = "champion", self.challenger
            if challenger and self.challenge["mode"] == "canary" and self._rng.random() * 100 < float(self.challenge["percent"]):
                variant, model = "canary", challenger
                scores = await asyncio.to_thread(model.bundle.predict_frame, pd.DataFrame(rows, columns=columns))
            else:
                model, scores = await self.score(rows)   # the model that produced these scores
            values = [float(np.ravel(s)[0]) if np.ndim(s) else float(s) for s in scores]
            preds = [Prediction(request_id=f"{request_id}-{i}" if len(rows) > 1 else request_id,
                                model_version=model.version, prediction=value, label=_predicted_label(model.bundle, value))
                     for i, value in enumerate(values)]
            latency = (time.perf_counter() - began) * 1000
            now = dt.datetime.now(dt.timezone.utc)
            self.logger.log([{"request_id": p.request_id, "ts": now, "model_version": model.version,
                              "train_run_id": model.train_run_id, "variant": variant, **row,
                              "prediction": p.prediction, "latency_ms": latency} for p, row in zip(preds, rows)])
            if challenger and self.challenge["mode"] == "shadow":
                asyncio.get_running_loop().create_task(self._shadow(challenger, pd.DataFrame(rows, columns=columns), rows, preds))
            return request_id, preds

        async def _shadow(self, challenger, frame, rows, preds):
            """The challenger's predictions for the same requests: logged (variant shadow), never returned."""
            began = time.perf_counter()
            try:
                scores = np.ravel(await asyncio.to_thread(challenger.bundle.predict_frame, frame))
            except Exception as exc:
                log.error("shadow model version %s failed: %s", challenger.version, exc)
                return
            latency, now = (time.perf_counter() - began) * 1000, dt.datetime.now(dt.timezone.utc)
            self.logger.log([{"request_id": p.request_id, "ts": now, "model_version": challenger.version,
                              "train_run_id": challenger.train_run_id, "variant": "shadow", **row,
                              "prediction": float(s), "latency_ms": latency} for p, row, s in zip(preds, rows, scores)])

        @api.post("/predict", response_model=Prediction)
        async def predict(self, row: Row) -> Prediction:
            _, preds = await self._predict([row.model_dump()])
            return preds[0]

        @api.post("/predict/batch", response_model=BatchPrediction)
        async def predict_batch(self, body: Batch) -> BatchPrediction:
            request_id, preds = await self._predict([r.model_dump() for r in body.rows])
            return BatchPrediction(request_id=request_id, model_version=self.model.version, predictions=preds)

        @api.get("/healthz")
        async def healthz(self) -> dict:
            self._ensure_watcher()
            return {"status": "ok", "model_version": self.model.version, "logged": self.logger.written,
                    "log_dropped": self.logger.dropped}

        def __del__(self):
            if getattr(self, "logger", None):
                self.logger.close()

    return Predictor.bind()


def deploy(pipeline: str, settings, *, name: str | None = None, blocking: bool = False):
    """Start Serve's HTTP proxy on serve.host:serve.port and run the app at "/" (on the connected Ray)."""
    from pathlib import Path

    from ray import serve

    conf = settings["serve"]
    serve.start(http_options={"host": conf["host"], "port": int(conf["port"])})
    name = name or Path(pipeline).stem
    serve.run(build_app(pipeline, settings=settings), name=name, route_prefix="/", blocking=blocking)
    return f"http://{'127.0.0.1' if conf['host'] in ('0.0.0.0', '::') else conf['host']}:{int(conf['port'])}"


def app_builder(args: dict):
    """For `serve run lakeray.serve.app:app_builder pipeline=pipelines/churn.yaml [env=cluster]`."""
    return build_app(args["pipeline"], args.get("env"))
