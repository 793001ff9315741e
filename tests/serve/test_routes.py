"""The prediction routes answered straight from ASGI (lakeray.serve.routes) answer as FastAPI did:
the same predictions, the same 422s (status and detail, field by field), 413/401 from the guard in
front, everything else (/healthz, 404, 405) from FastAPI. Driven in process through the replica's
ASGI app, against the same FastAPI app's own handling of the same routes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeray.lakehouse import Lakehouse
from lakeray.serve.app import PredictorCore, _api
from lakeray.serve.model import BundleLoader
from tests.support import settings_in

pytestmark = pytest.mark.fast
KEY = "k-123"


@pytest.fixture(scope="module")
def replica(tiny_champion, churn_spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("routes")
    conf = settings_in(folder)["serve"]
    conf = {**conf, "reload_s": 0, "max_batch_rows": 5, "log": {**conf["log"], "flush_rows": 1000, "flush_s": 0.2}}
    core = PredictorCore(churn_spec, conf, Lakehouse.for_pipeline(settings_in(folder), churn_spec),
                         BundleLoader(tiny_champion["bundle_dir"], version="3"))
    app = _api(churn_spec, conf, core, KEY)
    yield {"app": app, "fastapi": app.app.app, "core": core, "bundle": tiny_champion["bundle"], "spec": churn_spec}
    core.logger.close()


def call(app, method: str, path: str, body: bytes = b"", key: str | None = KEY, chunks: int = 1,
         content_type: bytes | None = b"application/json", headers_out: list | None = None):
    """One request through an ASGI app: (status, parsed JSON or text); the answer's headers are added
    to `headers_out`."""
    headers = ([(b"content-type", content_type)] if content_type else []) + ([(b"x-api-key", key.encode())] if key else [])
    if chunks == 1:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}
    size = max(1, -(-len(body) // chunks))
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    status = start["status"]
    if headers_out is not None:
        headers_out.extend(start.get("headers", []))
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content.decode()


def good_row(spec, i=0):
    return {name: (1.5 * i if kind == "numeric" else ("month-to-month" if kind == "categorical" else True))
            for name, kind in spec.features.items()}


def test_predictions_equal_the_bundle_and_are_logged(replica):
    spec, logger = replica["spec"], replica["core"].logger
    before = logger.written + logger.pending
    rows = [good_row(spec, i) for i in range(3)]
    status, one = call(replica["app"], "POST", "/predict", json.dumps(rows[0]).encode())
    assert status == 200 and one["model_version"] == "3" and len(one["request_id"]) == 32
    assert one["prediction"] == pytest.approx(float(replica["bundle"].predict_rows(rows[:1])[0]), rel=1e-6)
    assert set(one) == {"request_id", "model_version", "prediction", "label"}
    status, many = call(replica["app"], "POST", "/predict/batch", json.dumps({"rows": rows}).encode(), chunks=3)
    assert status == 200 and [p["request_id"] for p in many["predictions"]] == [f"{many['request_id']}-{i}" for i in range(3)]
    assert [p["prediction"] for p in many["predictions"]] == pytest.approx(list(replica["bundle"].predict_rows(rows)), rel=1e-6)
    assert one["request_id"] != many["request_id"]
    deadline = time.monotonic() + 10
    while logger.written < before + 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logger.written == before + 4 and logger.dropped == 0                    # 1 + 3 rows answered, 4 logged


BAD_BODIES = {
    "not json": b"{nope",
    "empty": b"",
    "a list": b"[1, 2]",
    "NaN literal": b'{"monthly_charges": NaN}',
    "Infinity literal": b'{"monthly_charges": -Infinity}',
    "unknown field": b'{"monthly_chargez": 1}',
    "text for a number": b'{"tenure_months": "twelve"}',
    "lone surrogate": b'{"contract": "two\\ud800year"}',
    "too large a number": b'{"monthly_charges": 1e300}',
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_get_the_422_fastapi_gives(replica, name):
    body = BAD_BODIES[name]
    fast = call(replica["app"], "POST", "/predict", body)
    slow = call(replica["fastapi"], "POST", "/predict", body)       # FastAPI's own handling of the route
    assert fast[0] == 422 and fast == slow, (fast, slow)


def test_a_body_that_is_not_utf8_gets_400_naming_the_byte(replica):
    body = b'{"contract": "\xff\xfe"}'
    assert call(replica["fastapi"], "POST", "/predict", body) == (400, {"detail": "There was an error parsing the body"})
    status, answer = call(replica["app"], "POST", "/predict", body)
    assert status == 400 and "not valid UTF-8 (byte 14: b'\\xff')" in answer["detail"], answer


def test_a_body_not_sent_as_json_gets_415_naming_the_content_type(replica):
    """FastAPI reads a body as JSON only with a JSON content type (it answered 422 about a dictionary
    otherwise): an HTML form from another site cannot post rows into the inference log."""
    body = json.dumps(good_row(replica["spec"])).encode()
    for content_type in (b"text/plain", b"application/x-www-form-urlencoded", None):
        assert call(replica["fastapi"], "POST", "/predict", body, content_type=content_type)[0] == 422
        status, answer = call(replica["app"], "POST", "/predict", body, content_type=content_type)
        assert status == 415 and (content_type or b"no Content-Type").decode() in answer["detail"], answer
    for content_type in (b"application/json; charset=utf-8", b"Application/JSON", b"application/vnd.lakeray+json"):
        assert call(replica["app"], "POST", "/predict", body, content_type=content_type)[0] == 200, content_type


def test_batch_errors_name_the_row_and_field(replica):
    spec = replica["spec"]
    rows = [good_row(spec), {**good_row(spec), "tenure_months": "x"}]
    body = json.dumps({"rows": rows}).encode()
    fast = call(replica["app"], "POST", "/predict/batch", body)
    assert fast == call(replica["fastapi"], "POST", "/predict/batch", body)
    assert fast[0] == 422 and fast[1]["detail"][0]["loc"] == ["body", "rows", 1, "tenure_months"]
    too_many = json.dumps({"rows": [good_row(spec)] * 6}).encode()           # max_batch_rows is 5
    fast = call(replica["app"], "POST", "/predict/batch", too_many)
    assert fast[0] == 422 and fast == call(replica["fastapi"], "POST", "/predict/batch", too_many)


def test_the_guard_and_fastapi_still_answer_around_the_routes(replica):
    app, spec = replica["app"], replica["spec"]
    assert call(app, "POST", "/predict", json.dumps(good_row(spec)).encode(), key=None)[0] == 401
    assert call(app, "POST", "/predict", json.dumps(good_row(spec)).encode(), key="wrong")[0] == 401
    huge = json.dumps({"rows": [good_row(spec)] * 5000}).encode()
    status, answer = call(app, "POST", "/predict/batch", huge, chunks=7)            # chunked: counted as it streams
    assert status == 413 and "serve.max_body_bytes" in answer["detail"]
    status, health = call(app, "GET", "/healthz", key=None)
    assert status == 200 and health["model_version"] == "3"
    assert call(app, "GET", "/predict")[0] == 405                                   # FastAPI: wrong method
    assert call(app, "POST", "/nowhere", b"{}")[0] == 404
    status, schema = call(app, "GET", "/openapi.json", key=None)
    assert status == 200 and {"/predict", "/predict/batch", "/healthz"} <= set(schema["paths"])


def test_serve_finds_the_route_of_each_request_for_its_metrics(replica):
    """Serve labels its request metrics with the route it matches in the replica's app (`routes`,
    `router`): through the guard and the prediction routes it must still find FastAPI's."""
    from ray.serve._private.thirdparty.get_asgi_route_name import get_asgi_route_name

    def scope(path, method="POST"):
        return {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}

    assert get_asgi_route_name(replica["app"], scope("/predict")) == "/predict"
    assert get_asgi_route_name(replica["app"], scope("/predict/batch")) == "/predict/batch"
    assert get_asgi_route_name(replica["app"], scope("/healthz", "GET")) == "/healthz"


values = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_body_gets_what_fastapi_answers(replica, data):
    """Random rows (known and unknown fields, values of every JSON kind, non-finite numbers): the fast
    route answers the same status as FastAPI, the same detail for a 422, the same prediction for a 200."""
    spec = replica["spec"]
    names = st.sampled_from([*spec.features, "unknown_field"])
    row = data.draw(st.dictionaries(names, values, max_size=6))
    body = json.dumps(row).encode()
    fast, slow = call(replica["app"], "POST", "/predict", body), call(replica["fastapi"], "POST", "/predict", body)
    assert fast[0] == slow[0], (row, fast, slow)
    if fast[0] == 200:
        assert fast[1]["prediction"] == slow[1]["prediction"] and fast[1]["label"] == slow[1]["label"]
    else:
        assert fast == slow, (row, fast, slow)


def test_a_handler_that_fails_unexpectedly_gets_a_logged_500_and_the_next_request_is_served(replica, caplog):
    """Anything but an HTTPException from the handler: 500 naming the exception's type (its text
    stays in the replica's log, not in the answer), and the route keeps serving."""
    from lakeray.serve.routes import PredictRoutes

    spec = replica["spec"]
    Row = replica["app"].app.handlers["/predict"][0]
    calls = []

    async def flaky(row):
        calls.append(row)
        if len(calls) == 1:
            raise KeyError("secret internals")
        return await replica["app"].app.handlers["/predict"][1](row)

    routes = PredictRoutes(replica["fastapi"], {"/predict": (Row, flaky)})
    body = json.dumps(good_row(spec)).encode()
    failed, served = [], []
    with caplog.at_level("ERROR", logger="lakeray.serve.routes"):
        status, answer = call(routes, "POST", "/predict", body, headers_out=failed)
    assert status == 500 and "KeyError" in answer["detail"] and "secret" not in answer["detail"], answer
    assert any("prediction failed" in r.message and r.exc_info for r in caplog.records)
    # marked as the app's own answer: the Client does not send it again (an ingress 500 it does)
    assert (b"x-lakeray-error", b"1") in failed
    status, answer = call(routes, "POST", "/predict", body, headers_out=served)
    assert status == 200 and answer["model_version"] == "3"
    assert not any(k == b"x-lakeray-error" for k, _ in served)
