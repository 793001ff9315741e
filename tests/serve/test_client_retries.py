"""The Client's retries against a real socket server (no Ray): a connection dropped before an
answer is sent again, a 503 is sent again after its Retry-After, a 500/502/504 the ingress answered
(not marked as lakeray's app's own) is sent again while the app's own 500 is raised at once, and when
every attempt fails the error says so instead of returning nothing."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from lakeray.serve.client import Client, ServeError
from tests.support import free_port

pytestmark = pytest.mark.fast


def _server(answers: list[bytes | None]):
    """A loopback HTTP server answering successive connections with `answers` (None: close the
    connection after reading the request, without a byte of answer). Returns (url, requests seen)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[float] = []

    def serve():
        for answer in answers:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                seen.append(time.monotonic())
                if answer is not None:
                    conn.sendall(answer)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", seen


def _http(status: str, body: dict, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n{extra}\r\n").encode() + data


def test_a_dropped_connection_and_a_503_are_sent_again_until_answered():
    url, seen = _server([None, _http("503 Service Unavailable", {"detail": "busy"}, "Retry-After: 0.3\r\n"),
                         _http("200 OK", {"prediction": 0.25})])
    with Client(url, retries=3, backoff_s=0.01) as client:
        assert client.predict({"x": 1}) == {"prediction": 0.25}
    assert client.retried == 2 and len(seen) == 3
    assert seen[2] - seen[1] >= 0.29                     # waited as long as Retry-After asked


def test_every_attempt_failing_raises_with_the_last_answer():
    url, seen = _server([_http("503 Service Unavailable", {"detail": "busy"})] * 3)
    with Client(url, retries=2, backoff_s=0.01) as client, pytest.raises(ServeError) as caught:
        client.predict({"x": 1})
    assert caught.value.status == 503 and caught.value.detail == "busy" and caught.value.attempts == 3
    assert len(seen) == 3

    nobody = f"http://127.0.0.1:{free_port()}"          # nothing listens there
    with Client(nobody, retries=1, backoff_s=0.01) as client, pytest.raises(ServeError) as refused:
        client.predict({"x": 1})
    assert refused.value.status == 0 and refused.value.attempts == 2 and "no answer" in str(refused.value)


def test_an_ingress_5xx_is_sent_again_but_the_apps_own_500_is_raised_at_once():
    ingress_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
                   b"Connection: close\r\n\r\nInternal Server Error")
    url, seen = _server([ingress_500, _http("502 Bad Gateway", {"detail": "no server"}),
                         _http("504 Gateway Timeout", {"detail": "timeout"}), _http("200 OK", {"prediction": 0.5})])
    with Client(url, retries=3, backoff_s=0.01) as client:
        assert client.predict({"x": 1}) == {"prediction": 0.5}
    assert client.retried == 3 and len(seen) == 4

    own = _http("500 Internal Server Error", {"detail": "internal error (KeyError); the replica's log has it"},
                "x-lakeray-error: 1\r\n")
    url, seen = _server([own, _http("200 OK", {"prediction": 0.5})])
    with Client(url, retries=3, backoff_s=0.01) as client, pytest.raises(ServeError) as caught:
        client.predict({"x": 1})
    assert caught.value.status == 500 and "KeyError" in caught.value.detail and caught.value.attempts == 1
    assert client.retried == 0 and len(seen) == 1
