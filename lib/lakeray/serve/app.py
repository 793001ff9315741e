"""The Ray Serve application: the champion model behind a FastAPI ingress.

    serve run lakeray.serve.app:app_builder pipeline=pipelines/churn.yaml
    lakeray serve --pipeline pipelines/churn.yaml

POST /predict (one row) and /predict/batch (rows), GET /healthz; OpenAPI docs at /docs and
/redoc, served with their JavaScript and CSS from the package fastapi-offline (no CDN: lakeray
sends nothing anywhere). The request models come from the spec (unknown or mistyped fields,
non-finite or out-of-range numbers, text that is not valid Unicode -> 422 naming the field);
bodies over serve.max_body_bytes -> 413, counted as they stream; an API key (header x-api-key,
from the environment variable serve.api_key_env) when serve.require_api_key. The two prediction
routes are answered straight from ASGI (lakeray.serve.routes), the rest by FastAPI. A request that
finds the scorer idle is scored at once; requests arriving meanwhile go together into the next
vectorised prediction (lakeray.serve.batcher; scoring runs in a thread); a row the model cannot
score fails only its own request (422 naming the row), never the others in the batch. How requests
reach the replicas (HAProxy by default): lakeray.serve.ingress. Every prediction answered is
logged to the inference-log Delta table off the request path.
"""
# no `from __future__ import annotations` here: FastAPI resolves the generated request models
# from the endpoint annotations at definition time

import asyncio
import datetime as dt
import itertools
import logging
import os
import secrets
import time

import numpy as np

from lakeray.errors import ConfigError
from lakeray.serve.batcher import Batcher

log = logging.getLogger(__name__)


def answer(bundle, score) -> dict:
    """One row's answer fields from its model output. binary: the positive class's probability and
    the class at the model's decision threshold (the other class by the name training saw: "not
    <positive>" where it saw several, or a bundle from before the name was kept); multiclass: the most probable class (`label`), its
    index in the model's classes (`prediction`: what the training profile and the inference log
    hold) and every class's probability; regression: the value."""
    if bundle.task == "multiclass":
        proba = np.ravel(score).astype(float)
        best = int(proba.argmax())
        classes = [str(c) for c in bundle.target.classes]
        return {"prediction": float(best), "label": classes[best],
                "probabilities": dict(zip(classes, proba.tolist(), strict=True))}
    value = float(np.ravel(score)[0]) if np.ndim(score) else float(score)
    if bundle.task != "binary":
        return {"prediction": value, "label": None}
    positive, negative = bundle.target.positive, bundle.target.negative
    if value >= bundle.threshold:
        return {"prediction": value, "label": str(positive)}
    return {"prediction": value, "label": f"not {positive}" if negative is None else str(negative)}


def _logged_probabilities(probabilities: dict | None) -> dict:
    """A multiclass answer's class probabilities as the inference log keeps them (a list in the
    model's class order; the drift job's realised log loss reads them); nothing for other tasks."""
    return {} if probabilities is None else {"probabilities": list(probabilities.values())}


class PredictorCore:
    """What a replica does, apart from the routes: hold the models (from the injected loader), watch
    the champion alias for a hot swap, score batches with per-row isolation, log every answer, and
    run the challenger (canary/shadow), batch concurrent requests. Build_app's deployment class adds
    the routes on top; everything here is plain Python."""

    def __init__(self, spec, conf: dict, lake, loader):
        from lakeray.errors import LakerayError
        from lakeray.serve.logger import InferenceLogger

        self.spec, self.conf, self.loader = spec, conf, loader
        self.model = loader.load("champion")
        if self.model is None:
            raise LakerayError(f"no 'champion' alias for pipeline {spec.name}: run tune, train and evaluate first")
        logging_conf = conf["log"]
        self.logger = InferenceLogger(lake.monitor("inference_log"), spec, int(logging_conf["flush_rows"]),
                                      float(logging_conf["flush_s"]), dead_letter=logging_conf.get("dead_letter"),
                                      attempts=int(logging_conf.get("attempts", 5)),
                                      replay_s=float(logging_conf.get("replay_s", 60)))
        self._watcher = None
        self.challenge = dict(conf.get("challenger") or {})
        self.challenger = None
        if self.challenge.get("mode") in ("canary", "shadow"):
            alias = self.challenge.get("alias", "challenger")
            self.challenger = loader.load(alias)
            if self.challenger is None:
                log.warning("serve.challenger.mode is %s but no version has alias '%s': champion only",
                            self.challenge["mode"], alias)
        self._rng = np.random.default_rng()
        self.batcher = Batcher(self.score_requests, int(conf["batch"]["max_batch_size"]))
        # request ids: a random prefix per replica and a counter (uuid4 per request cost 1.5% of the CPU)
        self._ids = (f"{secrets.token_hex(8)}{n:016x}" for n in itertools.count())

    async def _watch_champion(self):
        """Hot swap: poll the loader; when `champion` moves, load the new version in a thread and
        swap it in with one assignment, so in-flight and new requests never fail."""
        while True:
            await asyncio.sleep(float(self.conf["reload_s"]))
            try:
                latest = await asyncio.to_thread(self.loader.version, "champion")
                if latest is not None and latest != self.model.version:
                    fresh = await asyncio.to_thread(self.loader.load, "champion")
                    if fresh is not None:
                        log.info("champion moved: version %s -> %s", self.model.version, fresh.version)
                        self.model = fresh
            except Exception as exc:   # keep serving the current model; try again next time
                log.error("champion check failed (still serving version %s): %s", self.model.version, exc)

    def _ensure_watcher(self):
        if self._watcher is None and float(self.conf.get("reload_s") or 0) > 0:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_champion())

    async def score(self, rows: list[dict]) -> tuple:
        """(model, Scored) for `rows`, scored in a thread (behind HAProxy the replica's own event loop
        accepts the requests: it must stay free to queue them and to answer 503 beyond
        max_queued_requests while a prediction runs), at once or with the requests queued beside it."""
        return await self.batcher.submit(rows)

    def score_requests(self, requests: list[list[dict]]) -> list[tuple]:
        """One prediction for all rows of a batch's requests (building a frame per request and
        concatenating them cost more than the prediction itself). Never raises: that would fail
        every request of the batch. A failing call is bisected instead, and only the
        requests holding rows that fail alone get an error."""
        from lakeray.serve.model import Scored, score_isolated

        model = self.model   # one model for the whole batch, even if a swap happens meanwhile
        rows = [row for request in requests for row in request]
        scored = score_isolated(model.bundle.predict_rows, rows)
        bounds = np.cumsum([0] + [len(r) for r in requests])
        return [(model, Scored(scored.scores[a:b], {i - a: e for i, e in scored.errors.items() if a <= i < b},
                               scored.model_broken))
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    async def predict_rows(self, rows: list[dict], batch: bool = False) -> tuple[str, list]:
        """Score `rows` (through the batcher, or the canary), log them, shadow them."""
        from lakeray.serve.model import score_isolated
        from lakeray.serve.schema import Prediction

        self._ensure_watcher()
        began = time.perf_counter()
        request_id = next(self._ids)
        variant, challenger = "champion", self.challenger
        if challenger and self.challenge["mode"] == "canary" and self._rng.random() * 100 < float(self.challenge["percent"]):
            variant, model = "canary", challenger
            scored = await asyncio.to_thread(score_isolated, model.bundle.predict_rows, rows)
        else:
            model, scored = await self.score(rows)   # the model that produced these scores
        if scored.errors:
            raise _unscorable(model, scored, batch)
        preds = [Prediction(request_id=f"{request_id}-{i}" if len(rows) > 1 else request_id,
                            model_version=model.version, **answer(model.bundle, s))
                 for i, s in enumerate(scored.scores)]
        latency = (time.perf_counter() - began) * 1000
        now = dt.datetime.now(dt.timezone.utc)
        self.logger.log([{"request_id": p.request_id, "ts": now, "model_version": model.version,
                          "train_run_id": model.train_run_id, "variant": variant, **row,
                          "prediction": p.prediction, **_logged_probabilities(p.probabilities), "latency_ms": latency}
                         for p, row in zip(preds, rows, strict=True)])
        if challenger and self.challenge["mode"] == "shadow":
            asyncio.get_running_loop().create_task(self._shadow(challenger, rows, preds))
        return request_id, preds

    async def _shadow(self, challenger, rows, preds):
        """The challenger's predictions for the same requests: logged (variant shadow), never returned."""
        from lakeray.serve.model import score_isolated

        began = time.perf_counter()
        try:
            scored = await asyncio.to_thread(score_isolated, challenger.bundle.predict_rows, rows)
        except Exception as exc:
            log.error("shadow model version %s failed: %s", challenger.version, exc)
            return
        latency, now = (time.perf_counter() - began) * 1000, dt.datetime.now(dt.timezone.utc)
        answers = [None if s is None else answer(challenger.bundle, s) for s in scored.scores]
        self.logger.log([{"request_id": p.request_id, "ts": now, "model_version": challenger.version,
                          "train_run_id": challenger.train_run_id, "variant": "shadow", **row,
                          "prediction": a["prediction"], **_logged_probabilities(a.get("probabilities")),
                          "latency_ms": latency}
                         for p, row, a in zip(preds, rows, answers, strict=True) if a is not None])

    async def health(self) -> dict:
        self._ensure_watcher()
        logger = self.logger
        pending = await asyncio.to_thread(logger.dead_letter.pending_rows)
        return {"status": "ok", "model_version": self.model.version, "logged": logger.written,
                "log_dropped": logger.dropped, "log_dead_lettered": logger.dead_lettered,
                "log_replayed": logger.replayed, "log_dead_letter_pending": pending}

    def __del__(self):
        if getattr(self, "logger", None):
            self.logger.close()


def _settle_garbage_collector() -> None:
    """After the models are loaded: everything alive now (the models, the libraries) leaves the
    cyclic collector's view (gc.freeze; refcounting still frees it), and young-generation collections
    run every 50,000 allocations instead of 700. Each request allocates hundreds of objects; the
    default thresholds ran a collection every few requests. Measured at 32 connections
    (benchmarks/README.md): 4% less replica CPU per request, p99 37-40 -> 33-35 ms."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def _check_api_key(conf: dict) -> str | None:
    if not conf.get("require_api_key"):
        return None
    api_key = os.environ.get(conf["api_key_env"])
    if not api_key:
        raise ConfigError(f"serve.require_api_key is on but environment variable {conf['api_key_env']} is not set")
    return api_key


def _api(spec, conf: dict, core: PredictorCore, api_key: str | None = None):
    """The ASGI app of one replica: the body-size and API-key guard in front of the prediction
    routes (straight ASGI) and FastAPI (/healthz, offline docs; it also declares the prediction
    routes, for OpenAPI), 422s naming the field. `api_key` (read where the app was built: the
    replica's environment need not hold it) is required in x-api-key when serve.require_api_key."""
    from fastapi.exceptions import RequestValidationError
    from fastapi_offline import FastAPIOffline

    from lakeray.serve.guard import Guard
    from lakeray.serve.routes import PredictRoutes
    from lakeray.serve.schema import (
        BatchPrediction,
        Prediction,
        batch_model,
        max_body_bytes,
        row_model,
        validation_error_handler,
    )

    Row = row_model(spec)   # the request models come from the spec
    Batch = batch_model(spec, Row, int(conf["max_batch_rows"]))
    api = FastAPIOffline(title=f"lakeray {spec.name}", description=spec.description, static_url="/docs/static",
                         swagger_ui_parameters={"validatorUrl": None})
    api.add_exception_handler(RequestValidationError, validation_error_handler)

    async def predict(row: Row) -> Prediction:
        _, preds = await core.predict_rows([row.model_dump()])
        return preds[0]

    async def predict_batch(body: Batch) -> BatchPrediction:
        request_id, preds = await core.predict_rows([r.model_dump() for r in body.rows], batch=True)
        return BatchPrediction(request_id=request_id, model_version=preds[0].model_version, predictions=preds)

    async def healthz() -> dict:
        return await core.health()

    api.post("/predict", response_model=Prediction)(predict)
    api.post("/predict/batch", response_model=BatchPrediction)(predict_batch)
    api.get("/healthz")(healthz)
    hint = ("" if conf.get("max_body_bytes", "auto") not in (None, "auto") else
            f"; auto: serve.max_batch_rows {int(conf['max_batch_rows'])} x {len(spec.features)} fields")
    routes = PredictRoutes(api, {"/predict": (Row, predict), "/predict/batch": (Batch, predict_batch)})
    return Guard(routes, max_body_bytes=max_body_bytes(spec, conf), api_key=api_key, limit_hint=hint)


def build_app(pipeline: str, env: str | None = None, overrides: dict | None = None, settings=None, loader=None):
    """The bound Serve application for `pipeline`; `settings` (already loaded) wins over env/overrides.
    `loader` gives the replicas their models (default: lakeray.serve.model.RegistryLoader, MLflow's
    registry by alias; BundleLoader serves a bundle folder)."""
    from ray import serve

    from lakeray.config import load_settings
    from lakeray.lakehouse import Lakehouse
    from lakeray.serve.model import RegistryLoader
    from lakeray.serve.schema import max_body_bytes
    from lakeray.spec import load_spec

    spec = load_spec(pipeline)
    settings = settings or load_settings(env, overrides=overrides)
    conf = settings["serve"]
    api_key = _check_api_key(conf)       # from the caller's environment; bad settings fail here, not in a replica
    max_body_bytes(spec, conf)

    @serve.deployment(name=f"{spec.name}-predictor", max_ongoing_requests=int(conf["max_ongoing_requests"]),
                      max_queued_requests=int(conf.get("max_queued_requests", -1)),
                      num_replicas=conf.get("num_replicas", 1) if not conf.get("autoscaling") else "auto",
                      autoscaling_config=conf.get("autoscaling") or None,
                      logging_config={"enable_access_log": bool(conf.get("access_log", False))},
                      ray_actor_options={"num_cpus": float(conf["replica_cpus"])})
    @serve.ingress()             # the ASGI app is built in the replica, around this instance
    class Predictor(PredictorCore):
        def __init__(self, spec, conf, lake, loader, api_key):
            super().__init__(spec, conf, lake, loader)
            self._api_key = api_key
            _settle_garbage_collector()      # the replica's own process, once its models are loaded

        def __serve_build_asgi_app__(self):
            return _api(self.spec, self.conf, self, self._api_key)

    return Predictor.bind(spec, conf, Lakehouse.for_pipeline(settings, spec),
                          loader or RegistryLoader(settings, spec.name), api_key)


def _unscorable(model, scored, batch: bool):
    """The error for a request with rows the model could not score: 422 naming each row, or 500
    when the model fails on a row of nulls too (then it is the model, not the request)."""
    from fastapi import HTTPException

    if scored.model_broken:
        first = scored.errors[min(scored.errors)]
        return HTTPException(500, f"model version {model.version} cannot score any row (even one of nulls): {first}")
    return HTTPException(422, [{"type": "unscorable", "loc": ["body", "rows", i] if batch else ["body"],
                                "msg": f"the model (version {model.version}) could not score this row: {error}"}
                               for i, error in sorted(scored.errors.items())])


def deploy(pipeline: str, settings, *, name: str | None = None, blocking: bool = False):
    """Start Serve's ingress (serve.ingress: HAProxy by default) on serve.host:serve.port and run the
    app at "/" (on the connected Ray); unless blocking, return its URL once the ingress routes to it."""
    from pathlib import Path

    from ray import serve

    from lakeray.console import route_to_root
    from lakeray.serve.ingress import start_serve, wait_routed

    conf = settings["serve"]
    start_serve(conf)
    route_to_root("ray.serve")       # Serve's driver-side lines ("Application ... is ready") into the run's log
    name = name or Path(pipeline).stem
    serve.run(build_app(pipeline, settings=settings), name=name, route_prefix="/", blocking=blocking)
    url = f"http://{'127.0.0.1' if conf['host'] in ('0.0.0.0', '::') else conf['host']}:{int(conf['port'])}"
    wait_routed(f"{url}/healthz")
    return url


def app_builder(args: dict):
    """For `serve run lakeray.serve.app:app_builder pipeline=pipelines/churn.yaml [env=cluster]`."""
    return build_app(args["pipeline"], args.get("env"))
