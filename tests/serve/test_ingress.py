"""The ingress settings (no Ray): which switches the Serve controller gets, and the launcher's
rewrite of HAProxy's configuration onto loopback."""

from __future__ import annotations

import pytest

from lakeray.errors import ConfigError
from lakeray.serve.ingress import DEFAULT_RETRY_ON, LAUNCHER, controller_env, launch, loopback_config

pytestmark = pytest.mark.fast


def test_haproxy_is_the_default_and_loopback_gets_the_launcher():
    env = controller_env({"host": "127.0.0.1", "port": 8000})
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert env["RAY_SERVE_HAPROXY_RETRY_ON"] == DEFAULT_RETRY_ON
    assert env["RAY_SERVE_HAPROXY_BINARY_PATH"].endswith(LAUNCHER)
    cluster = controller_env({"host": "0.0.0.0", "port": 8000, "retry_on": "conn-failure"})
    assert "RAY_SERVE_HAPROXY_BINARY_PATH" not in cluster                   # behind the network policy
    assert cluster["RAY_SERVE_HAPROXY_RETRY_ON"] == "conn-failure"
    assert controller_env({"host": "127.0.0.1", "port": 8000, "ingress": "proxy"}) == {}
    with pytest.raises(ConfigError, match="serve.ingress is 'nginx'"):
        controller_env({"host": "127.0.0.1", "port": 8000, "ingress": "nginx"})


def test_the_launcher_moves_every_wide_listener_to_loopback(tmp_path):
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
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    command = launch(["-db", "-f", str(config), "-sf", "123"])
    assert command[0].endswith("haproxy") and not command[0].endswith(LAUNCHER)
    assert command[1:] == ["-db", "-f", str(tmp_path / "haproxy.loopback.cfg"), "-sf", "123"]
    assert (tmp_path / "haproxy.loopback.cfg").read_text() == fixed
