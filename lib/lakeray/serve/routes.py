"""POST /predict and /predict/batch answered straight from ASGI; every other path goes to the
FastAPI app (/healthz, the OpenAPI docs, 404/405), which also declares these two routes so that
/docs and /openapi.json describe them.

FastAPI's request path (its middleware stack, routing, dependency solving, response-model
serialisation) cost 64 of the ~75 us these two routes now take outside the prediction, about 15%
of a replica's CPU at 32 connections (benchmarks/README.md). Here the body is parsed with Python's
json (as FastAPI parses it: NaN and Infinity literals, lone surrogates reach the request model and
get its 422 naming the field), validated by the same pydantic request models, and answered with the
same JSON: 422s in FastAPI's shape (`detail`, each error's `loc` starting with "body"), errors the
handler raises as HTTPException with their status, anything unexpected a logged 500. Like FastAPI,
only a JSON content type is read as JSON (a cross-site HTML form cannot send one, so a browser page
cannot post rows into the inference log); the rest get 415 naming the content type sent, where
FastAPI gave a 422 about a dictionary.
"""

from __future__ import annotations

import json
import logging

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from lakeray.serve.client import APP_ERROR_HEADER
from lakeray.serve.guard import Wrapper
from lakeray.serve.schema import validation_errors

log = logging.getLogger(__name__)
JSON_HEADERS = [(b"content-type", b"application/json")]
# on every 5xx the app answers itself: a 500 without it came from the ingress (HAProxy's own 502/503/504,
# which Ray's configuration answers as 500), before any replica answered, and the Client sends it again
APP_ERROR = APP_ERROR_HEADER.encode()


async def read_body(receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None                                     # the client went away
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer(send, status: int, body: bytes) -> None:
    extra = [(APP_ERROR, b"1")] if status >= 500 else []
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def json_content(scope) -> None:
    """HTTPException(415) unless the request says its body is JSON (application/json, or
    application/<anything>+json, as FastAPI accepts)."""
    sent = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"").decode("latin-1")
    media = sent.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise HTTPException(415, f"the body must be JSON sent with Content-Type: application/json, "
                                 f"not {sent or 'no Content-Type'}")


def parsed(model: type[BaseModel], body: bytes) -> BaseModel:
    """`body` validated as `model`, or HTTPException(422) with FastAPI's error list."""
    if not body:
        raise HTTPException(422, validation_errors([{"type": "missing", "loc": ("body",), "msg": "Field required",
                                                     "input": None}]))
    try:
        value = json.loads(body)
    except UnicodeDecodeError as exc:                       # FastAPI: 400 "There was an error parsing the body"
        raise HTTPException(400, f"the request body is not valid UTF-8 (byte {exc.start}: {body[exc.start:exc.start + 1]!r}); "
                                 "send JSON encoded as UTF-8") from None
    except ValueError as exc:
        raise HTTPException(422, validation_errors([{"type": "json_invalid", "loc": ("body", getattr(exc, "pos", 0)),
                                                     "msg": "JSON decode error", "input": {}}])) from None
    try:
        return model.model_validate(value, from_attributes=True)      # as FastAPI validates a body
    except ValidationError as exc:
        raise HTTPException(422, validation_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])) from None


class PredictRoutes(Wrapper):
    """`routes`: path -> (request model, async handler(validated) -> response model)."""

    def __init__(self, api, routes: dict):
        self.app, self.handlers = api, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            path, root = scope.get("path", ""), scope.get("root_path", "")
            route = self.handlers.get(path[len(root):] if root and path.startswith(root) else path)
            if route is not None:
                return await self._handle(route, scope, receive, send)
        return await self.app(scope, receive, send)

    async def _handle(self, route, scope, receive, send) -> None:
        model, handler = route
        body = await read_body(receive)
        if body is None:
            return
        try:
            json_content(scope)
            response = await handler(parsed(model, body))
            status, content = 200, response.__pydantic_serializer__.to_json(response)
        except HTTPException as exc:
            status, content = exc.status_code, json.dumps({"detail": exc.detail}).encode()
        except Exception as exc:
            log.exception("prediction failed")
            status, content = 500, json.dumps({"detail": f"internal error ({type(exc).__name__}); the replica's log has it"}).encode()
        await answer(send, status, content)
