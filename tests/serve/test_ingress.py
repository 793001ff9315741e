"""The ingress settings (no Ray): which switches the Serve controller gets, the launcher's
rewrite of HAProxy's configuration (requests buffered for retries; onto loopback), and waiting until
the ingress routes an app (a real HTTP server that answers 404 first, as HAProxy does before its reload)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lakeray.errors import ConfigError, ServeError
from lakeray.serve.ingress import (
    BUFFER_REQUEST,
    DEFAULT_RETRY_ON,
    LAUNCHER,
    LOOPBACK_ENV,
    buffered_config,
    controller_env,
    launch,
    loopback_config,
    wait_routed,
)
from tests.support import free_port

pytestmark = pytest.mark.fast


def test_haproxy_is_the_default_and_loopback_gets_the_launcher():
    env = controller_env({"host": "127.0.0.1", "port": 8000})
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert env["RAY_SERVE_HAPROXY_RETRY_ON"] == DEFAULT_RETRY_ON
    assert env["RAY_SERVE_HAPROXY_BINARY_PATH"].endswith(LAUNCHER) and env[LOOPBACK_ENV] == "1"
    cluster = controller_env({"host": "0.0.0.0", "port": 8000, "retry_on": "conn-failure"})
    assert "RAY_SERVE_HAPROXY_BINARY_PATH" not in cluster      # the nodes' environment names it (raycluster.yaml)
    assert LOOPBACK_ENV not in cluster
    assert cluster["RAY_SERVE_HAPROXY_RETRY_ON"] == "conn-failure"
    assert controller_env({"host": "127.0.0.1", "port": 8000, "ingress": "proxy"}) == {}
    with pytest.raises(ConfigError, match="serve.ingress is 'nginx'"):
        controller_env({"host": "127.0.0.1", "port": 8000, "ingress": "nginx"})


RAY_LIKE = """global
    log 127.0.0.1:514 local0 info
defaults
    mode http
    option redispatch 1
    retry-on conn-failure empty-response junk-response
frontend http_frontend
    bind :8000
backend b
    server r1 127.0.0.1:30000 check
"""


def test_the_launcher_buffers_requests_so_haproxy_can_retry_them(tmp_path, monkeypatch):
    """Every defaults section gets `option http-buffer-request` (HAProxy replays only a request it
    holds whole), once; without LAKERAY_HAPROXY_LOOPBACK the listeners stay where Ray put them."""
    buffered = buffered_config(RAY_LIKE)
    lines = [line.strip() for line in buffered.splitlines()]
    assert lines[lines.index("defaults") + 1] == BUFFER_REQUEST
    assert buffered.count(BUFFER_REQUEST) == 1 and buffered_config(buffered) == buffered
    two = buffered_config(RAY_LIKE + "defaults grpc\n    mode tcp\n")
    assert two.count(BUFFER_REQUEST) == 2
    assert buffered_config("global\n    maxconn 10\n") == "global\n    maxconn 10\n"   # nothing to add it to
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_LIKE)
    command = launch(["-db", "-f", str(config)])
    written = (tmp_path / "haproxy.lakeray.cfg").read_text()
    assert command[1:] == ["-db", "-f", str(tmp_path / "haproxy.lakeray.cfg")]
    assert written == buffered and "bind :8000" in written                  # a cluster node's listener


def test_the_launcher_moves_every_wide_listener_to_loopback(tmp_path, monkeypatch):
    text = """global
    stats socket /tmp/haproxy-serve/admin.sock mode 666 level admin
frontend prometheus
    bind :9101
frontend http_frontend
    bind 127.0.0.1:8123
frontend grpc
    bind *:9000 proto h2
frontend other
  bind 0.0.0.0:7000
  bind [::]:7001
backend b
    server r1 127.0.0.1:30000 check
listen stats
  bind *:8404
"""
    fixed = loopback_config(text)
    binds = [line.split()[1] for line in fixed.splitlines() if line.strip().startswith("bind")]
    assert binds == ["127.0.0.1:9101", "127.0.0.1:8123", "127.0.0.1:9000", "127.0.0.1:7000", "127.0.0.1:7001",
                     "127.0.0.1:8404"]
    assert "proto h2" in fixed and "server r1 127.0.0.1:30000 check" in fixed
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    command = launch(["-db", "-f", str(config), "-sf", "123"])
    assert command[0].endswith("haproxy") and not command[0].endswith(LAUNCHER)
    assert command[1:] == ["-db", "-f", str(tmp_path / "haproxy.lakeray.cfg"), "-sf", "123"]
    assert (tmp_path / "haproxy.lakeray.cfg").read_text() == buffered_config(fixed)


class _RoutedAfter(BaseHTTPRequestHandler):
    """404 "Path not found" (HAProxy before it learns the route) for the first `unrouted` requests."""
    unrouted = 0
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        status = 404 if len(self.seen) <= self.unrouted else 200
        body = b"Path '/healthz' not found." if status == 404 else b'{"status": "ok"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _server(unrouted: int):
    handler = type("Handler", (_RoutedAfter,), {"unrouted": unrouted, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler.seen


def test_wait_routed_returns_once_the_ingress_answers_200():
    server, seen = _server(unrouted=3)
    try:
        wait_routed(f"http://127.0.0.1:{server.server_address[1]}/healthz", timeout_s=10)
        assert seen == ["/healthz"] * 4                 # three 404s waited out, returned at the 200
    finally:
        server.shutdown()


def test_wait_routed_names_the_url_and_its_last_answer_when_never_routed():
    server, seen = _server(unrouted=10**6)
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        with pytest.raises(ServeError, match=rf"{url} still answers 404 Not Found after 1 s"):
            wait_routed(url, timeout_s=1)
        assert len(seen) >= 3
    finally:
        server.shutdown()
    with pytest.raises(ServeError, match="ConnectionRefusedError"):      # nothing listens there
        wait_routed(f"http://127.0.0.1:{free_port()}/healthz", timeout_s=0.5)
