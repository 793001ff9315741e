"""HAProxy (Ray's bundled binary, started by lakeray's launcher) replays a POST whose server read it and
died before answering, on the other server: a real HAProxy between a real client and two real HTTP
servers, one of which closes every connection once it has read a whole request, as a replica killed
mid-request does. Ray's configuration alone (its defaults section, copied below) answers those
requests 502: HAProxy's retry-on replays only a request it holds whole, which the launcher's
`option http-buffer-request` makes it keep."""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lakeray.serve.ingress import BUFFER_REQUEST, LOOPBACK_ENV, launch
from tests.support import free_port

pytestmark = pytest.mark.fast

# The defaults and backend lines Ray 2.60 writes (ray/serve/_private/haproxy_templates.py) that decide
# retries, with lakeray's serve.retry_on and retries; no health checks, so the dying server stays in.
CONFIG = """global
    maxconn 100
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 90s
    option abortonclose
    option splice-request
    option splice-response
    option redispatch 1
    retry-on conn-failure empty-response junk-response
    retries 6
    option http-no-delay
    option idle-close-on-response
frontend http_frontend
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    http-reuse always
    server dying 127.0.0.1:{dying}
    server alive 127.0.0.1:{alive}
"""


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = b'{"echo": ' + body + b"}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def _dying_server(port: int, seen: list, stop: threading.Event) -> None:
    """Accept, read one whole request (headers + Content-Length body), close without a byte back."""
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            data = b""
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            while length is not None and len(body) < length and (chunk := conn.recv(65536)):
                body += chunk
            if length is not None and len(body) == length:     # a whole request, read and dropped
                seen.append(body)
    listener.close()


@pytest.fixture(scope="module")
def backends():
    alive = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=alive.serve_forever, daemon=True).start()
    dying, seen, stop = free_port(), [], threading.Event()
    thread = threading.Thread(target=_dying_server, args=(dying, seen, stop), daemon=True)
    thread.start()
    yield {"alive": alive.server_address[1], "dying": dying, "seen": seen}
    stop.set()
    alive.shutdown()
    thread.join(5)


def _post_through_haproxy(tmp_path, backends, monkeypatch, buffered: bool, requests: int = 12) -> list:
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, **backends))
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    command = launch(["-db", "-f", str(config)])
    written = tmp_path / "haproxy.lakeray.cfg"
    assert (BUFFER_REQUEST in written.read_text()) and BUFFER_REQUEST not in config.read_text()
    if not buffered:                                     # Ray's configuration as Ray wrote it
        command[command.index(str(written))] = str(config)
    haproxy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert haproxy.poll() is None, haproxy.stderr.read().decode()
                assert time.monotonic() < deadline, "HAProxy did not listen"
                time.sleep(0.1)
        outcomes = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(requests):
            body = f'{{"row": {i}}}'.encode()
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                outcomes.append((response.status, response.read()))
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append((repr(exc), b""))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()
        return outcomes
    finally:
        haproxy.terminate()
        haproxy.wait(10)


def test_a_request_its_server_read_and_dropped_is_answered_by_the_other(tmp_path, backends, monkeypatch):
    before = len(backends["seen"])
    outcomes = _post_through_haproxy(tmp_path, backends, monkeypatch, buffered=True)
    assert [status for status, _ in outcomes] == [200] * len(outcomes), outcomes
    assert [body for _, body in outcomes] == [f'{{"echo": {{"row": {i}}}}}'.encode() for i in range(len(outcomes))]
    assert len(backends["seen"]) - before >= len(outcomes) // 3      # the dying server did read them first


def test_without_the_buffer_ray_configuration_answers_them_502(tmp_path, backends, monkeypatch):
    before = len(backends["seen"])
    outcomes = _post_through_haproxy(tmp_path, backends, monkeypatch, buffered=False)
    statuses = [status for status, _ in outcomes]
    assert 502 in statuses and 200 in statuses, statuses
    assert statuses.count(502) <= len(backends["seen"]) - before     # 502s only for what the dying server read
