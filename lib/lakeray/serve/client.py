"""The Python client of the serving endpoint.

    from lakeray.serve.client import Client

    with Client("http://127.0.0.1:8000", api_key=os.environ.get("LAKERAY_API_KEY")) as client:
        client.predict({"tenure_months": 12, "plan": "basic", ...})        # one row -> a prediction
        client.predict_batch(rows)                                         # <= serve.max_batch_rows rows
        client.predict_frame(frame)                                        # any number: chunks in parallel

Keep-alive connections (a urllib3 pool shared by threads). Every route is an idempotent prediction,
so a request is sent again, after an exponential backoff with jitter (and no sooner than a
Retry-After header asks), when the server answers 503 (overloaded: serve.max_queued_requests), when
the connection drops before an answer (a replica or the ingress went away), or on a 500/502/504 that
the ingress answered, not lakeray's app (no x-lakeray-error header: HAProxy's own errors, which Ray's
configuration answers as 500, around a replica that died). Any other answer than 200
raises ServeError with the server's detail (a 422 names the field or row). `call` sends one raw
request and returns the status, for callers that look at error answers themselves.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import urllib3

log = logging.getLogger(__name__)

RETRY_STATUSES = (503,)
# answered by the ingress, not by a replica's app (which marks its own 5xx with APP_ERROR_HEADER)
INGRESS_STATUSES = (500, 502, 504)
APP_ERROR_HEADER = "x-lakeray-error"
# the connection went away before an answer: nothing was answered, so the prediction can be asked again
DROPPED = (urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError,
           urllib3.exceptions.ConnectTimeoutError)


class ServeError(RuntimeError):
    """A non-200 answer (after the retries): its status and the server's detail (whole in `.detail`;
    the message shows the first SHOWN_ERRORS of a list, e.g. a 422 for every row of a big batch)."""

    SHOWN_ERRORS = 5

    def __init__(self, url: str, status: int, detail, attempts: int):
        self.url, self.status, self.detail, self.attempts = url, status, detail, attempts
        shown = detail
        if isinstance(detail, list) and len(detail) > self.SHOWN_ERRORS:
            shown = f"{detail[:self.SHOWN_ERRORS]} ... and {len(detail) - self.SHOWN_ERRORS} more error(s) (.detail has all)"
        super().__init__(f"{url}: HTTP {status} after {attempts} attempt(s): {shown}")


class Client:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0, retries: int = 6,
                 backoff_s: float = 0.05, max_backoff_s: float = 2.0, connections: int = 8,
                 headers: dict | None = None):
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff_s, self.max_backoff_s = int(retries), float(backoff_s), float(max_backoff_s)
        self.connections = int(connections)
        self.headers = {"Content-Type": "application/json", **({"x-api-key": api_key} if api_key else {}),
                        **(headers or {})}
        self.retried = 0            # requests sent again (503, the ingress's 5xx, a dropped connection)
        self._pool = urllib3.PoolManager(maxsize=self.connections, retries=False,
                                         timeout=urllib3.Timeout(total=float(timeout)))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.clear()

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.max_backoff_s * 4))
            except ValueError:
                pass
        time.sleep(delay)

    def request(self, method: str, path: str, body=None):
        """The decoded JSON answer of a 200; retries 503s and dropped connections; raises ServeError."""
        url = f"{self.base_url}{path}"
        # NaN/Infinity are sent as JSON's extensions: the server answers 422 naming the field
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._pool.request(method, url, body=data, headers=self.headers)
            except DROPPED as exc:
                if last:
                    raise ServeError(url, 0, f"no answer: {exc}", attempt + 1) from exc
                log.debug("%s: connection dropped (%s); again", url, exc)
                self.retried += 1
                self._wait(attempt, None)
                continue
            if response.status == 200:
                return json.loads(response.data)
            if not last and (response.status in RETRY_STATUSES or (
                    response.status in INGRESS_STATUSES and APP_ERROR_HEADER not in response.headers)):
                self.retried += 1
                self._wait(attempt, response.headers.get("Retry-After"))
                continue
            raise ServeError(url, response.status, _detail(response.data), attempt + 1)
        raise AssertionError("unreachable")

    def predict(self, row: dict) -> dict:
        """One row -> {request_id, model_version, prediction, label} (multiclass: and probabilities)."""
        return self.request("POST", "/predict", row)

    def predict_batch(self, rows: list[dict]) -> list[dict]:
        """Rows in one request (at most the server's serve.max_batch_rows) -> one prediction each."""
        return self.request("POST", "/predict/batch", {"rows": list(rows)})["predictions"]

    def predict_rows(self, rows: list[dict], *, batch_size: int = 500, clients: int | None = None) -> list[dict]:
        """Any number of rows: chunks of `batch_size` (1: one /predict each) from `clients` threads on
        the pool's connections; one prediction per row, in order. Raises on the first failed chunk."""
        chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]

        def one(chunk: list[dict]) -> list[dict]:
            return [self.predict(chunk[0])] if batch_size == 1 else self.predict_batch(chunk)

        with concurrent.futures.ThreadPoolExecutor(max_workers=clients or self.connections) as pool:
            return [p for preds in pool.map(one, chunks) for p in preds]

    def predict_frame(self, frame: pd.DataFrame, features: list[str] | None = None, **kwargs) -> pd.DataFrame:
        """A DataFrame's rows (its `features` columns; all by default; NaN/None/NA -> null) -> a frame
        of predictions with the same index."""
        preds = self.predict_rows(request_rows(frame, list(features or frame.columns)), **kwargs)
        return pd.DataFrame(preds, index=frame.index)

    def health(self) -> dict:
        return self.request("GET", "/healthz")


def _detail(raw: bytes):
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")
    return body.get("detail", body) if isinstance(body, dict) else body


def call(url: str, body=None, headers: dict | None = None, method: str | None = None, timeout: float = 60):
    """One raw request, no retry: (status, decoded JSON body); HTTP errors are returned, not raised."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, {"detail": raw.decode(errors="replace")}


def request_rows(frame: pd.DataFrame, features: list[str]) -> list[dict]:
    """Rows of `frame` as JSON-ready request bodies: NaN/None/NA/NaT -> null, numpy scalars -> Python."""
    def plain(v):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, np.bool_):
            return bool(v)
        return v.item() if isinstance(v, np.generic) else v

    return [{k: plain(v) for k, v in r.items()} for r in frame[features].to_dict("records")]


def send_rows(base_url: str, rows: list[dict], *, batch_size: int = 50, clients: int = 8,
              headers: dict | None = None) -> list[dict]:
    """POST `rows` in batches (/predict/batch; /predict when batch_size is 1) from `clients` threads,
    with the Client's retries. Returns one prediction per row, in order; a failed chunk raises."""
    with Client(base_url, headers=headers, connections=clients) as client:
        return client.predict_rows(rows, batch_size=batch_size, clients=clients)
