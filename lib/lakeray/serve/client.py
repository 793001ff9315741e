"""A small HTTP client for the serving endpoint (standard library only): JSON calls, rows from a
DataFrame, and many rows sent concurrently. Used by the demo's closed loop and the tests."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import urllib.error
import urllib.request

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def call(url: str, body=None, headers: dict | None = None, method: str | None = None, timeout: float = 60):
    """(status, decoded JSON body); HTTP errors are returned, not raised."""
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
    """Rows of `frame` as JSON-ready request bodies: NaN -> null, numpy scalars -> Python."""
    def plain(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return None
        if isinstance(v, np.bool_):
            return bool(v)
        return v.item() if isinstance(v, np.generic) else v

    return [{k: plain(v) for k, v in r.items()} for r in frame[features].to_dict("records")]


def send_rows(base_url: str, rows: list[dict], *, batch_size: int = 50, clients: int = 8,
              headers: dict | None = None) -> list[dict]:
    """POST `rows` in batches (/predict/batch; /predict when batch_size is 1) from `clients`
    threads. Returns one prediction per row, in order; any non-200 answer raises."""
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]

    def one(chunk: list[dict]) -> list[dict]:
        if len(chunk) == 1 and batch_size == 1:
            status, body = call(f"{base_url}/predict", chunk[0], headers)
            preds = [body] if status == 200 else None
        else:
            status, body = call(f"{base_url}/predict/batch", {"rows": chunk}, headers)
            preds = body["predictions"] if status == 200 else None
        if preds is None:
            raise RuntimeError(f"{base_url}: HTTP {status}: {body}")
        return preds

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        return [p for preds in pool.map(one, chunks) for p in preds]
